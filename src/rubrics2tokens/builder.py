"""From a `RunConfig` to a ready `RTTGRPOTrainer`: training rows, policy, scorer, dataset-code sandbox,
metrics log.

This sits above both the run config and the trainer package, so neither has to know the other's
construction: `rtt train` and `bench/step.py` build their trainers here.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import TrainerCallback

from rubrics2tokens.config import RunConfig
from rubrics2tokens.data.dataset import to_trl_dataset
from rubrics2tokens.data.schema import PromptRow, load_prompt_rows
from rubrics2tokens.data.synthetic import generate_rows
from rubrics2tokens.models.loading import load_policy
from rubrics2tokens.scoring.router import scorer_from_config
from rubrics2tokens.trainer.rtt_grpo import RTTGRPOTrainer
from rubrics2tokens.verifiers.sandbox import SandboxLimits, allow_dataset_code

METRICS_FILE = "metrics.jsonl"


class JsonlMetrics(TrainerCallback):
    """Appends every log record (one per logging step) to ``output_dir/metrics.jsonl``."""

    def __init__(self, path: Path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"step": state.global_step, **logs}) + "\n")


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
