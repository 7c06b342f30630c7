"""The range and choice of every run-config field, checked before anything loads.

`FIELD_RULES` maps each dotted key of a run config to its rule: the sections of `rubrics2tokens.config`,
the RTT fields of `RTTConfig`, and the TRL/transformers fields a run config usually sets (the other TRL
fields keep TRL's own checks). Every field of our own sections and every RTT field must appear here, with
`FREE` where any value of the right type will do; a test walks the table with an out-of-range value per
field. The checks read the YAML tree before the dataclasses are built, so a bad value is reported with its
key and its source (the YAML file or the command-line override) instead of surfacing after the model
loaded (a negative learning rate used to fail inside torch's Adam, a misspelt dtype in ``getattr(torch, ...)``).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from rubrics2tokens.advantages import AGGREGATIONS, COMBINE_METHODS, PARTITIONS
from rubrics2tokens.data.synthetic import FAMILIES, QUALITY_FAMILIES
from rubrics2tokens.generation.rollout import ROLLOUT_BACKENDS, ROLLOUT_DTYPES
from rubrics2tokens.relevance.sources import RELEVANCE_SOURCES
from rubrics2tokens.scoring.router import MODES
from rubrics2tokens.trainer.completion_logprobs import LOGPROB_HEADS
from rubrics2tokens.yaml_config import ConfigError, config_source

DTYPES = ("float32", "bfloat16", "float16")
DATA_SOURCES = ("testbed", "file", "hub")
EVAL_SOURCES = ("testbed", "file", "none")


@dataclass(frozen=True)
class Rule:
    """What a field accepts: ``problem(value)`` says why a value is refused (None: accepted); ``bad`` is an
    out-of-range value, for the test that walks every field."""

    describe: str
    accepts: Callable[[Any], bool]
    bad: Any
    choices: tuple[str, ...] = ()

    def problem(self, value: Any) -> str | None:
        if value is None or self.accepts(value):
            return None
        shown = _number(value) if isinstance(value, str) and _number(value) is not None else value
        return f"must be {self.describe}, got {shown!r}"


def _number(value: Any) -> float | None:
    """A YAML number (YAML 1.1 reads ``1e-5`` as a string); None for anything else, whose type the dataclass
    build reports."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, (int, float, str)) else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _numeric(describe: str, test: Callable[[float], bool], bad: Any) -> Rule:
    return Rule(describe, lambda value: _number(value) is None or test(_number(value)), bad)


def above(low: float) -> Rule:
    return _numeric(f"> {low}", lambda x: x > low, low)


def at_least(low: float) -> Rule:
    return _numeric(f">= {low}", lambda x: x >= low, low - 1)


def between(low: float, high: float, high_open: bool = False) -> Rule:
    describe = f"in [{low}, {high})" if high_open else f"in [{low}, {high}]"
    return _numeric(describe, lambda x: low <= x < high if high_open else low <= x <= high, high + 1)


def one_of(choices: Sequence[str]) -> Rule:
    return Rule(f"one of {', '.join(choices)}", lambda value: value in choices, "nonsense", tuple(choices))


FREE = Rule("anything of its type", lambda value: True, None)
"""A field whose values are all meaningful (names, paths, seeds, switches)."""

FAMILY_NAMES = Rule(f"a list of rule families ({', '.join(FAMILIES)})",
                    lambda value: not isinstance(value, list) or all(name in FAMILIES for name in value),
                    ["no_such_family"])

QUALITY_NAMES = Rule(f"a list of quality families ({', '.join(QUALITY_FAMILIES)})",
                     lambda value: not isinstance(value, list) or all(name in QUALITY_FAMILIES for name in value),
                     ["no_such_family"])

MAX_STEPS = _numeric("-1 (train num_train_epochs) or >= 1", lambda x: x == -1 or x >= 1, 0)

