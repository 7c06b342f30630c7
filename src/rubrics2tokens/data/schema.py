"""The prompt-row schema (HIR-16K style) and its JSONL reader and writer.

Rows in the HIR-16K dataset's own format are mapped onto this schema by `rubrics2tokens.data.hir`;
`rubrics2tokens.data.row_formats.load_prompt_rows` reads a file of either kind.

One row is one prompt with its rubric items. On disk a row follows HIR-16K (method.md §7)::

    {"id": "...", "messages": [{"role": "user", "content": "..."}], "prompt": "...",
     "rubrics": [{"description": "...", "weight": 1.0}, ...],
     "source": "testbed",
     "ground_truth": {"instruction_id_list": ["testbed:no_commas", ...], "kwargs": [{}, ...]}}

``ground_truth`` is aligned index by index with ``rubrics``: item k names the verifier of rubric k
and its arguments. A rubric with no verifier id (``null``) goes to the LLM judge. ``weight`` is the
rubric's importance (default 1, must be >= 0).
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator, TextIO, TypeVar

from rubrics2tokens.verifiers.registry import UnknownVerifierError, argument_problem

logger = logging.getLogger(__name__)

Identified = TypeVar("Identified")
"""Anything with an ``id`` attribute (a `PromptRow`, a labelled pair)."""


class DataError(ValueError):
    """A malformed data row; the message names the file, the row (1-based line) and the field."""

    def __init__(self, path: str | Path, row: int, field_name: str, problem: str):
        self.path, self.row, self.field_name = str(path), row, field_name
        super().__init__(f"{path}, row {row}, field '{field_name}': {problem}")


@dataclass(frozen=True)
class Rubric:
    """One rubric item: its text, its verifier (``None`` = LLM judge), the verifier's arguments, its weight."""

    description: str
    verifier: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0

    @property
    def family(self) -> str:
        """Name used to group pass rates in logs: the verifier id, or ``judge``."""
        return self.verifier or "judge"


@dataclass(frozen=True)
class PromptRow:
    """One prompt and its rubrics. ``messages`` is the chat the policy sees; ``prompt`` its plain text."""

    id: str
    prompt: str
    messages: list[dict[str, str]]
    rubrics: list[Rubric]
    source: str = "unknown"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "messages": self.messages,
            "prompt": self.prompt,
            "rubrics": [{"description": r.description, "weight": r.weight} for r in self.rubrics],
            "source": self.source,
            "ground_truth": {
                "instruction_id_list": [r.verifier for r in self.rubrics],
                "kwargs": [r.kwargs for r in self.rubrics],
            },
        }


def rubrics_to_json(rubrics: list[Rubric]) -> str:
    """Serialize rubrics for a dataset column (a JSON string keeps Arrow from merging kwargs schemas)."""
    return json.dumps([{"description": r.description, "verifier": r.verifier, "kwargs": r.kwargs,
                        "weight": r.weight} for r in rubrics])


def rubrics_from_json(text: str) -> list[Rubric]:
    return [Rubric(**item) for item in json.loads(text)]


def parse_row(record: Any, path: str | Path = "<memory>", row: int = 1) -> PromptRow:
    """Validate one decoded JSON record and build a `PromptRow`; raise `DataError` on any problem."""

    def fail(field_name: str, problem: str) -> DataError:
        return DataError(path, row, field_name, problem)

    if not isinstance(record, dict):
        raise fail("<row>", f"expected a JSON object, got {type(record).__name__}")
    row_id = record.get("id", f"row-{row}")
    if not isinstance(row_id, (str, int)):
        raise fail("id", "must be a string or an integer")

    messages = record.get("messages")
    prompt = record.get("prompt")
    if messages is None and prompt is None:
        raise fail("messages", "a row needs 'messages' (chat list) or 'prompt' (text)")
    if messages is not None:
        if not isinstance(messages, list) or not messages:
            raise fail("messages", "must be a non-empty list of {role, content} objects")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str) \
                    or not isinstance(message.get("content"), str):
                raise fail(f"messages[{i}]", "must be an object with string 'role' and 'content'")
    if prompt is not None and not isinstance(prompt, str):
        raise fail("prompt", "must be a string")
    if messages is None:
        messages = [{"role": "user", "content": prompt}]
    if prompt is None:
        prompt = next((m["content"] for m in reversed(messages) if m["role"] == "user"), messages[-1]["content"])

    rubric_items = record.get("rubrics")
    if not isinstance(rubric_items, list) or not rubric_items:
        raise fail("rubrics", "must be a non-empty list of {description, weight?} objects")
    ground_truth = record.get("ground_truth") or {}
    if not isinstance(ground_truth, dict):
        raise fail("ground_truth", "must be an object with 'instruction_id_list' and 'kwargs'")
    verifier_ids = ground_truth.get("instruction_id_list", [None] * len(rubric_items))
    kwargs_list = ground_truth.get("kwargs", [{}] * len(verifier_ids))
    if not isinstance(verifier_ids, list) or len(verifier_ids) != len(rubric_items):
        raise fail("ground_truth.instruction_id_list",
                    f"must be a list aligned with 'rubrics' ({len(rubric_items)} items)")
    if not isinstance(kwargs_list, list) or len(kwargs_list) != len(rubric_items):
        raise fail("ground_truth.kwargs", f"must be a list aligned with 'rubrics' ({len(rubric_items)} items)")

    rubrics = []
    for k, (item, verifier, kwargs) in enumerate(zip(rubric_items, verifier_ids, kwargs_list)):
        if isinstance(item, str):
            item = {"description": item}
        if not isinstance(item, dict):
            raise fail(f"rubrics[{k}]", "must be an object with a 'description'")
        description = item.get("description")
        if not isinstance(description, str) or not description.strip():
            raise fail(f"rubrics[{k}].description", "must be a non-empty string")
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or weight < 0:
            raise fail(f"rubrics[{k}].weight", f"must be a finite number >= 0, got {weight!r}")
        if verifier is not None and not isinstance(verifier, str):
            raise fail(f"ground_truth.instruction_id_list[{k}]", "must be a verifier id string or null")
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, dict):
            raise fail(f"ground_truth.kwargs[{k}]", "must be an object")
        if verifier is not None:
            _check_verifier(verifier, kwargs, k, fail)
        rubrics.append(Rubric(description=description, verifier=verifier, kwargs=kwargs, weight=float(weight)))

    return PromptRow(id=str(row_id), prompt=prompt, messages=messages, rubrics=rubrics,
                     source=str(record.get("source", "unknown")))


