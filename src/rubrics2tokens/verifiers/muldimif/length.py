"""MulDimIF length constraints: Length_Words (also "each element" limits), Length_Sentences and
Length_Paragraphs, with the official counting units (``Length_Words.py``, ``Length_Sentences.py``,
``Length_Paragraphs.py``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from rubrics2tokens.verifiers.base import Span, Verdict
from rubrics2tokens.verifiers.muldimif.common import CHINESE_DIGITS, ONE_TO_TEN, UP_TO_HUNDRED, Unreadable, alternation, bullet_items, compound_number, count_limit_verdict, numbered_items, response_format, whitespace_tokens, within
from rubrics2tokens.verifiers.muldimif.content import keyword_pattern
from rubrics2tokens.verifiers.muldimif.formats import LEVEL_NUMBER


# ---------------------------------------------------------------- Length_Words (official Length_Words.py)

WORD_NUMBER_CHARACTERS = r"[a-z0-9-– ]"
WORD_RANGES = [
    rf"between\s+({WORD_NUMBER_CHARACTERS}+?)\s+to\s+({WORD_NUMBER_CHARACTERS}+?)(?=\s*word|$|\b)",
    rf"between\s+({WORD_NUMBER_CHARACTERS}+?)\s+and\s+({WORD_NUMBER_CHARACTERS}+?)(?=\s*word|$|\b)",
    rf"range:?\s*({WORD_NUMBER_CHARACTERS}+?)\s+to\s+({WORD_NUMBER_CHARACTERS}+?)(?=\s*word|$|\b)",
    rf"range:?\s*({WORD_NUMBER_CHARACTERS}+?)\s*[-–]\s*({WORD_NUMBER_CHARACTERS}+?)(?=\s*word|$|\b)",
    r"(\b[a-z0-9-–]+\b)\s+to\s+(\b[a-z0-9-–]+\b)(?=\s*word|$|\b)",
    r"(\b[a-z0-9-–]+\b)\s*[-–]\s*(\b[a-z0-9-–]+\b)(?=\s*word|$|\b)",
    r"([0-9]+)\s*到\s*([0-9]+)(?=\s*个|字)",
]
MIN_WORDS = r"(?:at\s+least|minimum\s+of|minimum\s+length\s+of|no\s+less\s+than)\s+(\S+)\s+word"
MAX_WORDS = (r"(?:not\s+exceed|not\s+exceeding|not\s+surpass|at\s+most|no\s+more\s+than|maximum\s+of|maximum\s+length"
             r"\s+of|no\s+longer\s+than|limit\s+of|within|within\s+a)\s+(\S+)\s+word")
MAX_WORDS_CHINESE = [r"(?:最多)([0-9]+)(?:个|字)", r"(?:在)([0-9]+)\s*(?:个单词以内|个字以内|字以内|单词以内|词以内|字)"]
MIN_SENTENCES_IN_WORDS = r"(?:at\s+least|minimum\s+of)\s+(\S+)\s+sentence"
MAX_SENTENCES_IN_WORDS = (r"(?:not\s+exceed|at\s+most|no\s+more\s+than|maximum\s+of|maximum\s+length\s+of|no\s+longer"
                          r"\s+than)\s+(\S+)\s+sentence")
CJK_FOR_COUNTING = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf\U00020000-\U0002a6df\u3000-\u303f\uff00-\uffef]")


@dataclass
class WordLimits:
    min_words: int | None = None
    max_words: int | None = None
    exact_words: int | None = None
    min_sentences: int | None = None
    max_sentences: int | None = None
    keywords: tuple[str, ...] = ()

    @property
    def checks_something(self) -> bool:
        return any(value is not None for value in (self.min_words, self.max_words, self.exact_words,
                                                   self.min_sentences, self.max_sentences)) or bool(self.keywords)


def _number_words(text: str) -> int | None:
    return compound_number(text, UP_TO_HUNDRED)


def parse_word_limits(description: str) -> WordLimits:
    """Word (and sentence) limits and quoted keywords, after the official normalisation of the description.

    Official quirks kept: "a single" becomes "exactly one", and any "exactly <number>" is a word count whatever
    follows; the "x to y" and "x-y" range patterns also fire on phrases that are not about words, and the value
    read by the last such pattern that matched stays even when it could not read both ends.
    """
    text = description.lower().strip('"').strip()
    text = re.sub(r"\s+", " ", text).replace("-word", " word").replace("a total of ", "")
    text = text.replace("words", "word").replace("a single", "exactly one").strip()
    limits = WordLimits()
    if (exact := re.search(r"exactly\s+([a-z0-9-, ]+?)\s+(\S+)", text)) and _number_words(exact.group(1)) is not None:
        limits.exact_words = _number_words(exact.group(1))
        return limits
    for pattern in WORD_RANGES:
        if match := re.search(pattern, text):
            limits.min_words, limits.max_words = _number_words(match.group(1)), _number_words(match.group(2))
            if limits.min_words is not None and limits.max_words is not None:
                if limits.min_words > limits.max_words:
                    limits.min_words, limits.max_words = limits.max_words, limits.min_words
                break
    if limits.min_words is None and (match := re.search(MIN_WORDS, text)):
        limits.min_words = _number_words(match.group(1))
    if limits.max_words is None and (match := re.search(MAX_WORDS, text)):
        limits.max_words = _number_words(match.group(1))
    for pattern in MAX_WORDS_CHINESE:
        if limits.max_words is None and (match := re.search(pattern, text)):
            limits.max_words = _number_words(match.group(1))
    if match := re.search(MIN_SENTENCES_IN_WORDS, text):
        limits.min_sentences = _number_words(match.group(1))
    if match := re.search(MAX_SENTENCES_IN_WORDS, text):
        limits.max_sentences = _number_words(match.group(1))
    # quoted words must appear too; an apostrophe ("driver's") opens or closes a quote here as well
    limits.keywords = tuple(match.group(1) for match in re.finditer(r"[\"']([^\']*)[\"']", text))
    return limits


def count_words(response: str) -> int:
    """Whitespace pieces; or, when the response has any CJK character or full-width/CJK punctuation, those
    characters only (the official count for Chinese text)."""
    cjk = CJK_FOR_COUNTING.findall(response)
    return len(cjk) if cjk else len(response.split())


def check_length_words(response: str, *, description: str) -> Verdict | Unreadable:
    """Word count limits (exact, range, at least, at most), official Length_Words; "each" checks every element.

    Spans when the count is of whitespace words: past an upper limit, the words past it; met, the whole response.
    """
    if re.search(r"\beach\b", description, re.IGNORECASE):
        return _check_each_element_words(response, description)
    limits = parse_word_limits(description)
    if not limits.checks_something:
        return Unreadable("length_words", description, official=True)
    words = count_words(response)
    if limits.exact_words is not None:
        passed = words == limits.exact_words
        maximum = limits.exact_words
    else:
        sentences = len(re.findall(r"[.!?]+", response))
        passed = (all(len(keyword_pattern(keyword).findall(response)) for keyword in limits.keywords)
                  and within(words, limits.min_words, limits.max_words)
                  and within(sentences, limits.min_sentences, limits.max_sentences))
        maximum = limits.max_words
    if CJK_FOR_COUNTING.search(response) or limits.keywords or limits.min_sentences or limits.max_sentences:
        return Verdict(passed=passed, spans=None)
    return count_limit_verdict(passed, whitespace_tokens(response), maximum)


EACH_WORD_LIMITS = [
    (r"between (\d+) and (\d+) words", "range"), (r"range: (\d+)-(\d+) words", "range"),
    (r"at least (\d+) words", "min"), (r"a minimum of (\d+) words", "min"), (r"a minimum length of (\d+) words", "min"),
    (r"at most (\d+) words", "max"), (r"exactly (\d+) words", "exact"), (r"no more than (\d+) words", "max"),
    (r"not exceed (\d+) words", "max"), (r"a maximum of (\d+) words", "max"),
    (r"a maximum length of (\d+) words", "max"),
    (r"limit of (\d+) words", "max"), (r"not exceeding (\d+) words", "max"), (r"less than (\d+) words", "max"),
]


def _each_word_limits(description: str) -> tuple[str | None, int | None, int | None] | None:
    """(target element, min, max) of an "each ... words" description (official LengthWords_Each); number words
    are turned into digits first. None when no limit is found."""
    text = re.sub(rf"\b({alternation(UP_TO_HUNDRED)})\b", lambda m: str(UP_TO_HUNDRED[m.group().lower()]),
                  description, flags=re.IGNORECASE)
    target = re.search(r"(?:each entry in the|Each entry in the|Each|each|The|the)\s+(.+?)\s+(?:is|in the table|column"
                       r"|must|consists of|contains?|should|have)", text, re.IGNORECASE)
    target_name = target.group(1).lower().replace('"', "").replace("'", "") if target else None
    for pattern, kind in EACH_WORD_LIMITS:
        if match := re.search(pattern, text, re.IGNORECASE):
            numbers = [int(group) for group in match.groups()]
            return target_name, *{"range": numbers, "min": [numbers[0], None], "max": [None, numbers[0]],
                                  "exact": [numbers[0], numbers[0]]}[kind]
    return None


def _word_elements(response: str, target: str | None) -> list[str]:
    shape = response_format(response)
    if shape == "table":
        return _table_cells_for_target(response, target or "cells")
    if shape == "json":
        try:
            data = json.loads(response)
            if target is not None and "entry" in target:
                return [str(value) for value in data.values()]
            return [str(data.get(target.split()[-1], ""))]
        except Exception:  # the official code treats any failure here (bad JSON, a list, no target) as no elements
            return []
    if shape == "numbered":
        return numbered_items(response, after_colon=True)
    if shape == "bullet":
        return bullet_items(response)
    return [line.strip().lstrip("#").strip() for line in response.split("\n")
            if line.strip() and not line.strip().strip("*#'\"").endswith(":")
            and not re.match(r"^\|.*\|$", line.strip())]


TABLE_SEPARATOR = "<separator>"
"""Stands for a "|---|" line. Official quirk kept: when no header names the target, every cell is an element,
headers included, and so is each separator line, as a one-word element (which fails any minimum above one)."""


def _table_cells_for_target(response: str, target: str) -> list[str]:
    """Cells of the columns whose header contains `target`; all cells (headers too) when no header does."""
    cells = []
    for line in response.split("\n"):
        line = line.strip()
        if not line.startswith("|"):
            continue
        if re.match(r"^[\s|*-]+$", line):
            cells.append(TABLE_SEPARATOR)
        else:
            cells.extend(cell.strip() for cell in line[1:-1].split("|") if cell.strip())
    if TABLE_SEPARATOR in cells:
        split = cells.index(TABLE_SEPARATOR)
        headers, data = cells[:split], [cell for cell in cells[split + 1:] if cell != TABLE_SEPARATOR]
    else:
        headers, data = cells, []
    if not headers:
        return []
    rows = [dict(zip(headers, data[start:start + len(headers)])) for start in range(0, len(data), len(headers))
            if len(data[start:start + len(headers)]) == len(headers)]
    matching = [value for row in rows for key, value in row.items()
                if key.lower() != value.lower() and target.lower() in key.lower()]
    return matching or cells


def _check_each_element_words(response: str, description: str) -> Verdict | Unreadable:
    if re.search(r"each word must be", description, re.IGNORECASE):
        match = re.search(rf"(?i)must be (at most|at least) {LEVEL_NUMBER} characters", description)
        if not match or not match.group(2).isdigit():
            return Unreadable("length_words", description, official=None)
        limit = int(match.group(2))
        lengths = [len(word) for word in response.split(" ")]
        passed = all(length <= limit for length in lengths) if match.group(1) == "at most" else all(
            length >= limit for length in lengths)
        return Verdict(passed=passed, spans=None)
    parsed = _each_word_limits(description)
    if parsed is None:
        return Unreadable("length_words", description, official=False)
    target, minimum, maximum = parsed
    elements = _word_elements(response, target)
    passed = bool(elements) and all(within(len(element.split()), minimum, maximum) for element in elements)
    return Verdict(passed=passed, spans=None)


# ---------------------------------------------------------------- Length_Sentences (official Length_Sentences.py)

SENTENCE_NUMBER_WORDS = {**ONE_TO_TEN, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30,
                         "fifty": 50, "hundred": 100, "thousand": 1000, **CHINESE_DIGITS}
SN = rf"(\d+|{alternation(SENTENCE_NUMBER_WORDS)})"
CHINESE_SENTENCE = r"(?:个句子|句话|句|個句子)"
SENTENCE_LIMITS = [
    (rf"exactly(?:[:])? {SN} (?:topic )?sentences?", "exact"), (rf"(?:should|must) contain {SN} sentences?", "exact"),
    (rf"must be exactly {SN} sentences?", "exact"),
    (r"(?:must|should)? be a single sentence", "single"), (r"consisting of (?:only )?one sentence", "single"),
    (r"(?:the response|the text|the answer) must be a single sentence", "single"), (r"in a single sentence", "single"),
    (rf"at least(?:[:])? {SN} sentences?", "min"), (rf"a minimum of {SN} sentences?", "min"),
    (rf"no fewer than {SN} sentences?", "min"), (rf"(?:包含)?(?:至少|最少)(?:包含)?{SN}{CHINESE_SENTENCE}", "min"),
    (rf"(?:must )?contain at most {SN} sentences?", "max"), (rf"at most(?:[:])? {SN} sentences?", "max"),
    (rf"not exceeding {SN} sentences?", "max"), (rf"no (?:more|longer) than {SN} sentences?", "max"),
    (rf"limited to {SN} sentences?", "max"), (rf"(?:must|should)? not exceed {SN} sentences?", "max"),
    (rf"a maximum (?:length )?of {SN} sentences?", "max"), (rf"not to exceed {SN} sentences?", "max"),
    (rf"not surpass(?: a total of)? {SN} sentences?", "max"), (rf"(?:至多|最多)(?:包含)?{SN}{CHINESE_SENTENCE}", "max"),
    (rf"range(?:[:])? {SN}-{SN} sentences?", "range"), (rf"between {SN} and {SN} sentences?", "range"),
    (rf"between {SN} to {SN} sentences?", "range"), (rf"into {SN} to {SN} sentences?", "range"),
    (rf"a range of {SN} to {SN} sentences?", "range"), (rf"be composed of {SN} to {SN} sentences?", "range"),
    (rf"consists? of {SN} to {SN} sentences?", "range"), (rf"consisting of {SN} to {SN} sentences?", "range"),
    (rf"{SN}到{SN}{CHINESE_SENTENCE}", "range"),
    (rf"organized into at least {SN} sentences?", "min"), (rf"structured into at most {SN} sentences?", "max"),
]
"""(pattern, kind) in the official order, searched in the lowercased description; the first match decides."""
SENTENCE = re.compile(r"[^.!?]*[.!?]")


def _bounds(match: re.Match[str], kind: str, words: dict[str, int]) -> tuple[int | None, int | None]:
    """(min, max) from a limit pattern's match; an unknown number word reads as 0, as in the official parsers."""
    numbers = [int(group) if group.isdigit() else words.get(group.lower(), 0) for group in match.groups()]
    return {"exact": lambda: (numbers[0], numbers[0]), "single": lambda: (1, 1), "min": lambda: (numbers[0], None),
            "max": lambda: (None, numbers[0]), "range": lambda: (numbers[0], numbers[1])}[kind]()


