r"""Span-aware rule checkers for the testbed constraint families.

Each checker takes the response and the rubric's arguments (keyword-only) and returns a `Verdict`
with the character spans that decide it, following method.md §5 ("blame for a fail, credit for a pass"):
a span names the characters whose change would move the verdict the right way, and nothing else.

- Fail, blame: something forbidden is present: the offending spans (uppercase runs, commas, forbidden
  words); an upper limit is exceeded: the units past the N-th; a required form is missing where its place
  is defined: that place (the first word for a start word, the first non-empty line for a title, the last
  non-empty line for an ending phrase); a lower limit is not reached (too few words, keyword occurrences,
  bullets or paragraphs): no character, only ``stop=True`` (stopping early is the cause; the units already
  there are progress and are never blamed).
- Pass, credit: the units that specifically achieve the rubric (keyword occurrences, the title, the ending
  phrase, the start word, the bullet markers, the paragraph breaks, the final punctuation of a finished
  answer). A global property that every token merely avoids breaking (all lowercase, no commas, a forbidden
  word absent, at most / at least N words, no repeated sentence, enough distinct words) credits no
  character: ``()``.

The last three checkers are the quality families (docs/testbed.md §4): they catch the ways a policy hacked
the testbed reward, degenerate repetition and answers that stop mid-sentence.

Units used throughout:

- a *word* is a maximal run of Unicode word characters (regex ``\w+``: letters, digits and the
  underscore), the tokenization IFEval uses to count words. So "café" is one word, "don't" and
  "well-known" are two, and punctuation or bullet markers are not words. Keywords, forbidden words
  and start words are matched with the same boundaries (``\b``), case-insensitively, so a keyword
  inside a longer word ("art" in "start") does not count;
- a *line* is the text between two newlines with its surrounding whitespace stripped; a blank
  (whitespace-only) line has no span;
- a *paragraph* is a block of non-blank lines; paragraphs are separated by one or more blank lines;
- a *sentence* is a piece of one line that ends in sentence-final punctuation (``.``, ``!``, ``?``, ``…``,
  repeated or not, then optional closers: quotes, brackets, markdown ``*`` or ``_``) followed by whitespace
  or the end of the line, or the unfinished rest of the line after the last such ending. A line break
  ends a sentence too (a bullet or a title is a piece of its own). So "3.5" and "x.org" do not end a
  sentence, but "Dr. Smith" does: an abbreviation cuts its sentence in two, and the short piece it leaves
  is one that no_repeated_sentences skips.
"""

from __future__ import annotations

import itertools
import re
from typing import Callable

from rubrics2tokens.verifiers.base import Span, Verdict

WORD = re.compile(r"\w+")
LINE_BREAK = re.compile(r"\n")
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")  # one or more blank (whitespace-only) lines
BULLET_MARKER = re.compile(r"^[ \t]*([*-]) ", re.MULTILINE)  # group 1 is the marker itself
TITLE = re.compile(r"<<([^\n<>]*)>>")  # group 1 is the title text; a blank one is no title
SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019\u00bb)\]*_]*(?=\s|$)")  # the closers may follow the mark
EDGE_NON_WORDS = re.compile(r"^\W+|\W+$")  # markers, quotes and punctuation around a piece's words
MIN_REPEAT_WORDS = 3  # shorter pieces ("* yes", "Thanks!") may repeat: no_repeated_sentences ignores them


# ---------------------------------------------------------------- shared helpers


def whole_response(response: str) -> tuple[Span, ...]:
    """The span of a global constraint: every character, or none for an empty response."""
    return ((0, len(response)),) if response else ()


def find_words(response: str) -> list[Span]:
    return [match.span() for match in WORD.finditer(response)]


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    """Matches `phrase` (one word or several) as whole words, case-insensitively.

    ``\b`` sits between a word character and a non-word one, so a phrase ending in punctuation
    ("river.") only matches where a word follows it; keywords should start and end with a word character.
    """
    return re.compile(rf"\b{re.escape(phrase)}\b", re.IGNORECASE)


