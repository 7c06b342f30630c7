"""AdvancedIF (facebook/AdvancedIF): its prompts, each with its conversation and expert rubrics.

The public release is one CSV, ``if_oss_full_data.csv`` (1,645 rows), with the columns

- ``benchmark_name``: the task (`TASKS`);
- ``conversation_history``: a JSON list of chat messages ``{"role", "content"}``, a system message first where
  there is one; a multi-turn row ends on the user turn to answer;
- ``prompt_metadata``: a JSON object whose ``rubrics`` is itself a JSON-encoded list of rubric strings.

A JSONL file with the same fields is read too (each field either JSON-encoded as in the CSV or already decoded),
as are both gzip-compressed (``.csv.gz``, ``.jsonl.gz``). A prompt's key is its row's 0-based index in the file,
header excluded; an error names the 1-based row (the key plus one; row 0 is the CSV's header).

The task names in the data (``complex_if_single_turn_v5``) differ from those in the release's README
(``complex_if_single_turn_oss``); both are read, and every task is reported under one canonical name. No copy
of AdvancedIF ships with the package (its licence and size keep it out): ``--data`` must name one.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from rubrics2tokens.data.schema import DataError, open_binary, read_jsonl

TASKS = ("complex_if_single_turn", "carried_context_multi_turn", "system_steerability")
"""The canonical task names: the names in the data and in the README, less their version or ``_oss`` suffix and
then any ``_eval`` (`canonical_task`)."""

# A task's name in the data or the README, less this suffix (and then a trailing "_eval"), is its canonical name:
# complex_if_single_turn_v5, complex_if_single_turn_oss -> complex_if_single_turn.
_TASK_SUFFIX = re.compile(r"_(v\d+|oss)$")
RELEASE_TASK_NAMES = ("complex_if_single_turn_v5", "carried_context_multi_turn_eval_v5", "system_steerability_v2")
"""The task names of the released data file (its README writes them with ``_oss`` instead of the version)."""

COLUMNS = ("benchmark_name", "conversation_history", "prompt_metadata")
ROLES = ("system", "user", "assistant")
MISSING_DATA = ("AdvancedIF is not shipped with rtt and cannot be downloaded here: pass --data with a local copy of "
                "its if_oss_full_data.csv (facebook/AdvancedIF on the Hugging Face Hub), or a JSONL file with the "
                "same fields")

# The CSV's conversations run past the csv module's default field limit (128 KiB); 2**31 - 1 is the largest limit
# every platform's C long accepts.
_CSV_FIELD_LIMIT = 2**31 - 1
_GZIP_SUFFIX = re.compile(r"\.gz$")


@dataclass(frozen=True)
class AdvancedIFPrompt:
    """One AdvancedIF prompt: the conversation to answer and the rubrics a response is judged on."""

    key: str
    """The row's 0-based index in the data file."""
    task: str
    """The canonical task name (`TASKS`)."""
    messages: tuple[dict[str, str], ...]
    """The conversation as given (system message first where there is one), ending on the user turn to answer."""
    rubrics: tuple[str, ...]

    @property
    def prompt(self) -> str:
        """The user turn to answer (the last message)."""
        return self.messages[-1]["content"]

    @property
    def instruction(self) -> str:
        """The conversation as one text for a judge: a lone user turn as it is, else every turn under its role."""
        if len(self.messages) == 1:
            return self.prompt
        return render_conversation(self.messages)


def render_conversation(messages: tuple[dict[str, str], ...] | list[dict[str, str]]) -> str:
    """Each turn in a tag named after its role, in order: ``<system>...</system>``, ``<user>...</user>``."""
    return "\n\n".join(f"<{message['role']}>\n{message['content']}\n</{message['role']}>" for message in messages)


def canonical_task(name: str) -> str | None:
    """The canonical name of a task spelled as the data or the README spells it, or None if it is unknown."""
    stem = _TASK_SUFFIX.sub("", name.strip()).removesuffix("_eval")
    return stem if stem in TASKS else None


def load_advancedif(path: str | Path | None) -> list[AdvancedIFPrompt]:
    """The prompts of an AdvancedIF CSV or JSONL file (``.gz`` too), in file order; a malformed row is a
    `DataError` naming the file, the row and the field. ``path`` None is an error that says where to get the data."""
    if path is None:
        raise FileNotFoundError(MISSING_DATA)
    rows = _read_csv(path) if _GZIP_SUFFIX.sub("", str(path)).endswith(".csv") else _read_jsonl(path)
    return [_parse_row(row, path, index) for index, row in enumerate(rows)]


