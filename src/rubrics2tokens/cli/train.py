"""`rtt train`: build model, data, scorer, relevance source and trainer from a run config, then train."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from rubrics2tokens.config import RunConfig
from rubrics2tokens.data.dataset import to_trl_dataset
from rubrics2tokens.data.schema import PromptRow, load_prompt_rows, read_jsonl
from rubrics2tokens.data.synthetic import generate_rows
from rubrics2tokens.models.loading import load_policy
from rubrics2tokens.scoring.router import scorer_from_config
from rubrics2tokens.trainer.rtt_grpo import RTTGRPOTrainer
from rubrics2tokens.verifiers.sandbox import SandboxLimits, allow_dataset_code

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
PASS_RATE_KEYS = ("rubrics/satisfaction", "rubrics/all_pass")
RTT_PHASES = ("scoring", "relevance", "advantages")  # logged as rtt/time/<phase>_s


class JsonlMetrics(TrainerCallback):
    """Appends every log record (one per logging step) to ``output_dir/metrics.jsonl``."""

    def __init__(self, path: Path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"step": state.global_step, **logs}) + "\n")


def _drop_records_after(path: Path, step: int) -> None:
    """On resume, forget log records of steps past the checkpoint: those steps run again."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def build_rows(config: RunConfig) -> list[PromptRow]:
    if config.data.source == "file":
        return load_prompt_rows(config.data.path)
    testbed = config.data.testbed
    return generate_rows(testbed.num_prompts, seed=testbed.seed, min_rubrics=testbed.min_rubrics,
                         max_rubrics=testbed.max_rubrics, families=testbed.families)


def build_trainer(config: RunConfig, trainer_class: type[RTTGRPOTrainer] = RTTGRPOTrainer) -> RTTGRPOTrainer:
    args = config.training
    rows = build_rows(config)
    model, tokenizer = load_policy(config.model.name_or_path, dtype=config.model.dtype)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    scoring = config.scoring
    allow_dataset_code(scoring.allow_dataset_code, SandboxLimits(scoring.rule_timeout_s, scoring.rule_memory_mb,
                                                                 scoring.rule_workers))
    scorer = scorer_from_config(scoring.mode, scoring.judge)
    return trainer_class(model=model, scorer=scorer, args=args, train_dataset=to_trl_dataset(rows),
                          processing_class=tokenizer, callbacks=[JsonlMetrics(output_dir / METRICS_FILE)])


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
