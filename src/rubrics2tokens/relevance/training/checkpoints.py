"""What a relevance training run writes to resume and to keep its best model: ``last/state.pt``,
``best/`` and the buffered ``metrics.jsonl`` records (layout in `rubrics2tokens.relevance.training`)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rubrics2tokens.relevance.model import RelevanceModel
from rubrics2tokens.yaml_config import ConfigError

STATE_FILE = "state.pt"
METRICS_FILE = "metrics.jsonl"


@dataclass
class Progress:
    """What the loop carries from step to step, and what `last/` saves of it."""

    step: int = 0
    best_span_f1: float = -1.0
    best_step: int | None = None
    pending_records: list[dict[str, Any]] = field(default_factory=list)


def save_last(output_dir: Path, model: RelevanceModel, optimizer: torch.optim.Optimizer,
              scheduler: torch.optim.lr_scheduler.LRScheduler, progress: Progress, data_size: int) -> None:
    """Write ``last/state.pt`` atomically (temporary file, then rename), then flush the log records."""
    state = {"model": model.model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "step": progress.step, "best_span_f1": progress.best_span_f1,
             "best_step": progress.best_step, "rng": torch.get_rng_state(), "data_size": data_size,
             "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
    last = output_dir / "last"
    last.mkdir(parents=True, exist_ok=True)
    temporary = last / (STATE_FILE + ".tmp")
    torch.save(state, temporary)
    os.replace(temporary, last / STATE_FILE)
    with (output_dir / METRICS_FILE).open("a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in progress.pending_records)
    progress.pending_records.clear()


def restore_last(output_dir: Path, model: RelevanceModel, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, data_size: int) -> Progress:
    state = torch.load(output_dir / "last" / STATE_FILE, map_location="cpu", weights_only=False)
    if state["data_size"] != data_size:
        raise ConfigError(f"{output_dir}/last was trained on {state['data_size']} inputs, this run has {data_size}: "
                         "resume with the same label files and settings")
    model.model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return Progress(step=state["step"], best_span_f1=state["best_span_f1"], best_step=state["best_step"])


def save_best(output_dir: Path, model: RelevanceModel, report: dict[str, Any]) -> None:
    """Write ``best/`` through a temporary folder, so a kill never leaves a half-written best model."""
    temporary = output_dir / "best.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    model.save(temporary)
    (temporary / "eval_metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(output_dir / "best", ignore_errors=True)
    temporary.rename(output_dir / "best")