FIELD_RULES: dict[str, Rule] = {
    "model.name_or_path": FREE,
    "model.dtype": one_of(DTYPES),
    "data.source": one_of(DATA_SOURCES),
    "data.path": FREE,  # checked for existence once the source is known
    "data.testbed.num_prompts": at_least(1),
    "data.testbed.seed": FREE,
    "data.testbed.min_rubrics": at_least(1),
    "data.testbed.max_rubrics": at_least(1),
    "data.testbed.families": FAMILY_NAMES,
    "data.testbed.quality_rubrics": QUALITY_NAMES,
    "scoring.mode": one_of(MODES),
    "scoring.judge.base_url": FREE,
    "scoring.judge.model": FREE,
    "scoring.judge.api_key_env": FREE,
    "scoring.judge.max_concurrency": at_least(1),
    "scoring.judge.timeout_s": above(0),
    "scoring.judge.max_retries": at_least(0),
    "scoring.judge.backoff_base_s": above(0),
    "scoring.judge.backoff_max_s": above(0),
    "scoring.judge.temperature": at_least(0),
    "scoring.judge.max_tokens": at_least(1),
    "scoring.judge.cache_path": FREE,
    "scoring.judge.batch_timeout_s": above(0),
    "scoring.judge.local_model": FREE,  # a model name, checked as the run starts (and not with a server: below)
    "scoring.judge.local_batch_size": at_least(1),
    "scoring.allow_dataset_code": FREE,
    "scoring.rule_timeout_s": above(0),
    "scoring.rule_memory_mb": at_least(16),
    "scoring.rule_workers": at_least(1),
    "eval.source": one_of(EVAL_SOURCES),
    "eval.path": FREE,
    "eval.num_prompts": at_least(1),
    "eval.seed": FREE,
    "eval.samples": at_least(1),
    "eval.every": at_least(1),
    # the RTT fields of RTTConfig
    "training.reward_aggregation": one_of(AGGREGATIONS),
    "training.token_partition": one_of(PARTITIONS),
    "training.token_advantage_method": one_of(COMBINE_METHODS),
    "training.token_advantage_coef": at_least(0),
    "training.token_softmax_tau": above(0),
    "training.relevance_source": one_of(RELEVANCE_SOURCES),
    "training.relevance_model": FREE,
    "training.relevance_threshold": between(0, 1, high_open=True),
    "training.token_std_floor": at_least(0),
    "training.relevance_batch_size": at_least(1),
    "training.rollout_backend": one_of(ROLLOUT_BACKENDS),
    "training.logprob_head": one_of(LOGPROB_HEADS),
    "training.rollout_batch_size": at_least(1),
    "training.rollout_dtype": one_of(ROLLOUT_DTYPES),
    "training.zero_special_tokens": FREE,
    "training.stop_credit": FREE,
    "training.keep_checkpoints": FREE,
    "training.overlong_penalty_tokens": at_least(0),  # at most max_completion_length: RTTConfig checks the pair
    # TRL / transformers fields a run config sets; ranges where a bad value fails late or means nothing
    "training.learning_rate": above(0),
    "training.max_steps": MAX_STEPS,
    "training.num_train_epochs": above(0),
    "training.per_device_train_batch_size": at_least(1),
    "training.gradient_accumulation_steps": at_least(1),
    "training.num_generations": at_least(2),
    "training.generation_batch_size": at_least(1),
    "training.steps_per_generation": at_least(1),
    "training.max_completion_length": at_least(1),
    "training.temperature": above(0),
    "training.top_p": _numeric("in (0, 1]", lambda x: 0 < x <= 1, 2),
    "training.top_k": at_least(0),
    "training.min_p": between(0, 1),
    "training.repetition_penalty": above(0),
    "training.beta": at_least(0),
    "training.epsilon": at_least(0),
    "training.epsilon_high": at_least(0),
    "training.num_iterations": at_least(1),
    "training.logging_steps": above(0),
    "training.save_steps": above(0),
    "training.save_total_limit": at_least(1),
    "training.warmup_steps": at_least(0),
    "training.weight_decay": at_least(0),
    "training.max_grad_norm": at_least(0),
    "training.adam_beta1": between(0, 1, high_open=True),
    "training.adam_beta2": between(0, 1, high_open=True),
    "training.adam_epsilon": above(0),
}


def _leaves(tree: Any, prefix: str = ""):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, tree


def check_field_ranges(tree: dict, path: str, overrides: Sequence[str]) -> None:
    """Raise `ConfigError` for the first value of ``tree`` (a run config's YAML mapping, overrides applied)
    that its rule refuses, naming the key and where the value came from."""
    for key, value in _leaves(tree):
        rule = FIELD_RULES.get(key)
        problem = rule.problem(value) if rule else None
        if problem is None:
            continue
        close = difflib.get_close_matches(value, rule.choices, n=1) if isinstance(value, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{config_source(path, overrides, [key])}: {key} {problem}{hint}", [key])


SERVER_JUDGE_KEYS = ("base_url", "model", "cache_path")
"""Judge settings that belong to a judge server (the local judge keeps no verdict cache either)."""


def check_judge_source(tree: dict, path: str, overrides: Sequence[str]) -> None:
    """A run's judge is a server (``scoring.judge.base_url`` and ``model``) or a local model (``local_model``),
    never both: with ``local_model`` set, any of `SERVER_JUDGE_KEYS` in ``tree`` is a `ConfigError`, since a
    run would silently ignore it and a reader of the config could not tell which judge scored."""
    scoring = tree.get("scoring")
    judge = scoring.get("judge") if isinstance(scoring, dict) else None
    if not isinstance(judge, dict) or not judge.get("local_model"):
        return
    for name in SERVER_JUDGE_KEYS:
        if judge.get(name) is not None:
            key = f"scoring.judge.{name}"
            source = config_source(path, overrides, [key, "scoring.judge.local_model"])
            raise ConfigError(f"{source}: {key} is set, but scoring.judge.local_model names a local judge: a run "
                              f"has one judge, a server (base_url and model) or a local model; remove one of them"
                              + (" (the local judge keeps no verdict cache)" if name == "cache_path" else ""), [key])