def _read_csv(path: str | Path) -> Iterator[dict[str, Any]]:
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    # newline="" lets the csv module see the line breaks inside quoted fields (every multi-line conversation)
    with io.TextIOWrapper(open_binary(path), encoding="utf-8-sig", newline="") as text:
        reader = csv.DictReader(text)
        missing = [column for column in COLUMNS if column not in (reader.fieldnames or ())]
        if missing:
            # row 0: the header, before the first prompt's row 1
            raise DataError(path, 0, missing[0], f"not a column of the header, which must name {', '.join(COLUMNS)} "
                                                 f"(it names {', '.join(reader.fieldnames or ()) or 'nothing'})")
        yield from reader


def _read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    for _, row in read_jsonl(path):
        yield row


def _parse_row(row: dict[str, Any], path: str | Path, index: int) -> AdvancedIFPrompt:
    def error(field_name: str, problem: str) -> DataError:
        return DataError(path, index + 1, field_name, f"{problem} (key {index})")

    for name in COLUMNS:
        if row.get(name) in (None, ""):
            raise error(name, "missing or empty")
    task = canonical_task(str(row["benchmark_name"]))
    if task is None:
        raise error("benchmark_name", f"unknown task {row['benchmark_name']!r}; expected one of "
                                      f"{', '.join(RELEASE_TASK_NAMES)} (or with _oss for the version)")
    messages = _decoded(row["conversation_history"], list, lambda problem: error("conversation_history", problem))
    metadata = _decoded(row["prompt_metadata"], dict, lambda problem: error("prompt_metadata", problem))
    rubrics = _decoded(metadata.get("rubrics"), list,
                       lambda problem: error("prompt_metadata", f"its 'rubrics' {problem}"))
    return AdvancedIFPrompt(key=str(index), task=task, messages=_checked_messages(messages, error),
                            rubrics=_checked_rubrics(rubrics, error))


def _decoded(value: Any, expected: type, error: Callable[[str], DataError]) -> Any:
    """``value`` as a JSON ``expected`` (list or dict): decoded first when it is a string, as the CSV stores it."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as decode_error:
            raise error(f"is not valid JSON ({decode_error.msg} at character {decode_error.pos})") from None
    if not isinstance(value, expected):
        raise error(f"must be a JSON {'list' if expected is list else 'object'}, got {type(value).__name__}")
    return value


def _checked_messages(messages: list[Any], error: Callable[[str, str], DataError]) -> tuple[dict[str, str], ...]:
    checked = []
    for number, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES \
                or not isinstance(message.get("content"), str):
            raise error("conversation_history", f"message {number} must be {{'role': one of {', '.join(ROLES)}, "
                                                "'content': a string}}")
        checked.append({"role": message["role"], "content": message["content"]})
    if not checked or checked[-1]["role"] != "user":
        raise error("conversation_history", "must end on the user turn to answer")
    return tuple(checked)


def _checked_rubrics(rubrics: list[Any], error: Callable[[str, str], DataError]) -> tuple[str, ...]:
    if not rubrics or not all(isinstance(rubric, str) and rubric.strip() for rubric in rubrics):
        raise error("prompt_metadata", "its 'rubrics' must be a non-empty list of non-empty strings")
    return tuple(rubrics)


def read_advancedif_responses(path: str | Path, prompts: list[AdvancedIFPrompt]
                              ) -> list[tuple[AdvancedIFPrompt, str]]:
    """(prompt, response) pairs of a responses JSONL, one ``{"key", "response"}`` a line (``prompt``, if given,
    must be the prompt's last user turn). The key is required: the same user turn may open several rows (system
    steerability asks one question under different system prompts), so a text names no row."""
    by_key = {item.key: item for item in prompts}
    pairs = []
    for number, row in read_jsonl(path):
        if not isinstance(row.get("response"), str):
            raise DataError(path, number, "response", f"must be a string, got {row.get('response')!r}")
        if "key" not in row:
            raise DataError(path, number, "key", "missing: each row needs the key of the AdvancedIF row it answers "
                                                 "(the row's 0-based index in the data file)")
        item = by_key.get(str(row["key"]))
        if item is None:
            raise DataError(path, number, "key", f"{row['key']!r} is not a row of the AdvancedIF data "
                                                 f"(keys 0 to {len(prompts) - 1})")
        if "prompt" in row and row["prompt"] != item.prompt:
            raise DataError(path, number, "prompt", f"is not the last user turn of AdvancedIF row {item.key}")
        pairs.append((item, row["response"]))
    return pairs
