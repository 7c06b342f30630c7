"""MulDimIF format constraints other than tables: Format_Others (XML attributes, table rows, bullets, ...),
Format_Json (nesting levels) and Format_Markdown (heading levels, block quotes), as the official
``Format_Others.py``, ``Format_Json.py`` and ``Format_Markdown.py`` decide them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable

from rubrics2tokens.verifiers import rules
from rubrics2tokens.verifiers.base import Verdict
from rubrics2tokens.verifiers.muldimif.common import ONE_TO_TEN, Unreadable, alternation, simple_number, within


# ---------------------------------------------------------------- Format_Others (official Format_Others.py)

XML_TAG = re.compile(r"<\s*([a-zA-Z_:][\w:.-]*)\s*(?:\s+[a-zA-Z_:][\w:.-]*=['\"][^'\"]*['\"])*\s*/?>")
NUMBER_ONE_TO_TEN = rf"(\d+|{alternation(ONE_TO_TEN)})"


def _xml_attribute_counts(response: str) -> list[int] | None:
    """Attributes per XML tag, in a ```xml block when there is one (None when that block is not closed)."""
    if "```xml" in response:
        block = re.search(r"```xml(.*?)```", response, re.DOTALL)
        if not block:
            return None
        response = block.group(1)
    return [len(re.findall(r"(\w+)=[\"'][^\"']*[\"']", tag.group(0))) for tag in XML_TAG.finditer(response)]


def _attributes_between(response: str, minimum: int | None, maximum: int | None) -> bool:
    counts = _xml_attribute_counts(response)
    return counts is not None and all(within(count, minimum, maximum) for count in counts)


def _markdown_table_rows(response: str, maximum: int) -> bool:
    lines = re.findall(r"^\|.*\|$", response, re.MULTILINE)
    data_rows = [line for line in lines if not re.match(r"^\|(\s*-+\s*\|)+$", line)]
    return len(data_rows) <= maximum and response.lower().count("<tr>") <= maximum


FORMAT_OTHER_RULES: list[tuple[str, Callable[..., bool]]] = [
    (rf"no more than {NUMBER_ONE_TO_TEN} attributes?", lambda text, n: _attributes_between(text, None, n)),
    (rf"must not exceed {NUMBER_ONE_TO_TEN}(?:.*)?attributes?", lambda text, n: _attributes_between(text, None, n)),
    (r"Limit the number of attributes to (two)", lambda text, n: _attributes_between(text, n, n)),
    (rf"Number of attributes must be exactly {NUMBER_ONE_TO_TEN}", lambda text, n: _attributes_between(text, n, n)),
    (rf"must have exactly {NUMBER_ONE_TO_TEN} attributes?", lambda text, n: _attributes_between(text, n, n)),
    (rf"must include exactly {NUMBER_ONE_TO_TEN} attributes?", lambda text, n: _attributes_between(text, n, n)),
    (rf"at least {NUMBER_ONE_TO_TEN} attributes?", lambda text, n: _attributes_between(text, n, None)),
    (r"Must include '(.*?)'", lambda text, phrase: bool(re.search(rf"\b{re.escape(str(phrase))}\b", text, re.I))),
    (r"Must be in APA format|must be provided in APA format",
     lambda text: bool(re.search(r"\(\s*\w+,\s*\d{4}\s*\)", text))),
    (r"No bullet points", lambda text: not re.search(r"^\s*[-*]", text, re.MULTILINE)),
    (r"Must be listed as bullet points|is structured as bullet points",
     lambda text: bool(re.search(r"^\s*[-*]", text, re.MULTILINE))),
    (r"block quotes format|be formatted in block quotes",
     lambda text: bool(re.search(r"^>", text, re.MULTILINE)) or "<blockquote>" in text.lower()),
    (rf"no more than {NUMBER_ONE_TO_TEN} rows", _markdown_table_rows),
    (rf"a table, which is limited to a maximum of {NUMBER_ONE_TO_TEN} rows", _markdown_table_rows),
    (r"full sentences", lambda text: True),
    (r"short blurb", lambda text: len(text) <= 200),
    (rf"The answer must include at least {NUMBER_ONE_TO_TEN} references?",
     lambda text, n: len(re.findall(r"(\[\d+\]|\([A-Za-z]+, \d{4}\))", text)) >= n),
    (r"No lists", lambda text: not re.search(r"^\s*(\d+\.)\s", text, re.MULTILINE)),
    (r"No number points", lambda text: not re.search(r"^\s*\d+\.", text, re.MULTILINE)),
    (r"Response must be written at medium length", lambda text: 200 < len(text) <= 400),
]
"""(pattern, test) in the official order; the first pattern found in the description (ignoring case) decides,
and its captured numbers (digits or one..ten) are the test's arguments."""


