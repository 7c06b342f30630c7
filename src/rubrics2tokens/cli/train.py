"""`rtt train`: build the trainer from a run config (`rubrics2tokens.builder`), train, resume, summarize."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from transformers.trainer_utils import get_last_checkpoint

from rubrics2tokens.builder import (JsonlMetrics, METRICS_FILE, build_rows,  # noqa: F401 (moved; re-exported)
                                    build_trainer)
from rubrics2tokens.config import RunConfig
from rubrics2tokens.data.schema import read_jsonl

logger = logging.getLogger(__name__)

PASS_RATE_KEYS = ("rubrics/satisfaction", "rubrics/all_pass")
RTT_PHASES = ("scoring", "relevance", "advantages")  # logged as rtt/time/<phase>_s


def _drop_records_after(path: Path, step: int) -> None:
    """On resume, forget log records of steps past the checkpoint: those steps run again."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def logged_values(records: list[dict], key: str) -> list[float]:
    """The value of ``key`` at every logged step that has it."""
    return [record[key] for record in records if key in record]


def run_training(config: RunConfig, resume: bool = False) -> Path:
    output_dir = Path(config.training.output_dir)
    checkpoint = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
    if checkpoint and not resume:
        raise SystemExit(f"{output_dir} already holds checkpoints (last: {Path(checkpoint).name}); "
                         "pass --resume to continue that run, or choose another training.output_dir")
    if resume and checkpoint is None:
        logger.warning("--resume: no checkpoint in %s, starting from scratch", output_dir)
    if resume and checkpoint:
        _drop_records_after(output_dir / METRICS_FILE, int(Path(checkpoint).name.split("-")[-1]))
    elif (output_dir / METRICS_FILE).exists():
        (output_dir / METRICS_FILE).unlink()  # a fresh run starts a fresh log

    trainer = build_trainer(config)
    trainer.train(resume_from_checkpoint=checkpoint if resume else None)
    final_dir = output_dir / "final"
    trainer.save_model(str(final_dir))
    if trainer.accelerator.is_main_process:
        print_summary(output_dir, final_dir)
    return final_dir


def print_summary(output_dir: Path, final_dir: Path) -> None:
    metrics_path = output_dir / METRICS_FILE
    print(f"\nOutputs in {output_dir}/")
    print(f"  final model:  {final_dir}")
    print(f"  metrics:      {metrics_path}  (one JSON record per logged step)")
    print(f"  tensorboard:  tensorboard --logdir {output_dir}")
    records = [record for _, record in read_jsonl(metrics_path)] if metrics_path.is_file() else []
    for key in PASS_RATE_KEYS:
        values = logged_values(records, key)
        if values:
            print(f"  {key}: first step {values[0]:.3f} -> last step {values[-1]:.3f}")
    step_time = sum(logged_values(records, "step_time"))
    if step_time > 0:
        shares = ", ".join(f"{phase} {sum(logged_values(records, f'rtt/time/{phase}_s')) / step_time:.1%}"
                           for phase in RTT_PHASES)
        print(f"  share of the step time: {shares}")
