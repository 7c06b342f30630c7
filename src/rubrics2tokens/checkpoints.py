"""A run folder's checkpoints: which one a resume starts from, and what a kill mid-save leaves behind.

The Trainer writes ``trainer_state.json`` last into a ``checkpoint-N`` folder, so a folder without it is a
save that a kill cut short: resuming from it fails, and the checkpoint before it is the one to use.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

CHECKPOINT_COMPLETE = "trainer_state.json"  # the last file the Trainer writes into a checkpoint
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


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
