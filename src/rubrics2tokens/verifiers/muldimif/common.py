"""What every MulDimIF checker family uses: number words, whitespace words, count limits and their spans,
the `Unreadable` result, and what an "element" of a list-shaped response is."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rubrics2tokens.verifiers.base import Span, Verdict


ONE_TO_TEN = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
              "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
CHINESE_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10, "两": 2}
TENS_AND_TEENS = {"eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
                  "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
                  "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100}
UP_TO_HUNDRED = {"zero": 0, **ONE_TO_TEN, **TENS_AND_TEENS}
CJK_CHARACTER = re.compile(r"[\u4e00-\u9fff]")
WHITESPACE_TOKEN = re.compile(r"\S+")


def alternation(words: dict[str, int]) -> str:
    return "|".join(map(re.escape, words))


def simple_number(text: str, words: dict[str, int]) -> int | None:
    text = text.strip().lower()
    return int(text) if text.isdigit() else words.get(text)


def compound_number(text: str, words: dict[str, int]) -> int | None:
    """"3,500", "twenty-five", "one hundred": digits (commas dropped) or number words added up, as the
    official Length_Words and Content_Keywords parse them; any other word makes the number unreadable."""
    text = text.strip().replace(",", "")
    if text.isdigit():
        return int(text)
    total = current = 0
    for part in re.split(r"[\s-]+", text.lower()):
        if part not in words:
            return None
        if words[part] >= 100:
            total += max(current, 1) * words[part]
            current = 0
        else:
            current += words[part]
    return total + current


def whitespace_tokens(response: str) -> list[Span]:
    """The official checkers count words as ``str.split()`` pieces: runs of non-whitespace."""
    return [match.span() for match in WHITESPACE_TOKEN.finditer(response)]


@dataclass(frozen=True)
class Unreadable:
    """What a checker returns for a description it finds nothing to check in, instead of a verdict.

    ``official`` is the verdict the official checker gives such a description for every response (None where
    it raises). The package's checkers (`rubrics2tokens.verifiers.muldimif.CHECKERS`) settle it: unknown,
    or the official constant inside `official_constants_for_unreadable`."""

    checker: str
    description: str
    official: bool | None


def count_limit_verdict(passed: bool, units: list[Span], maximum: int | None) -> Verdict:
    """The verdict of a count limit with its spans (method.md §5): met, nothing (no unit in particular achieves
    a count); above `maximum`, the units past it; too few, the stop (the units there are progress)."""
    if passed:
        return Verdict(passed=True, spans=())
    if maximum is not None and len(units) > maximum:
        return Verdict(passed=False, spans=tuple(units[maximum:]))
    return Verdict.too_few()


def within(count: int, minimum: int | None, maximum: int | None) -> bool:
    return (minimum is None or count >= minimum) and (maximum is None or count <= maximum)




# ---------------------------------------------------------------- list-shaped responses ("each ..." constraints)
# Official Content_Keywords_Each and LengthWords_Each: the response's main format decides what an "element" is.

TABLE_LINE = re.compile(r"^\s*\|.+\|", re.MULTILINE)
BULLET_START = re.compile(r"^\s*[-*] ")
JSON_START = re.compile(r"^\s*[{\[]")
NUMBERED_START = re.compile(r"^\s*\d+\.\s+")


def response_format(response: str) -> str:
    """'json', 'table', 'numbered', 'bullet' or 'plain', tested in that order. The json, numbered and bullet
    patterns are anchored at the very start of the response (no multiline flag), as in the official code."""
    if JSON_START.search(response):
        return "json"
    if TABLE_LINE.search(response):
        return "table"
    if NUMBERED_START.search(response):
        return "numbered"
    if BULLET_START.search(response):
        return "bullet"
    return "plain"


def numbered_items(response: str, after_colon: bool) -> list[str]:
    items = []
    for line in response.split("\n"):
        if NUMBERED_START.match(line):
            body = line.split(":", 1)[-1] if after_colon else line
            items.append(body.split(".", 1)[-1].strip() if after_colon else body.split(".", 1)[1].strip())
    return items


def bullet_items(response: str) -> list[str]:
    return [line.split(" ", 1)[1].strip() for line in response.split("\n") if BULLET_START.match(line)]