def _check_verifier(verifier: str, kwargs: dict[str, Any], k: int, fail) -> None:
    """Every row's verifier ids and arguments are checked as the data loads: a typo in a row that a run
    happens not to draw early would otherwise pass unnoticed, or stop the run after the model loaded."""
    try:
        problem = argument_problem(verifier, kwargs)
    except UnknownVerifierError as error:
        raise fail(f"ground_truth.instruction_id_list[{k}]", str(error)) from None
    except ImportError as error:
        raise fail(f"ground_truth.instruction_id_list[{k}]", f"verifier {verifier!r} needs a package that is "
                                                             f"not installed ({error})") from None
    if problem is not None:
        raise fail(f"ground_truth.kwargs[{k}]", problem)


def open_binary(path: str | Path) -> BinaryIO:
    """A data file opened for reading bytes, decompressed on the fly when its name ends in ``.gz``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line number, object) for every non-blank line of a JSONL file (``.jsonl.gz`` too); a line that
    is not a JSON object is a `DataError` naming the file and the row."""
    with open_binary(path) as lines:
        for number, raw in enumerate(lines, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # a BOM is no JSON
            except UnicodeDecodeError as error:
                raise DataError(path, number, "<row>", f"not UTF-8 text (byte {raw[error.start]:#04x} at column "
                                                       f"{error.start + 1}); save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(path, number, "<row>", f"invalid JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise DataError(path, number, "<row>", f"expected a JSON object, got {type(record).__name__}")
            yield number, record


def read_appended_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """`read_jsonl` for a file a resumable run appends to: a missing file has no rows, and a last line
    cut short by a kill is first removed from the file (appending to it would corrupt the next row)."""
    path = Path(path)
    if not path.is_file():
        return
    content = path.read_bytes()
    complete_length = content.rfind(b"\n") + 1  # rows are written whole with their newline
    if complete_length < len(content):
        logger.warning("%s: dropping a truncated last line left by an interrupted run: %r", path,
                       content[complete_length:complete_length + 80])
        os.truncate(path, complete_length)
    yield from read_jsonl(path)


def append_jsonl(out: TextIO, rows: Iterable[dict[str, Any]]) -> None:
    """Append rows to an open JSONL file and make them durable before returning: a kill then loses at
    most the rows being written."""
    out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    out.flush()
    os.fsync(out.fileno())


def write_jsonl(records: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write ``records`` as a new JSONL file (replacing one there), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        append_jsonl(out, records)
    return path


def by_unique_id(numbered: Iterable[tuple[int, Identified]], path: str | Path) -> dict[str, Identified]:
    """Items by their ``id``, from (row number, item) pairs of the file ``path``, in file order; an id that an earlier
    row has is a `DataError` naming the file and the row."""
    by_id: dict[str, Identified] = {}
    for number, item in numbered:
        if item.id in by_id:  # type: ignore[attr-defined]
            raise DataError(path, number, "id", f"{item.id!r} appears twice; ids must be unique")  # type: ignore
        by_id[item.id] = item  # type: ignore[attr-defined]
    return by_id


def write_json(record: Any, path: str | Path) -> Path:
    """Write ``record`` as an indented JSON file (replacing one there), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def write_prompt_rows(rows: Iterable[PromptRow], path: str | Path) -> Path:
    return write_jsonl((row.to_json() for row in rows), path)