def check_format_others(response: str, *, description: str) -> Verdict | Unreadable:
    """XML attribute counts, bullet or list bans, block quotes, a table row cap, blurb length (official
    Format_Others)."""
    for pattern, test in FORMAT_OTHER_RULES:
        match = re.search(pattern, description, re.IGNORECASE)
        if match:
            arguments = [simple_number(group, ONE_TO_TEN) if simple_number(group, ONE_TO_TEN) is not None
                         else group for group in match.groups()]
            return Verdict(passed=test(response, *arguments), spans=None)
    return Unreadable("format_others", description, official=False)


# ---------------------------------------------------------------- Format_Json (official Format_Json.py)

JSON_LEVEL = r"(\d+|two|three)"
EXACT_NESTING = [rf"exactly {JSON_LEVEL} levels? of nesting",
                 rf"structured as a json object with a nesting level of {JSON_LEVEL}",
                 rf"json example with exactly {JSON_LEVEL} levels?",
                 rf"object nesting levels must be {JSON_LEVEL}",
                 rf"nesting level of {JSON_LEVEL}",
                 rf"be limited to {JSON_LEVEL} levels of nesting"]
MAX_NESTING = [rf"must not exceed {JSON_LEVEL} levels? of nesting", rf"no more than {JSON_LEVEL} levels?",
               rf"maximum of {JSON_LEVEL} nesting levels", rf"maximum of {JSON_LEVEL} object nesting levels",
               rf"maximum of {JSON_LEVEL} levels", rf"not exceed {JSON_LEVEL} levels",
               rf"levels not exceeding {JSON_LEVEL}", rf"object nesting levels must not exceed {JSON_LEVEL}",
               rf"and at most {JSON_LEVEL}"]
MIN_NESTING = [rf"at least {JSON_LEVEL} levels? of nesting", rf"at least {JSON_LEVEL} levels? deep",
               rf"must include a json object with at least {JSON_LEVEL} levels?", rf"and at least {JSON_LEVEL}"]
JSON_LEVEL_WORDS = {"two": 2, "three": 3}


def json_depth(value: object) -> int:
    """Nesting depth counting lists and objects alike: a scalar is 0, {"a": 1} is 1, {"a": {"b": 1}} is 2."""
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    if not children:
        return 0
    return 1 + max(json_depth(child) for child in children)


def check_format_json(response: str, *, description: str) -> Verdict | Unreadable:
    """The response (or its ```json block) parses as JSON with the required nesting depth (official Format_Json).

    The description is lowercased and stripped of punctuation first; an exact level wins over a range, the
    strictest maximum and minimum are kept. Fail: the whole response. Pass: nothing (a global property).
    """
    wording = re.sub(r"[^\w\s]", "", description.lower())
    exact = next((JSON_LEVEL_WORDS.get(m.group(1)) or int(m.group(1))
                  for m in (re.search(p, wording) for p in EXACT_NESTING) if m), None)
    maximums = [simple_number(found, JSON_LEVEL_WORDS) for p in MAX_NESTING for found in re.findall(p, wording)]
    minimums = [simple_number(found, JSON_LEVEL_WORDS) for p in MIN_NESTING for found in re.findall(p, wording)]
    if exact is None and not maximums and not minimums:
        return Unreadable("format_json", description, official=False)
    block = re.search(r"```json(.*?)```", response, re.DOTALL)
    try:
        depth = json_depth(json.loads(block.group(1).strip() if block else response))
    except json.JSONDecodeError:
        return Verdict(passed=False, spans=rules.whole_response(response))
    if exact is not None:
        passed = depth == exact
    else:
        passed = within(depth, max(minimums) if minimums else None, min(maximums) if maximums else None)
    # the nesting of the whole JSON: a fail blames all of it, a pass credits nothing in particular
    return Verdict(passed=passed, spans=() if passed else rules.whole_response(response))


# ---------------------------------------------------------------- Format_Markdown (official Format_Markdown.py)

