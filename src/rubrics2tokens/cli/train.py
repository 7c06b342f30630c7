"""`rtt train`: build the trainer from a run config (`rubrics2tokens.builder`), train, resume, summarize."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import yaml

from rubrics2tokens.builder import (JsonlMetrics, METRICS_FILE, build_rows,  # noqa: F401 (moved; re-exported)
                                    build_trainer)
from rubrics2tokens.checkpoints import (checkpoint_step, checkpoints, drop_incomplete_checkpoints, export_model,
                                        last_complete_checkpoint, training_finished)
from rubrics2tokens.cli.model_card import write_model_card
from rubrics2tokens.cli.summary import print_summary
from rubrics2tokens.config import ConfigError, RunConfig, run_config_tree
from rubrics2tokens.report import write_report

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"  # the run's resolved config, written into its folder (read by `rtt report`)


def _drop_records_after(path: Path, step: int) -> None:
    """On resume, forget log records of steps past the checkpoint: those steps run again."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _finish(config: RunConfig, output_dir: Path, final_dir: Path) -> None:
    """A trained run's last steps (main process): its model card, its checkpoints dropped unless kept (``final/``
    holds the model; a checkpoint adds only what ``--resume`` needs), the summary, the report and what to do next.
    The run is complete once its model is saved and the report is rebuilt from the folder at any time, so a report
    that fails says so and does not fail the run (a study would retry it)."""
    write_model_card(output_dir, final_dir, run_config_tree(config))
    if not config.training.keep_checkpoints:
        for checkpoint in checkpoints(output_dir):
            shutil.rmtree(checkpoint)
    print_summary(output_dir, final_dir)
    try:
        print(f"  report:       {write_report(output_dir)}")
    except Exception as error:  # noqa: BLE001 (whatever broke the report, the trained model stands)
        logger.error("the report could not be written (%s: %s); the run is complete, `rtt report %s` rebuilds it",
                     type(error).__name__, error, output_dir)
    print(f"next: rtt report {output_dir} OTHER_RUN...    (compare with another run, e.g. a plain GRPO baseline "
          "trained with training.relevance_source=none)\n"
          "      rtt study configs/study_testbed.yaml    (RTT against GRPO over seeds, with intervals: docs/study.md)")


def _resume_point(output_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to continue from (None: start fresh), with the folder made ready for it: a save a kill cut
    short removed, log records of the steps that run again dropped; a fresh run starts a fresh log."""
    existing = checkpoints(output_dir)
    if existing and not resume:
        raise ConfigError(f"training.output_dir {str(output_dir)!r} already holds checkpoints (last: "
                          f"{existing[-1].name}); pass --resume to continue that run, or choose another "
                          "training.output_dir")
    checkpoint = last_complete_checkpoint(output_dir) if resume else None
    if resume and checkpoint is None:
        logger.warning("--resume: no complete checkpoint in %s, starting from scratch", output_dir)
    # Under a launcher every process runs this; only the first (RANK 0, the one JsonlMetrics writes from) may
    # rewrite or remove files, or another process can read them half-rewritten or remove them twice.
    if os.environ.get("RANK", "0") == "0":
        if resume:
            drop_incomplete_checkpoints(output_dir)
        if checkpoint:
            _drop_records_after(output_dir / METRICS_FILE, checkpoint_step(checkpoint))
        elif (output_dir / METRICS_FILE).exists():
            (output_dir / METRICS_FILE).unlink()
    return checkpoint


def run_training(config: RunConfig, resume: bool = False, verbosity: str = "normal") -> Path:
    output_dir = Path(config.training.output_dir)
    final_dir = output_dir / "final"
    checkpoint = _resume_point(output_dir, resume)
    if checkpoint and training_finished(checkpoint, config.training.max_steps):
        # Trained to its last step already; resumed there, Transformers' loop would train one step more.
        logger.warning("--resume: %s is the run's last step; its model becomes %s", checkpoint.name, final_dir)
        if os.environ.get("RANK", "0") == "0":
            export_model(checkpoint, final_dir)
            _finish(config, output_dir, final_dir)
        return final_dir
    if checkpoint:
        # The evaluation before the first step is on disk already (heldout/step_000000.jsonl); TRL would run
        # it again at the resumed step, an extra point off the evaluation grid.
        config.training.eval_on_start = False
    trainer = build_trainer(config, verbosity=verbosity)
    if trainer.accelerator.is_main_process:
        (output_dir / CONFIG_FILE).write_text(yaml.safe_dump(run_config_tree(config), sort_keys=False),
                                              encoding="utf-8")
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    trainer.save_model(str(final_dir))
    if trainer.accelerator.is_main_process:
        _finish(config, output_dir, final_dir)
    # Under `accelerate launch`, a rank that exits with its gloo process group alive can abort at teardown
    # (SIGABRT after a finished run); ending it first makes the exit clean. A single process has none.
    trainer.accelerator.end_training()
    return final_dir