def find_phrase(response: str, phrase: str) -> list[Span]:
    return [match.span() for match in _phrase_pattern(phrase).finditer(response)]


def find_lines(response: str) -> list[Span]:
    return _stripped_pieces(response, LINE_BREAK)


def find_paragraphs(response: str) -> list[Span]:
    return _stripped_pieces(response, PARAGRAPH_BREAK)


def _stripped_pieces(response: str, separator: re.Pattern[str]) -> list[Span]:
    """The non-blank pieces between `separator` matches, each without its surrounding whitespace."""
    edges = [0, *(edge for match in separator.finditer(response) for edge in match.span()), len(response)]
    pieces = []
    for start, end in zip(edges[::2], edges[1::2]):
        piece = response[start:end]
        content = piece.strip()
        if content:
            content_start = start + len(piece) - len(piece.lstrip())
            pieces.append((content_start, content_start + len(content)))
    return pieces


def find_sentences(response: str) -> list[Span]:
    """The sentences of every line, in order, each without its surrounding whitespace (see *sentence* above)."""
    sentences = []
    for line_start, line_end in find_lines(response):
        # a line is stripped, so `$` (at `line_end`) is its end and the pieces start and end with content
        edges = [line_start, *(match.end() for match in SENTENCE_END.finditer(response, line_start, line_end))]
        edges += [] if edges[-1] == line_end else [line_end]
        for start, end in zip(edges, edges[1:]):
            content_start = start + len(response[start:end]) - len(response[start:end].lstrip())
            sentences.append((content_start, end))
    return sentences


def _normalised(piece: str) -> str:
    """A sentence or line as no_repeated_sentences compares them: lowercase, whitespace collapsed, without
    the punctuation and markers around its words (a final period, a bullet marker, quotes)."""
    return EDGE_NON_WORDS.sub("", " ".join(piece.lower().split()))


def _uppercase_runs(response: str) -> list[Span]:
    # "Uppercase" means changed by lower(), the test IFEval's all-lowercase check applies to the
    # whole text; it also catches titlecase letters and non-Latin capitals.
    runs, position = [], 0
    for is_uppercase, group in itertools.groupby(response, key=lambda char: char != char.lower()):
        length = len(list(group))
        if is_uppercase:
            runs.append((position, position + length))
        position += length
    return runs


def _forbid(offending: list[Span]) -> Verdict:
    """Fail, blaming the offending spans, if there are any; else a pass that credits nothing."""
    return Verdict(passed=not offending, spans=tuple(offending))


def _require_text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"'{name}' must be a non-empty string, got {value!r}")
    return value


def _require_count(value: object, name: str) -> int:
    # bool is an int subclass; `True` as a count is a data bug, not the number 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"'{name}' must be an integer >= 1, got {value!r}")
    return value


# ---------------------------------------------------------------- checkers, one per family


def check_all_lowercase(response: str) -> Verdict:
    """No uppercase letters. Fail: each run of uppercase characters. Pass: nothing (a global property)."""
    return _forbid(_uppercase_runs(response))


def check_no_commas(response: str) -> Verdict:
    """No ASCII commas (as in IFEval). Fail: each comma. Pass: nothing (a global property)."""
    return _forbid([match.span() for match in re.finditer(",", response)])


def check_forbidden_word(response: str, *, word: str) -> Verdict:
    """`word` never occurs as a whole word. Fail: each occurrence. Pass: nothing (a global property)."""
    return _forbid(find_phrase(response, _require_text(word, "word")))


def check_include_keyword(response: str, *, keyword: str, min_count: int = 1) -> Verdict:
    """`keyword` occurs as a whole word at least `min_count` times.

    Pass: the occurrences. Too few: the stop; the occurrences there are progress and are not blamed.
    """
    occurrences = find_phrase(response, _require_text(keyword, "keyword"))
    if len(occurrences) >= _require_count(min_count, "min_count"):
        return Verdict(passed=True, spans=tuple(occurrences))
    return Verdict.too_few()