LEVEL_NUMBER = rf"(\b(?:{alternation(ONE_TO_TEN)}|\d+)\b)"
MARKDOWN_HEADING = re.compile(r"^(#+)\s+(.*?)\s*$")
VERBS_OF_USE = re.compile(r"include|includes|included|including|use|using|used|uses|formatted|presented|organized"
                          r"|structured|feature|should be|incorporate", re.IGNORECASE)
GENERIC_HEADINGS = ("include headings", "includes headings", "use heading levels", "using heading levels",
                    "presented under a separate heading", "separated with headings", "with headings")
BLOCK_QUOTE_USE = ("use block quotes", "using block quotes", "include a block quote", "using markdown block quotes",
                   "employ block quotes", "present the headline as a block quote")


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


def markdown_headings(response: str) -> list[Heading]:
    headings = []
    for line in response.split("\n"):
        if match := MARKDOWN_HEADING.match(line.strip()):
            headings.append(Heading(len(match.group(1)), match.group(2).strip()))
    return headings


def _level(word: str) -> int | None:
    return simple_number(word, ONE_TO_TEN)


def parse_heading_rules(description: str) -> list[tuple]:
    """Heading rules as ``(kind, ...)`` tuples, one per comma-separated clause at most (official _parse_constraint).

    Official quirk kept: clauses are split only at commas between two word characters ("a,b"), so nearly every
    description is one clause.
    """
    lowered = description.lower()
    found: list[tuple] = []
    for clause in re.split(r"\b(?:,)\b", description):
        rule = _heading_rule(clause, description, lowered)
        if rule is not None:
            found.append(rule)
    return found


def _heading_rule(clause: str, description: str, lowered: str) -> tuple | None:
    if ("include headings at two levels: main and subheadings" in lowered
            or "be structured with a main heading and subheadings" in lowered):
        return ("required_levels", {1, 2})
    if description == "Questions must be organized under a level 2 heading.":
        return ("questions_at_levels", {2})
    if "include a single level 1 heading" in lowered:
        return ("exact_count_at_level", 1, 1)
    if "be structured using a minimum of two heading levels" in lowered or "include headings at two levels" in lowered:
        return ("distinct_levels", "at least", 2)
    if description == ("format the response using Markdown, employing '##' for main points and '###' for subpoints"
                       " to clearly organize the information"):
        return ("required_levels", {2, 3})
    two_levels = (re.search(rf"(?i)use heading levels {LEVEL_NUMBER} and {LEVEL_NUMBER}", clause)
                  or re.search(rf"(?i)use heading levels.*?level\s*{LEVEL_NUMBER}.*?level\s*{LEVEL_NUMBER}", clause))
    if two_levels:
        levels = {_level(two_levels.group(1)), _level(two_levels.group(2))}
        return ("required_levels", levels) if None not in levels else None
    listed = (re.findall(rf"(?i)a heading level {LEVEL_NUMBER}", clause) or re.findall(r"(?i)H(\d+)", clause)
              or re.findall(rf"(?i)Level {LEVEL_NUMBER} for", clause))
    if listed and ("must include" in clause or "should" in clause):
        return ("required_levels", {_level(word) for word in listed})
    if "titled" in clause:
        titled = clause.strip().rstrip(".")
        match = (re.search(rf"(?i)level {LEVEL_NUMBER} heading titled [\"'](.*?)[\"']", titled)
                 or re.search(rf"(?i)(?:a|at least one|two|three|four|five|six|seven|eight|nine|ten|\d+) level "
                              rf"{LEVEL_NUMBER} heading with the text [\"'](.*?)[\"']", titled))
        if match:
            level = _level(match.group(1))
            return ("exact_heading", level, match.group(2)) if level is not None else None
    clause = clause.strip().lower().rstrip(".")
    if VERBS_OF_USE.search(clause):
        match = (re.search(rf"(?i)(?:a|at least \d+) heading level {LEVEL_NUMBER}", clause)
                 or re.search(rf"(?i)(?:a|at least one|two|three|four|five|six|seven|eight|nine|ten|\d+) level "
                              rf"{LEVEL_NUMBER} heading", clause)
                 or re.search(r"(?i)must use a heading level of H(\d+)", clause))
        if match:
            level = _level(match.group(1))
            return ("level_present", level) if level is not None else None
        match = (re.search(rf"(?i)(at least|at most|exactly|up to|a maximum of|under) {LEVEL_NUMBER} heading levels?",
                           clause)
                 or re.search(rf"(?i)(at least|at most|exactly|up to|a maximum of|under) {LEVEL_NUMBER} levels?",
                              clause))
        if match:
            operator = "at most" if match.group(1) in ("up to", "a maximum of", "under") else match.group(1)
            count = _level(match.group(2))
            return ("distinct_levels", operator, count) if count is not None else None
    match = re.search(rf"(?i)(?:heading levels)? must (?:not exceed|be limited to)\s+(?:level\s+)?{LEVEL_NUMBER}",
                      clause)
    if match:
        return ("max_level", _level(match.group(1)))
    match = re.search(rf"(?i)must begin with a level {LEVEL_NUMBER} heading", clause)
    if match:
        return ("starts_with_level", _level(match.group(1)))
    match = re.search(rf"(?i)use heading level {LEVEL_NUMBER}", clause)
    if match:
        return ("level_present", _level(match.group(1)))
    if any(phrase in lowered for phrase in GENERIC_HEADINGS):
        return ("level_present", None)  # a heading of any level
    return None


