"""HIR-16K rows (Hub dataset ``sastpg/HIR-16K``) mapped onto our `PromptRow` / `Rubric`.

A HIR-16K record has ``id``, ``messages``, ``prompt``, ``rubrics`` (``[{id, category, description,
weight}]``; the raw Hub file calls the same list ``criteria`` and gives plain strings), ``source``
and ``ground_truth`` (an object, or the same object as a JSON string). ``ground_truth`` is aligned
index by index with the rubrics, and its shape depends on ``source``:

=======  ==========================================================  ===============================
source   ``ground_truth``                                            rubric k becomes
=======  ==========================================================  ===============================
type1    ``instruction_id_list``, ``kwargs`` (IFEval ids)            ``ifeval:<id>`` with ``kwargs[k]``
type2    ``instruction_id_list``, ``kwargs`` (IFBench ids)           ``ifbench:<id>`` with ``kwargs[k]``
type3    ``constraints``: ``[[category, subcategory, description]]``  `muldimif_verifier_id`, with
                                                                     ``{"description": description}``
type4    ``checker``: ``["[rule] ..." | "[llm] ..."]``,              ``[rule]``: ``dataset_rule`` with
         ``functions``: Python source defining                       ``{"code", "function",
         ``check_following(instruction, response) -> bool``          "instruction"}``; ``[llm]``: judge
=======  ==========================================================  ===============================

Source of this format: the RTT authors' reward worker (github.com/TURLEing/Rubrics-To-Tokens,
``roll/pipeline/rlvr/rewards/rubrics_llm_judge_reward_worker.py``), which reads exactly these fields
and calls a type4 function as ``check_following(prompt, response)``. Unlike that code, every rubric
is kept (no cap at 20), a list that is not aligned with the rubrics is a `DataError` rather than a
silent judge fallback, and dataset code only runs in `rubrics2tokens.verifiers.sandbox`.

The `PromptRow` gets ``source="hir:<type>"`` and a ground truth in our own id form, so a row written
back with `write_prompt_rows` reloads through the plain schema without being mapped twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rubrics2tokens.data.schema import DataError, PromptRow, parse_row
from rubrics2tokens.verifiers.muldimif import MULDIMIF_PREFIX, constraint_kind
from rubrics2tokens.verifiers.registry import DATASET_RULE_ID
from rubrics2tokens.verifiers.sandbox import DEFAULT_FUNCTION

HUB_DATASET = "sastpg/HIR-16K"
HIR_SOURCES = ("type1", "type2", "type3", "type4")
VERIFIER_PREFIXES = {"type1": "ifeval:", "type2": "ifbench:"}
RULE_CHECKER_TAG = "[rule]"


def is_hir_record(record: Any) -> bool:
    return isinstance(record, dict) and record.get("source") in HIR_SOURCES


def muldimif_verifier_id(category: str, subcategory: str) -> str | None:
    """The verifier id of a MulDimIF constraint ``[category, subcategory, description]``, or None (the judge)
    for kinds the code checkers do not cover and for Chinese-script rules, which the RTT authors also send to
    the judge (their code checker needs the optional, GPL-licensed zhconv)."""
    try:
        checker = constraint_kind(category, subcategory).checker
    except KeyError:
        return None
    return None if checker == "language_chinese" else MULDIMIF_PREFIX + checker


def parse_hir_row(record: Any, path: str | Path = "<memory>", row: int = 1) -> PromptRow:
    """Validate one HIR-16K record and map it to a `PromptRow`; raise `DataError` naming file, row and field."""

    def fail(field_name: str, problem: str) -> DataError:
        return DataError(path, row, field_name, problem)

    if not is_hir_record(record):
        raise fail("source", f"must be one of {', '.join(HIR_SOURCES)}")
    rubrics_field = "rubrics" if "rubrics" in record else "criteria"
    rubrics = record.get(rubrics_field)
    if not isinstance(rubrics, list) or not rubrics:
        raise fail("rubrics", "must be a non-empty list of {description, ...} objects (or 'criteria' strings)")
    ground_truth = _ground_truth_object(record.get("ground_truth"), fail)
    prompt_text = _prompt_text(record)

    source = record["source"]
    if source in VERIFIER_PREFIXES:
        verifiers, kwargs = _instruction_ids(ground_truth, len(rubrics), VERIFIER_PREFIXES[source], fail)
    elif source == "type3":
        verifiers, kwargs = _muldimif_constraints(ground_truth, len(rubrics), fail)
    else:
        verifiers, kwargs = _type4_checkers(ground_truth, len(rubrics), prompt_text, fail)

    ours = {**record, "rubrics": rubrics, "source": f"hir:{source}",
            "ground_truth": {"instruction_id_list": verifiers, "kwargs": kwargs}}
    ours.pop("criteria", None)
    return parse_row(ours, path, row)  # the shared checks: messages, prompt, descriptions, weights


def load_hir_hub(dataset: str = HUB_DATASET, split: str = "train", revision: str | None = None) -> list[PromptRow]:
    """Load HIR-16K from the Hugging Face Hub (needs the ``datasets`` package and Hub access)."""
    from datasets import load_dataset

    records = load_dataset(dataset, split=split, revision=revision)
    # Arrow gives every record every column of the file: a field a record lacks arrives as None
    return [parse_hir_row({key: value for key, value in record.items() if value is not None}, f"{dataset}:{split}",
                          number)
            for number, record in enumerate(records, start=1)]


# ---------------------------------------------------------------- one mapping per source


def _ground_truth_object(ground_truth: Any, fail) -> dict[str, Any]:
    if isinstance(ground_truth, str):  # Arrow-friendly exports store it as JSON text
        try:
            ground_truth = json.loads(ground_truth)
        except json.JSONDecodeError as error:
            raise fail("ground_truth", f"is a string but not valid JSON ({error.msg})") from None
    if not isinstance(ground_truth, dict):
        raise fail("ground_truth", "must be an object (or its JSON text)")
    return ground_truth


def _prompt_text(record: dict[str, Any]) -> str:
    """The text a type4 rule receives as ``instruction``: ``prompt``, else the last user message."""
    if isinstance(record.get("prompt"), str):
        return record["prompt"]
    messages = record.get("messages")
    if isinstance(messages, list):
        users = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(users[-1], str):
            return users[-1]
    return ""


def _aligned_list(ground_truth: dict[str, Any], key: str, length: int, fail) -> list[Any]:
    items = ground_truth.get(key)
    if not isinstance(items, list) or len(items) != length:
        found = f"{len(items)} items" if isinstance(items, list) else type(items).__name__
        raise fail(f"ground_truth.{key}", f"must be a list aligned with the rubrics ({length} items), got {found}")
    return items


def _instruction_ids(ground_truth, length, prefix, fail) -> tuple[list[str], list[dict[str, Any]]]:
    ids = _aligned_list(ground_truth, "instruction_id_list", length, fail)
    kwargs = _aligned_list(ground_truth, "kwargs", length, fail)
    for k, instruction_id in enumerate(ids):
        if not isinstance(instruction_id, str) or not instruction_id:
            raise fail(f"ground_truth.instruction_id_list[{k}]", "must be a non-empty instruction id string")
    return [prefix + instruction_id for instruction_id in ids], [item or {} for item in kwargs]


def _muldimif_constraints(ground_truth, length, fail) -> tuple[list[str | None], list[dict[str, Any]]]:
    constraints = _aligned_list(ground_truth, "constraints", length, fail)
    verifiers, kwargs = [], []
    for k, constraint in enumerate(constraints):
        if not isinstance(constraint, list) or len(constraint) < 3 \
                or not all(isinstance(part, str) for part in constraint[:3]):
            raise fail(f"ground_truth.constraints[{k}]", "must be a [category, subcategory, description] list")
        category, subcategory, description = constraint[:3]
        verifiers.append(muldimif_verifier_id(category, subcategory))
        kwargs.append({"description": description})
    return verifiers, kwargs


def _type4_checkers(ground_truth, length, prompt_text, fail) -> tuple[list[str | None], list[dict[str, Any]]]:
    checkers = _aligned_list(ground_truth, "checker", length, fail)
    functions = _aligned_list(ground_truth, "functions", length, fail)
    verifiers, kwargs = [], []
    for k, (checker, code) in enumerate(zip(checkers, functions)):
        if not isinstance(checker, str):
            raise fail(f"ground_truth.checker[{k}]", "must be a string such as '[rule] ...' or '[llm] ...'")
        if code is not None and not isinstance(code, str):
            raise fail(f"ground_truth.functions[{k}]", "must be Python source text (or empty)")
        if checker.startswith(RULE_CHECKER_TAG) and code and code.strip():
            verifiers.append(DATASET_RULE_ID)
            kwargs.append({"code": code, "function": DEFAULT_FUNCTION, "instruction": prompt_text})
        else:  # an [llm] item, or a rule without code: only the judge can check it
            verifiers.append(None)
            kwargs.append({})
    return verifiers, kwargs
