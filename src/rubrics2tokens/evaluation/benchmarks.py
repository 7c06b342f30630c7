"""The IFEval, IFBench and MulDimIF test sets: one `BenchmarkPrompt` per prompt.

Without a path, each benchmark is read from the test set the package ships (`rubrics2tokens.resources`), so
evaluation works offline. IFEval and IFBench share a row layout,
``{key, prompt, instruction_id_list, kwargs}``, with ``kwargs`` aligned index by index with
``instruction_id_list``. IFEval keys are integers and IFBench keys strings; keys are kept as strings here so a
responses file may write either.

MulDimIF's ``test.json`` is a JSON array of ``{id, conversations, constraints,
constraint_pattern, difficulty}``): the key is ``id``, the prompt is the last user turn, and each constraint
``[category, subcategory, description]`` becomes the verifier of its raw key (`muldimif.RAW_KEYS`) with the
description as its only argument.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rubrics2tokens.data.schema import DataError, open_binary, read_jsonl
from rubrics2tokens.resources import benchmark_file
from rubrics2tokens.verifiers.ifeval import IFBENCH_PREFIX, IFEVAL_PREFIX
from rubrics2tokens.verifiers.muldimif import MULDIMIF_PREFIX, constraint_kind

VERIFIER_PREFIXES = {"ifeval": IFEVAL_PREFIX, "ifbench": IFBENCH_PREFIX, "muldimif": MULDIMIF_PREFIX}
"""Benchmark name -> prefix of its verifier ids."""

@dataclass(frozen=True)
class BenchmarkPrompt:
    """One benchmark prompt with its instructions (``punctuation:no_comma``) and their kwargs."""

    benchmark: str
    key: str
    prompt: str
    instruction_ids: tuple[str, ...]
    kwargs: tuple[dict[str, Any], ...]
    categories: tuple[str, ...] = ()
    """MulDimIF only: each constraint's reporting category (``Content_Keywords``), aligned with the instructions."""
    difficulty: str | None = None
    """MulDimIF only: ``Level 1`` to ``Level 4``."""
    messages: tuple[dict[str, str], ...] | None = None
    """MulDimIF only: the conversation to answer, ending with the user turn that `prompt` holds."""

    @property
    def verifier_ids(self) -> tuple[str, ...]:
        """The registry ids of the instructions (``ifeval:punctuation:no_comma``)."""
        return tuple(VERIFIER_PREFIXES[self.benchmark] + instruction_id for instruction_id in self.instruction_ids)


def load_benchmark(benchmark: str, path: str | Path | None = None) -> list[BenchmarkPrompt]:
    """Read a benchmark's test prompts from a file (``.gz`` too), by default the test set the package ships."""
    if benchmark not in VERIFIER_PREFIXES:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {sorted(VERIFIER_PREFIXES)}")
    path = benchmark_file(benchmark) if path is None else path
    if benchmark == "muldimif":
        return load_muldimif(path)
    return [_parse_row(row, benchmark, path, number) for number, row in read_jsonl(path)]


def _parse_row(row: dict[str, Any], benchmark: str, path: str | Path, number: int) -> BenchmarkPrompt:
    for name in ("key", "prompt", "instruction_id_list", "kwargs"):
        if name not in row:
            raise DataError(path, number, name, "missing")
    if not isinstance(row["prompt"], str):
        raise DataError(path, number, "prompt", f"must be a string, got {type(row['prompt']).__name__}")
    instruction_ids, kwargs = row["instruction_id_list"], row["kwargs"]
    if not isinstance(instruction_ids, list) or not isinstance(kwargs, list) or len(instruction_ids) != len(kwargs):
        raise DataError(path, number, "kwargs", "must be a list aligned with 'instruction_id_list'")
    return BenchmarkPrompt(benchmark=benchmark, key=str(row["key"]), prompt=row["prompt"],
                           instruction_ids=tuple(instruction_ids), kwargs=tuple(dict(item or {}) for item in kwargs))


def load_muldimif(path: str | Path) -> list[BenchmarkPrompt]:
    """The MulDimIF test samples of a ``test.json`` array (``.json.gz`` too); a malformed sample is a `DataError`
    (its number is its 1-based index)."""
    with open_binary(path) as file:
        samples = json.load(file)
    if not isinstance(samples, list):
        raise DataError(path, 1, "<file>", "expected a JSON array of samples")
    return [_parse_muldimif_sample(sample, path, number) for number, sample in enumerate(samples, start=1)]


def _parse_muldimif_sample(sample: Any, path: str | Path, number: int) -> BenchmarkPrompt:
    for name in ("id", "conversations", "constraints"):
        if not isinstance(sample, dict) or name not in sample:
            raise DataError(path, number, name, "missing")
    messages = tuple({"role": turn["role"], "content": turn["content"]} for turn in sample["conversations"])
    user_turns = [turn["content"] for turn in messages if turn["role"] == "user"]
    if not user_turns:
        raise DataError(path, number, "conversations", "has no user turn")
    kinds, descriptions = [], []
    for category, subcategory, description in sample["constraints"]:
        try:
            kinds.append(constraint_kind(category, subcategory))
        except KeyError:
            raise DataError(path, number, "constraints", f"unknown constraint key {category}_{subcategory}") from None
        descriptions.append(description)
    return BenchmarkPrompt(benchmark="muldimif", key=str(sample["id"]), prompt=user_turns[-1],
                           instruction_ids=tuple(kind.checker for kind in kinds),
                           kwargs=tuple({"description": description} for description in descriptions),
                           categories=tuple(kind.category for kind in kinds),
                           difficulty=sample.get("difficulty"), messages=messages)
