"""MulDimIF Format_Table: row and column limits, named columns and required contents of a Markdown table (the
official ``Format_Table.py``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rubrics2tokens.verifiers.base import Verdict
from rubrics2tokens.verifiers.muldimif.common import ONE_TO_TEN, TENS_AND_TEENS, Unreadable, alternation


# ---------------------------------------------------------------- Format_Table (official Format_Table.py)

TABLE_NUMBER_WORDS = {**ONE_TO_TEN, **TENS_AND_TEENS}
TABLE_NUMBER = rf"(\d+|\b(?:{alternation(TABLE_NUMBER_WORDS)})\b)"
ROW_LIMITS = [
    (rf"exactly\s+{TABLE_NUMBER}\s+rows?", "exact"), (rf"no\s+more\s+than\s+{TABLE_NUMBER}\s+rows?", "max"),
    (rf"not\s+have\s+more\s+than\s+{TABLE_NUMBER}\s+rows?", "max"),
    (rf"must\s+not\s+exceed\s+{TABLE_NUMBER}\s+rows?", "max"),
    (rf"not\s+exceed\s+{TABLE_NUMBER}\s+rows?", "max"), (rf"not\s+exceeding\s+{TABLE_NUMBER}\s+rows?", "max"),
    (rf"should\s+not\s+exceed\s+{TABLE_NUMBER}\s+rows?", "max"), (rf"row\s+limit\s+of\s+{TABLE_NUMBER}", "max"),
    (rf"{TABLE_NUMBER}\s+rows?\s+must\s+be\s+included", "exact"), (rf"exactly\s+.+and {TABLE_NUMBER}\s+rows?", "exact"),
    (rf"not exceed\s+.+and {TABLE_NUMBER}\s+rows?", "max"), (rf"a maximum of\s+{TABLE_NUMBER}\s+rows", "max"),
    (rf"limited to a maximum of\s+{TABLE_NUMBER}\s+rows", "max"), (rf"limited to\s+{TABLE_NUMBER}\s+rows", "max"),
    (rf"a row limit of\s+{TABLE_NUMBER}", "max"), (rf"a maximum of\s+.+and {TABLE_NUMBER}\s+rows?", "max"),
    (rf"limit the number of rows to\s+{TABLE_NUMBER}", "max"), (rf"limit it to\s+{TABLE_NUMBER}\s+rows", "max"),
    (rf"limit the table to\s+{TABLE_NUMBER}\s+rows", "max"),
    (rf"the number of rows in each table does not exceed\s+{TABLE_NUMBER}", "max"),
]
COLUMN_LIMITS = [
    (rf"exactly\s+{TABLE_NUMBER}\s+columns?", "exact"), (rf"no\s+more\s+than\s+{TABLE_NUMBER}\s+columns?", "max"),
    (rf"not\s+have\s+more\s+than\s+{TABLE_NUMBER}\s+columns?", "max"),
    (rf"must\s+not\s+exceed\s+{TABLE_NUMBER}\s+columns?", "max"), (rf"not\s+exceed\s+{TABLE_NUMBER}\s+columns?", "max"),
    (rf"not\s+exceeding\s+{TABLE_NUMBER}\s+columns?", "max"),
    (rf"should\s+not\s+exceed\s+{TABLE_NUMBER}\s+columns?", "max"),
    (rf"column\s+limit\s+of\s+{TABLE_NUMBER}", "max"), (rf"must\s+have\s+exactly\s+{TABLE_NUMBER}\s+columns?", "exact"),
    (rf"exactly\s+.+and {TABLE_NUMBER}\s+columns?", "exact"), (rf"in\s+{TABLE_NUMBER}\s+columns", "exact"),
    (rf"not exceed\s+.+and {TABLE_NUMBER}\s+columns?", "max"), (rf"maximum of\s+{TABLE_NUMBER}\s+columns", "max"),
    (rf"maximum\s+{TABLE_NUMBER}\s+columns", "max"), (rf"at most\s+{TABLE_NUMBER}\s+columns", "max"),
    (rf"limited to a maximum of\s+{TABLE_NUMBER}\s+columns", "max"), (rf"limited to\s+{TABLE_NUMBER}\s+columns", "max"),
    (rf"a column limit of\s+{TABLE_NUMBER}", "max"), (rf"a maximum of\s+.+and {TABLE_NUMBER}\s+columns?", "max"),
    (rf"limit the number of columns to\s+{TABLE_NUMBER}", "max"), (rf"limit it to\s+{TABLE_NUMBER}\s+columns", "max"),
    (rf"limit the table to\s+{TABLE_NUMBER}\s+columns", "max"),
    (rf"the number of columns in each table does not exceed\s+{TABLE_NUMBER}", "max"),
    (r"(a|each) (single) column", "single"), (r"presented in (a|one) single column", "single"),
    (rf"title must not exceed {TABLE_NUMBER}\s+words", "title_words"),
]
OPTIONAL_TABLE = [
    r"if you (include|use|utilize|incorporate|present) (a |any )?(tables?|tabular data)",
    r"if you (decide|choose|opt) to (use|include|incorporate|present|utilize) (a |any )?(tables?|tabular data)",
    r"if (a |any )?(tables?|tabular data|table format) (is|are) (used|included|utilized|incorporated|presented|chosen)",
    r"if there (is|are) (a |any )?(tables?|tabular data|table format) (used|included|utilized|incorporated|presented"
    r"|chosen)",
    # two official patterns are glued into one by a missing comma; kept as the official code reads them
    r"if you (decide|choose|opt) to (use|include|incorporate|present|utilize) (your )?information in a table"
    r"if presented in a table",
]
"""Phrasings that make the table optional: a response without "|" then passes."""
COLUMN_NAME_PATTERNS = [r"columns?\s+should\s+be\s+([\w\s,]+)", r"columns:\s+([\w\s,']+)",
                        r'must include columns for\s+"([^"]+)"',
                        r'table must include columns (for|named)\s+[""]([^""]+)[""]']
CONTENT_PATTERNS = [r"must include the\s+([\w\s,]+)",
                    r"each (entry|row|item|game|series) must include (?:the\s+)?([\w\s,]+(?:\s+and\s+(?:its|their)\s+"
                    r"[\w\s,]+)?)",
                    r"each (entry|row|item|game|series) should (?:be )?(present|include|contain|show)(?:ed)? "
                    r"(?:in|with)?\s+([\w\s,]+)"]


@dataclass
class TableRules:
    rows: tuple[str, int] | None = None
    columns: tuple[str, int] | None = None
    title_max_words: int | None = None
    markdown: bool = False
    column_names: list[str] | None = None
    content: list[str] | None = None

    @property
    def checks_something(self) -> bool:
        return bool(self.rows or self.columns or self.title_max_words is not None or self.markdown
                    or self.column_names or self.content)


def _table_number(word: str) -> int:
    return TABLE_NUMBER_WORDS[word] if word in TABLE_NUMBER_WORDS else int(word)


def parse_table_rules(description: str) -> TableRules:
    """Row and column limits, required column names and contents, read from the lowercased description."""
    text = description.lower()
    found = TableRules(markdown="markdown" in text, column_names=[], content=[])
    for pattern, kind in ROW_LIMITS:
        if match := re.search(pattern, text):
            found.rows = (kind, _table_number(match.group(1)))
            break
    for pattern, kind in COLUMN_LIMITS:
        if match := re.search(pattern, text):
            if kind == "single":
                found.columns = ("exact", 1)
            elif kind == "title_words":
                found.title_max_words = _table_number(match.group(1))
            else:
                found.columns = (kind, _table_number(match.group(1)))
            break
    if "series must include" in text and "title" in text and "author" in text:
        found.content = ["title", "author", "year", "publication"]
    if "film title" in text and "release year" in text:
        found.content = ["film title", "release year"]
    if "columns for" in text and '"' in text:
        quoted = [name.strip().rstrip(",").strip() for name in re.findall(r'"([^"]+)"', text)]
        if any(quoted):
            found.column_names = [name for name in quoted if name]
            return found
    _add_named_columns_and_contents(text, found)
    if "single column" in text:
        found.columns = ("exact", 1)
    if match := re.search(rf"title\s+must\s+not\s+exceed\s+{TABLE_NUMBER}\s+words", text):
        found.title_max_words = _table_number(match.group(1))
    found.content = [item for item in dict.fromkeys(found.content) if item]
    return found


def _add_named_columns_and_contents(text: str, found: TableRules) -> None:
    # Official quirk kept: column lists are split at any of the characters ",、，和and" (so also at every
    # "a", "n" and "d"), and the fragments are then looked for inside the header cells.
    for pattern in COLUMN_NAME_PATTERNS:
        if (match := re.search(pattern, text)) and match.group(1):
            names = (name.strip("'\" ") for name in re.split(r"[,、，和and]", match.group(1)))
            found.column_names.extend(name for name in names if name)
    for pattern in CONTENT_PATTERNS:
        if (match := re.search(pattern, text)) and len(match.groups()) > 1:
            _add_contents(match.groups()[-1], found)
    if match := re.search(r'include columns for\s+(?:"([^"]+)",?\s*)+', text):
        found.column_names.extend(name.strip() for name in re.findall(r'"([^"]+)"', match.group(0)) if name.strip())
    quoted = [name.strip().rstrip(",").strip() for name in re.findall(r'[""]([^""]+)[""]', text)]
    if quoted and not found.column_names:
        found.column_names.extend(name for name in quoted if name)
    if match := re.search(r"each\s+\w+\s+must\s+include\s+(?:the\s+)?([\w\s]+\s+and\s+its\s+[\w\s]+)", text):
        found.content.extend(part.strip() for part in re.split(r"\s+and\s+its\s+", match.group(1)) if part.strip())


def _add_contents(phrase: str, found: TableRules) -> None:
    """"a, b and its c" -> a, b, c; without "and", the comma-separated items."""
    if " and " not in phrase:
        found.content.extend(item.strip() for item in re.split(r"[,、，]", phrase) if item.strip())
        return
    left, right = phrase.split(" and ")[:2]
    found.content.extend(item.strip() for item in left.split(","))
    found.content.append(right.removeprefix("its ").strip())


def _table_lines(response: str) -> list[str]:
    """The non-blank lines from the first "|" to the last one (official: everything in between counts)."""
    block = re.search(r"(\|.*\|)", response, re.DOTALL)
    return [line.strip() for line in (block.group(1) if block else "").split("\n") if line.strip()]


def table_holds(response: str, found: TableRules, wording: str) -> bool:
    if "|" not in response:
        # no table: fine unless the description names a table that is not optional
        return "table" not in wording or any(re.search(pattern, wording, re.DOTALL) for pattern in OPTIONAL_TABLE)
    lines = _table_lines(response)
    if found.markdown and not any(re.match(r"^\s*\|", line) for line in lines):
        return False
    if found.rows:
        kind, limit = found.rows
        # rows = lines below the header (and its "---" separator when the second line has one)
        data_rows = len(lines) - (2 if len(lines) > 1 and "---" in lines[1] else 1)
        if data_rows > limit or (kind == "exact" and data_rows != limit):
            return False
    if found.columns:
        kind, limit = found.columns
        if not lines:
            return False
        columns = len(lines[0].split("|")) - 2
        if columns > limit or (kind == "exact" and columns != limit):
            return False
    if found.title_max_words is not None and (not lines or len(lines[0].strip("|").split()) > found.title_max_words):
        return False
    headers = [cell.strip().lower() for cell in lines[0].split("|")[1:-1]] if lines else []
    return _headers_and_contents_hold(lines, headers, found, wording)


def _headers_and_contents_hold(lines: list[str], headers: list[str], found: TableRules, wording: str) -> bool:
    if "series must include" in wording and "title" in wording and "author" in wording and "year" in wording:
        return all(any(word in header for header in headers) for word in ("title", "author", "year"))
    if "columns for" in wording and found.column_names:
        return all(any(name.lower() in header or header in name.lower() for header in headers)
                   for name in found.column_names)
    if found.column_names and not all(any(name.lower() in header for header in headers) for name in found.column_names):
        return False
    if "film title" in wording and "release year" in wording:
        return (any("film" in header or "title" in header for header in headers)
                and any("release" in header or "year" in header for header in headers))
    table_text = " ".join(" ".join(line.split("|")) for line in lines).lower()
    return all(_content_present(item.lower(), headers, table_text) for item in found.content)


def _content_present(item: str, headers: list[str], table_text: str) -> bool:
    header_words = {"film title": ("film", "title"), "release year": ("release", "year"), "title": ("title",),
                    "author": ("author",), "year": ("year",), "year of publication": ("year",)}
    if item in header_words and any(word in header for word in header_words[item] for header in headers):
        return True
    if item == "publication" or item in table_text:
        return True
    return any(word in header for header in headers for word in item.split())


def check_format_table(response: str, *, description: str) -> Verdict | Unreadable:
    """A Markdown table with row and column limits and required columns (official Format_Table).

    Rows are the lines after the header and separator in the block from the first "|" to the last; columns are
    counted on the header line. A response without "|" passes unless the description requires a table.
    """
    found = parse_table_rules(description)
    wording = description.lower()
    if not found.checks_something and "table" not in wording:
        return Unreadable("format_table", description, official=True)
    return Verdict(passed=table_holds(response, found, wording), spans=None)
