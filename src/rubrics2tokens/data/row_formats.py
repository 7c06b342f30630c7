"""Which format a prompt-row record is in, and its parser: the one place that knows both formats.

A record whose ``source`` is a HIR-16K type (``type1``-``type4``) is mapped by `rubrics2tokens.data.hir`;
any other follows our own schema (`rubrics2tokens.data.schema`). Neither of those modules knows the other's
format beyond what it builds on: `hir` maps onto the schema's `PromptRow`, and the schema knows no HIR.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rubrics2tokens.data.hir import is_hir_record, parse_hir_row
from rubrics2tokens.data.schema import DataError, PromptRow, parse_row, read_jsonl


def parse_prompt_record(record: Any, path: str | Path = "<memory>", row: int = 1) -> PromptRow:
    """A HIR-16K record mapped by `parse_hir_row`, any other parsed as ours by `parse_row`."""
    if is_hir_record(record):
        return parse_hir_row(record, path, row)
    return parse_row(record, path, row)


def load_prompt_rows(path: str | Path) -> list[PromptRow]:
    """Read a JSONL file of prompt rows, ours or HIR-16K's; a problem is a `DataError` naming file, row and field."""
    rows = [parse_prompt_record(record, Path(path), number) for number, record in read_jsonl(path)]
    if not rows:
        raise DataError(path, 0, "<file>", "no rows")
    return rows