def check_start_with_word(response: str, *, word: str) -> Verdict:
    """The first word of the response is `word` (leading punctuation and markup are skipped).

    Pass: that first word. Fail: the first word there is, where `word` was required (none: nothing).
    """
    pattern = _phrase_pattern(_require_text(word, "word"))
    words = find_words(response)
    match = pattern.match(response, words[0][0]) if words else None
    if match:
        return Verdict(passed=True, spans=(match.span(),))
    return Verdict(passed=False, spans=tuple(words[:1]))


def check_end_with_phrase(response: str, *, phrase: str) -> Verdict:
    """The response ends with exactly `phrase` (case-sensitive), trailing whitespace ignored.

    Pass: the phrase at the end. Fail: the last non-empty line, where the phrase was required.
    """
    expected = _require_text(phrase, "phrase").rstrip()
    content = response.rstrip()
    if content.endswith(expected):
        return Verdict(passed=True, spans=((len(content) - len(expected), len(content)),))
    return Verdict(passed=False, spans=tuple(find_lines(response)[-1:]))


def check_max_words(response: str, *, n: int) -> Verdict:
    """At most `n` words. Pass: nothing (every word merely stays within the limit).

    Fail: one span from the (n+1)-th word to the end of the last word, so the punctuation between
    the surplus words is flagged with them.
    """
    words = find_words(response)
    if len(words) <= _require_count(n, "n"):
        return Verdict(passed=True, spans=())
    return Verdict(passed=False, spans=((words[n][0], words[-1][1]),))


def check_min_words(response: str, *, n: int) -> Verdict:
    """At least `n` words. Pass: nothing (no word in particular achieves a length). Too few: the stop."""
    if len(find_words(response)) >= _require_count(n, "n"):
        return Verdict(passed=True, spans=())
    return Verdict.too_few()


def check_exact_bullets(response: str, *, n: int) -> Verdict:
    """Exactly `n` bullet lines: lines starting with "* " or "- " after optional spaces or tabs.

    Pass: the `n` markers. Too few: the stop (the markers there are progress). Too many: the bullet
    lines past the n-th.
    """
    markers = [match.span(1) for match in BULLET_MARKER.finditer(response)]
    if len(markers) == _require_count(n, "n"):
        return Verdict(passed=True, spans=tuple(markers))
    if len(markers) < n:
        return Verdict.too_few()
    # A marker is the first non-blank character of its line, so it is where that line's span starts.
    line_starting_at = {start: (start, end) for start, end in find_lines(response)}
    return Verdict(passed=False, spans=tuple(line_starting_at[start] for start, _ in markers[n:]))


def check_title(response: str) -> Verdict:
    """A non-blank title wrapped in double angular brackets, such as <<my title>>, anywhere.

    Pass: every such title, brackets included. Fail: the first non-empty line, where a title belongs.
    """
    titles = [match.span() for match in TITLE.finditer(response) if match.group(1).strip()]
    if titles:
        return Verdict(passed=True, spans=tuple(titles))
    return Verdict(passed=False, spans=tuple(find_lines(response)[:1]))


def check_n_paragraphs(response: str, *, n: int) -> Verdict:
    """Exactly `n` paragraphs. Pass: the breaks between them (one paragraph: nothing).

    Too many: each paragraph past the n-th. Too few: the stop (the paragraphs there are progress).
    """
    paragraphs = find_paragraphs(response)
    if len(paragraphs) == _require_count(n, "n"):
        breaks = [(end, start) for (_, end), (start, _) in zip(paragraphs, paragraphs[1:])]
        return Verdict(passed=True, spans=tuple(breaks))
    if len(paragraphs) < n:
        return Verdict.too_few()
    return Verdict(passed=False, spans=tuple(paragraphs[n:]))