def heading_rule_holds(rule: tuple, headings: list[Heading]) -> bool:
    kind = rule[0]
    if kind == "distinct_levels":
        _, operator, count = rule
        distinct = len({heading.level for heading in headings})
        return {"at least": distinct >= count, "at most": distinct <= count, "exactly": distinct == count}[operator]
    if not headings:
        return False
    levels = {heading.level for heading in headings}
    if kind == "level_present":
        return rule[1] is None or rule[1] in levels
    if kind == "exact_heading":
        return any(heading.level == rule[1] and heading.text == rule[2] for heading in headings)
    if kind == "max_level":
        return all(heading.level <= rule[1] for heading in headings)
    if kind == "starts_with_level":
        return headings[0].level == rule[1]
    if kind == "required_levels":
        return rule[1] <= levels
    if kind == "questions_at_levels":
        return all(heading.level in rule[1] for heading in headings if "?" in heading.text)
    if kind == "exact_count_at_level":
        return sum(heading.level == rule[1] for heading in headings) == rule[2]
    raise ValueError(f"unknown heading rule {kind!r}")


def _block_quotes_hold(description: str, response: str) -> bool | None:
    """Block quote lines ("> ..."): a count after "at least", one for "use block quotes" and the like, else every
    line of the response (blank lines included, an official quirk: so a response with a blank line fails)."""
    lowered = description.lower()
    lines = response.split("\n")
    quoted = sum(line.strip().startswith(">") for line in lines if line.strip())
    if "at least" in lowered:
        match = re.search(rf"(?i){LEVEL_NUMBER} block quotes", description)
        if not match:
            return None
        return quoted >= _level(match.group(1))
    if any(phrase in lowered for phrase in BLOCK_QUOTE_USE):
        return quoted > 0
    return quoted == len(lines)


def check_format_markdown(response: str, *, description: str) -> Verdict | Unreadable:
    """Markdown headings (levels, counts, titles), block quotes, bold and bullet points (official Format_Markdown).

    With "each" or "any" anywhere in the description (substring, as in the official code) every heading must
    satisfy every rule on its own, and a response without headings fails.
    """
    lowered = description.lower()
    side_checks = []
    if "block quotes" in lowered:
        side_checks.append(_block_quotes_hold(description, response))
    if "bold" in lowered:
        side_checks.append(bool(re.search(r"(\*\*.*?\*\*|__.*?__)", response)))
    if "bullet points" in lowered:
        side_checks.append(any(re.search(r"^\s*[-\*\+]\s", line) for line in response.split("\n")))
    if None in side_checks:
        return Unreadable("format_markdown", description, official=None)
    if not all(side_checks):
        return Verdict(passed=False, spans=None)
    heading_rules = parse_heading_rules(description)
    headings = markdown_headings(response)
    per_heading = "each" in lowered or "any" in lowered
    if not heading_rules and not side_checks and not per_heading:
        return Unreadable("format_markdown", description, official=True)
    if per_heading:
        passed = bool(headings) and all(heading_rule_holds(rule, [heading])
                                        for heading in headings for rule in heading_rules)
    else:
        passed = all(heading_rule_holds(rule, headings) for rule in heading_rules)
    return Verdict(passed=passed, spans=None)