def find_sentences(response: str) -> list[Span]:
    """Runs of text ending at ".", "!" or "?" with something besides whitespace (official count_sentences); text
    after the last mark is not a sentence."""
    return [match.span() for match in SENTENCE.finditer(response) if match.group().strip()]


def check_length_sentences(response: str, *, description: str) -> Verdict | Unreadable:
    """Sentence count limits (official Length_Sentences). Spans: past an upper limit, the sentences past it."""
    text = description.lower().strip()
    for pattern, kind in SENTENCE_LIMITS:
        if match := re.search(pattern, text):
            minimum, maximum = _bounds(match, kind, SENTENCE_NUMBER_WORDS)
            sentences = find_sentences(response)
            passed = within(len(sentences), minimum, maximum)
            return count_limit_verdict(passed, sentences, maximum)
    return Unreadable("length_sentences", description, official=True)


# ---------------------------------------------------------------- Length_Paragraphs (official Length_Paragraphs.py)

PARAGRAPH_NUMBER_WORDS = {**ONE_TO_TEN, **CHINESE_DIGITS}
PN = rf"(\d+|{alternation(ONE_TO_TEN)})"
PARAGRAPH_LIMITS = [
    (rf"exactly {PN} paragraphs?", "exact"), (rf"must be exactly {PN} paragraphs?", "exact"),
    (rf"(?:should|must) contain {PN} paragraphs?", "exact"),
    (r"(?:must|should)? be a single paragraph", "single"),
    (r"(?:the response|the text|the answer) must be a single paragraph", "single"),
    (rf"at least {PN} paragraphs?", "min"), (rf"least: {PN} paragraphs?", "min"),
    (rf"a minimum of {PN}(?: distinct)? paragraphs?", "min"),
    (rf"at most {PN} paragraphs?", "max"), (rf"not exceeding {PN} paragraphs?", "max"),
    (rf"no more than {PN} paragraphs?", "max"), (r"最多(?:分为)?(\d+|一|两|二|三|四|五|六|七|八|九|十)个段落", "max"),
    (r"range (\d+)-(\d+) paragraphs?", "range"), (r"range: (\d+)-(\d+)", "range"),
    (r"between (\d+) and (\d+) paragraphs?", "range"), (r"between (\d+) to (\d+) paragraphs?", "range"),
    (r"(\d+) to (\d+) paragraphs?", "range"), (r"(?:divided)? into (\d+) to (\d+) paragraphs?", "range"),
    (r"a range of (\d+) to (\d+) paragraphs?", "range"),
    (rf"organized into at least {PN} paragraphs?", "min"), (rf"structured into at most {PN} paragraphs?", "max"),
]
"""(pattern, kind) in the official order, searched in the lowercased description; the first match decides."""


def find_blank_line_paragraphs(response: str) -> list[Span]:
    """Pieces between literal "\\n\\n" that are not blank (official count_paragraphs): a line holding only
    spaces does not separate paragraphs, three newlines do."""
    spans, start = [], 0
    for piece in response.split("\n\n"):
        content = piece.strip()
        if content:
            content_start = start + piece.index(content[0])
            spans.append((content_start, content_start + len(content)))
        start += len(piece) + 2
    return spans


def check_length_paragraphs(response: str, *, description: str) -> Verdict | Unreadable:
    """Paragraph count limits (official Length_Paragraphs). Spans: past an upper limit, the paragraphs past it."""
    text = description.lower()
    for pattern, kind in PARAGRAPH_LIMITS:
        if match := re.search(pattern, text, re.IGNORECASE):
            minimum, maximum = _bounds(match, kind, PARAGRAPH_NUMBER_WORDS)
            paragraphs = find_blank_line_paragraphs(response)
            passed = within(len(paragraphs), minimum, maximum)
            return count_limit_verdict(passed, paragraphs, maximum)
    return Unreadable("length_paragraphs", description, official=False)