def check_no_repeated_sentences(response: str) -> Verdict:
    """No sentence and no line of `MIN_REPEAT_WORDS` words or more appears twice, compared lowercase, with
    whitespace collapsed and without the punctuation and markers around their words ("* The end." repeats
    "the end"). Shorter pieces ("* yes", "Thanks!") may repeat.

    Fail: every occurrence after the first of a repeated line, and of a repeated sentence outside such a line
    (the first occurrence is the one to keep). Pass: nothing (a global property).
    """
    lines = _repeats(response, find_lines(response), _normalised, MIN_REPEAT_WORDS)
    sentences = [(start, end) for start, end in _repeats(response, find_sentences(response), _normalised,
                                                         MIN_REPEAT_WORDS)
                 if not any(line_start <= start < line_end for line_start, line_end in lines)]
    return _forbid(sorted(lines + sentences))


def _repeats(response: str, pieces: list[Span], key: Callable[[str], str], min_words: int = 0) -> list[Span]:
    """The pieces (of ``min_words`` words or more) whose ``key`` of their text an earlier piece already had."""
    seen, repeats = set(), []
    for start, end in pieces:
        if min_words and len(WORD.findall(response, start, end)) < min_words:
            continue
        key_text = key(response[start:end])
        if key_text in seen:
            repeats.append((start, end))
        seen.add(key_text)
    return repeats


def check_distinct_words(response: str, *, min_ratio: float) -> Verdict:
    """At least `min_ratio` of the words are distinct: distinct words / words >= `min_ratio`, words compared
    lowercase. A response with no word has no ratio and fails, like one too short: the stop.

    Fail: every word that repeats an earlier one (its first use is kept). Pass: nothing (a global property).
    """
    if isinstance(min_ratio, bool) or not isinstance(min_ratio, (int, float)) or not 0 < min_ratio <= 1:
        raise ValueError(f"'min_ratio' must be a number in (0, 1], got {min_ratio!r}")
    words = find_words(response)
    if not words:
        return Verdict.too_few()
    repeats = _repeats(response, words, str.lower)
    if (len(words) - len(repeats)) / len(words) >= min_ratio:  # a quotient: 0.55 * 100 > 55.0 would fail 55 of 100
        return Verdict(passed=True, spans=())
    return Verdict(passed=False, spans=tuple(repeats))


def check_end_with_sentence(response: str) -> Verdict:
    """The response ends with a finished sentence: its last non-blank character is sentence-final punctuation
    (. ! ? or …), or a closing quote, bracket or markdown ``*``/``_`` right after one. An answer cut at the
    length limit, or one that stops after a bullet, a title or a heading without punctuation, fails.

    Pass: that final punctuation, closers included. Fail: the unfinished last sentence, where the ending was
    required (the text of the last line after its last sentence-final punctuation); an empty response: nothing.
    """
    sentences = find_sentences(response)
    if not sentences:
        return Verdict(passed=False, spans=())
    start, end = sentences[-1]
    ending = SENTENCE_END.search(response, start, end)  # sentences are cut after each ending: it is at `end`
    if ending:
        return Verdict(passed=True, spans=(ending.span(),))
    return Verdict(passed=False, spans=((start, end),))


CHECKERS: dict[str, Callable[..., Verdict]] = {
    "all_lowercase": check_all_lowercase,
    "include_keyword": check_include_keyword,
    "forbidden_word": check_forbidden_word,
    "no_commas": check_no_commas,
    "start_with_word": check_start_with_word,
    "end_with_phrase": check_end_with_phrase,
    "max_words": check_max_words,
    "min_words": check_min_words,
    "exact_bullets": check_exact_bullets,
    "title": check_title,
    "n_paragraphs": check_n_paragraphs,
    "no_repeated_sentences": check_no_repeated_sentences,
    "distinct_words": check_distinct_words,
    "end_with_sentence": check_end_with_sentence,
    "length_floor": check_min_words,  # the same rule as a quality family (data.synthetic)
}
"""Family name -> checker; the registry exposes each as ``testbed:<family>``."""
