"""A run folder's checkpoints: which one a resume starts from, and what a kill mid-save leaves behind.

The Trainer writes ``trainer_state.json`` last into a ``checkpoint-N`` folder, so a folder without it is a
save that a kill cut short: resuming from it fails, and the checkpoint before it is the one to use. A
checkpoint at the run's last step is a finished training whose process died before it ended (or failed
after it): Transformers' loop, resumed there, would train one step past ``max_steps``, so its model is
exported instead (`training_finished`, `export_model`).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

CHECKPOINT_COMPLETE = "trainer_state.json"  # the last file the Trainer writes into a checkpoint
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
TRAINING_STATE = ("optimizer*", "scheduler*", "rng_state*", "scaler*", CHECKPOINT_COMPLETE, "global_step*", "latest")
"""What a checkpoint holds beyond what `Trainer.save_model` writes (optimizer, schedule, random state, progress;
DeepSpeed's ``global_step*`` and ``latest``)."""


def checkpoints(folder: Path) -> list[Path]:
    """Every ``checkpoint-N`` folder in ``folder``, complete or not, by step."""
    if not folder.is_dir():
        return []
    found = [path for path in folder.iterdir() if path.is_dir() and _CHECKPOINT.match(path.name)]
    return sorted(found, key=checkpoint_step)


def checkpoint_step(checkpoint: Path) -> int:
    return int(_CHECKPOINT.match(checkpoint.name).group(1))


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / CHECKPOINT_COMPLETE).is_file()


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The checkpoint a resume starts from: the last one whose save finished."""
    complete = [checkpoint for checkpoint in checkpoints(folder) if is_complete(checkpoint)]
    return complete[-1] if complete else None


def drop_incomplete_checkpoints(folder: Path) -> list[Path]:
    """Remove the saves a kill cut short (they would otherwise be overwritten half-way); returns them."""
    dropped = [checkpoint for checkpoint in checkpoints(folder) if not is_complete(checkpoint)]
    for checkpoint in dropped:
        logger.warning("%s: an incomplete checkpoint (its save was cut short); removed", checkpoint)
        shutil.rmtree(checkpoint)
    return dropped


def training_finished(checkpoint: Path, max_steps: int) -> bool:
    """Whether ``checkpoint`` is at the run's last step: ``max_steps``, or where it is <= 0 (an epoch count),
    the step count the Trainer planned when it saved."""
    state = json.loads((checkpoint / CHECKPOINT_COMPLETE).read_text(encoding="utf-8"))
    planned = max_steps if max_steps > 0 else state.get("max_steps", 0)
    return planned > 0 and state.get("global_step", 0) >= planned


def export_model(checkpoint: Path, destination: Path) -> Path:
    """Copy the checkpoint's model (weights, config, tokenizer: what `Trainer.save_model` writes) to ``destination``."""
    shutil.rmtree(destination, ignore_errors=True)
    shutil.copytree(checkpoint, destination, ignore=shutil.ignore_patterns(*TRAINING_STATE))
    return destination
