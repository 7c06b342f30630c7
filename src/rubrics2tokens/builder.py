"""From a `RunConfig` to a ready `RTTGRPOTrainer`: training rows, policy, scorer, dataset-code sandbox,
metrics log.

This sits above both the run config and the trainer package, so neither has to know the other's
construction: `rtt train` and `bench/step.py` build their trainers here.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import PrinterCallback, ProgressCallback, TrainerCallback

from rubrics2tokens.config import ConfigError, RunConfig
from rubrics2tokens.data.dataset import to_trl_dataset
from rubrics2tokens.data.hir import load_hir_hub
from rubrics2tokens.data.row_formats import load_prompt_rows
from rubrics2tokens.data.schema import DataError, PromptRow
from rubrics2tokens.data.synthetic import generate_rows
from rubrics2tokens.models.loading import check_model_name, load_policy
from rubrics2tokens.scoring.router import scorer_from_config
from rubrics2tokens.trainer.heldout import heldout_name
from rubrics2tokens.trainer.progress import RunProgress, silence_known_harmless_messages
from rubrics2tokens.trainer.rtt_grpo import RTTGRPOTrainer
from rubrics2tokens.verifiers.sandbox import SandboxLimits, allow_dataset_code

METRICS_FILE = "metrics.jsonl"


class JsonlMetrics(TrainerCallback):
    """Appends every log record (one per logging step) to ``output_dir/metrics.jsonl``; TRL's ``eval_*``
    metrics of a held-out evaluation are written under their ``heldout/*`` names (`heldout_name`)."""

    def __init__(self, path: Path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            record = {"step": state.global_step, **{heldout_name(key): value for key, value in logs.items()}}
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")


def build_rows(config: RunConfig) -> list[PromptRow]:
    if config.data.source == "file":
        return load_prompt_rows(config.data.path)
    if config.data.source == "hub":
        try:
            return load_hir_hub(config.data.path)
        except (ImportError, OSError, ValueError) as error:  # offline, unknown id, no such split: one line
            if isinstance(error, DataError):
                raise
            raise ConfigError(f"data.path {config.data.path!r} (data.source 'hub'): the dataset could not be loaded: "
                              f"{type(error).__name__}: {error}; offline, use data.source 'file' or a local dataset "
                              "folder as data.path") from None
    return _testbed_rows(config, config.data.testbed.num_prompts, config.data.testbed.seed)


def build_heldout_rows(config: RunConfig, train_rows: list[PromptRow]) -> list[PromptRow] | None:
    """The held-out prompts (None when ``eval.source`` is none), without any prompt the run trains on."""
    if config.eval.source == "none":
        return None
    rows = (load_prompt_rows(config.eval.path) if config.eval.source == "file"
            else _testbed_rows(config, config.eval.num_prompts, config.eval.seed))
    trained = {row.prompt for row in train_rows}
    rows = [row for row in rows if row.prompt not in trained]
    if not rows:
        raise ConfigError("eval: every held-out prompt is also a training prompt; choose another eval.seed or file")
    return rows


def _testbed_rows(config: RunConfig, count: int, seed: int) -> list[PromptRow]:
    """Testbed prompts with data.testbed's settings, satisfiable within the run's completion limit."""
    testbed = config.data.testbed
    return generate_rows(count, seed=seed, min_rubrics=testbed.min_rubrics, max_rubrics=testbed.max_rubrics,
                         families=testbed.families, max_tokens=config.training.max_completion_length,
                         quality_rubrics=testbed.quality_rubrics)


def build_trainer(config: RunConfig, trainer_class: type[RTTGRPOTrainer] = RTTGRPOTrainer,
                  verbosity: str = "normal") -> RTTGRPOTrainer:
    """The trainer of a run; ``verbosity`` (quiet, normal, verbose) sets what `RunProgress` prints."""
    args = config.training
    # every input is read and checked before the policy loads and before the output folder exists
    rows = build_rows(config)
    heldout = build_heldout_rows(config, rows)
    if args.relevance_source == "model" and not Path(args.relevance_model).is_dir():
        raise ConfigError(f"training.relevance_model {args.relevance_model!r} is not a folder (a trained relevance "
                          "model from `rtt relevance train`)")
    if config.scoring.judge.local_model and config.scoring.mode != "verifiers":
        check_model_name(config.scoring.judge.local_model)  # a misspelt judge fails before the policy loads
    model, tokenizer = load_policy(config.model.name_or_path, dtype=config.model.dtype)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    scoring = config.scoring
    allow_dataset_code(scoring.allow_dataset_code, SandboxLimits(scoring.rule_timeout_s, scoring.rule_memory_mb,
                                                                 scoring.rule_workers))
    scorer = scorer_from_config(scoring.mode, scoring.judge, device=args.device)  # a local judge beside the policy
    trainer = trainer_class(model=model, scorer=scorer, args=args, train_dataset=to_trl_dataset(rows),
                            eval_dataset=None if heldout is None else to_trl_dataset(heldout),
                            processing_class=tokenizer, callbacks=[JsonlMetrics(output_dir / METRICS_FILE)])
    # one bar and one line per step instead of transformers' bar and its dict of every metric per step
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(RunProgress(verbosity))
    silence_known_harmless_messages(trainer.model)
    return trainer
