"""MulDimIF content constraints: Content_Keywords, Content_Punctuation and Content_Identifiers (the official
``Content_Keywords.py``, ``Content_Punctuation.py`` and ``Content_Others.py``)."""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass

from rubrics2tokens.verifiers import rules
from rubrics2tokens.verifiers.base import Verdict
from rubrics2tokens.verifiers.muldimif.common import CJK_CHARACTER, ONE_TO_TEN, Unreadable, bullet_items, compound_number, numbered_items, response_format


# ---------------------------------------------------------------- Content_Keywords (official Content_Keywords.py)

KEYWORD_COUNT_WORDS = {**ONE_TO_TEN, "once": 1, "twice": 2}
KEYWORD_IN_QUOTES = re.compile(r"[\"'「“]([^\"']+)[\"'」”]")
KEYWORD_IN_DOUBLED_QUOTES = re.compile(r'["”]{2}([^"“]+)["“]{2}')
EACH_ELEMENT = re.compile(r"\b(each|every)\s+(.+?)\s+(must|should|needs to|has to)\s+(.*)", re.IGNORECASE)


@dataclass
class KeywordRule:
    """What a keyword description asks, parsed as the official ``_parse_constraint`` does."""

    keywords: list[str]
    min_count: int = 1
    exclude: bool = False
    any_of: bool = False
    end_with_period: bool = False
    capitalized_words: bool = False
    min_words: int = 0
    max_words: float = float("inf")

    @property
    def checks_something(self) -> bool:
        return bool(self.keywords or self.end_with_period or self.capitalized_words
                    or self.min_words or self.max_words != float("inf"))


def keyword_pattern(keyword: str) -> re.Pattern[str]:
    """A keyword with a CJK character is matched anywhere; any other as a whole token (no word character
    on either side), case-insensitively."""
    if CJK_CHARACTER.search(keyword):
        return re.compile(re.escape(keyword))
    return re.compile(rf"(?<!\w){re.escape(keyword)}(?!\w)", re.IGNORECASE)


def parse_keyword_rule(description: str) -> KeywordRule:
    text = description.strip()
    while re.match(r'^"+(.*[^"])"+$', text):
        text = re.sub(r'^"+(.*[^"])"+$', r"\1", text)
    rule = KeywordRule(keywords=[])
    rule.end_with_period = bool(re.search(r"must\s+end\s+with\s+(a\s+)?period", text, re.IGNORECASE))
    rule.capitalized_words = bool(re.search(r"must\s+use\s+capitalized\s+letters\s+for\s+each\s+word", text,
                                            re.IGNORECASE))
    if match := re.search(r"(?:at\s+least|minimum\s+of)\s+(\S+)\s+word", text, re.IGNORECASE):
        rule.min_words = compound_number(match.group(1), KEYWORD_COUNT_WORDS)
    if match := re.search(r"(?:not\s+exceed|at\s+most|no\s+more\s+than|maximum\s+of)\s+(\S+)\s+word", text,
                          re.IGNORECASE):
        rule.max_words = compound_number(match.group(1), KEYWORD_COUNT_WORDS)
    if re.search(r"is\s+a\s+single\s+word", text, re.IGNORECASE):
        rule.min_words = rule.max_words = 1
    if re.search(r"(avoid\s+using\s+(the\s+)?term|must\s+be\s+avoided)", text, re.IGNORECASE):
        # an exclusion: only the first quoted keyword, and no counts or alternatives
        rule.exclude = True
        if match := re.search(r"[\"']([^\"']+)[\"']", text):
            rule.keywords = [match.group(1)]
        return rule
    rule.any_of = bool(re.search(r"\bOR\b", text, re.IGNORECASE))
    if match := re.search(r"at least (\d+|one|two|three|four|five|six|seven|eight|nine|ten|once|twice)"
                          r"(?:\s+times?)?\b(?!\s+words\s+long)", text, re.IGNORECASE):
        count = match.group(1).lower()
        rule.min_count = int(count) if count.isdigit() else KEYWORD_COUNT_WORDS.get(count, 1)
    if re.search(r"must appear multiple times", text, re.IGNORECASE):
        rule.min_count = 2
    # Keywords are the quoted pieces. Official quirk kept: an apostrophe ("driver's") also opens or closes a quote.
    quoted = KEYWORD_IN_DOUBLED_QUOTES if KEYWORD_IN_DOUBLED_QUOTES.search(text) else KEYWORD_IN_QUOTES
    rule.keywords = [match.group(1) for match in quoted.finditer(text)]
    return rule


def judge_keyword_rule(text: str, rule: KeywordRule) -> bool:
    """The official ``_validate_rule``; word counts are whitespace pieces."""
    if rule.capitalized_words and any(not word[0].isupper() for word in text.split()):
        return False
    if rule.end_with_period and not text.strip().endswith("."):
        return False
    word_count = len(text.split())
    # an unreadable word limit is None in the official code, and comparing with None raises there
    if rule.min_words is None or rule.max_words is None:
        raise ValueError("unreadable word limit")
    if not rule.min_words <= word_count <= rule.max_words:
        return False
    counts = [len(keyword_pattern(keyword).findall(text)) for keyword in rule.keywords]
    if rule.exclude:
        return not any(counts)
    if rule.any_of:
        return any(count >= rule.min_count for count in counts)
    return all(count >= rule.min_count for count in counts)


def _include_and_avoid(description: str, response: str) -> bool | None:
    """"includes the keyword 'A' and avoids the keyword 'B'": plain case-sensitive substring tests."""
    include = re.search(r"includes?\s+the\s+keyword\s+[\"']([^\"']+)[\"']", description, re.IGNORECASE)
    avoid = re.search(r"avoids?\s+the\s+keyword\s+[\"']([^\"']+)[\"']", description, re.IGNORECASE)
    if include and avoid:
        return include.group(1) in response and avoid.group(1) not in response
    return None


def _conditional_keywords(description: str, response: str) -> bool | None:
    """"If discussing X, the summary must include the keyword 'K'": K is required when X appears."""
    conditions = re.findall(r"If discussing\s+([^,]+),\s*the summary must include the keyword\s+[\"']([^\"']+)[\"']",
                            description, re.IGNORECASE)
    if not conditions:
        return None
    for topic, keyword in conditions:
        if "/" in topic:
            split = re.match(r"^(.*\s)(\S+)\/(\S+)(\s.*)$", topic)
            variants = ([split.group(1) + split.group(k) + split.group(4) for k in (2, 3)] if split
                        else [part.strip() for part in topic.split("/")])
        else:
            variants = [topic]
        if any(variant in response for variant in variants) and keyword not in response:
            return False
    return True


def _keyword_elements(response: str, target: str) -> list[str]:
    """The elements an "each <target> must include ..." constraint applies to (official Content_Keywords_Each)."""
    shape = response_format(response)
    if shape == "table":
        return _table_column_for(response, target)
    if shape == "json":
        try:
            data = json.loads(response)
        except json.JSONDecodeError:
            return []
        values = data.values() if isinstance(data, dict) else data if isinstance(data, list) else []
        return [str(value) for value in values]
    if shape == "numbered":
        return numbered_items(response, after_colon=False)
    if shape == "bullet":
        return bullet_items(response)
    return _sections_between_rules(response)


def _sections_between_rules(response: str) -> list[str]:
    """Plain text split at separator lines ("---", "***", "==="); the whole text when there are none."""
    sections, current = [], []
    for line in response.split("\n"):
        stripped = line.strip()
        if len(stripped) >= 3 and stripped[0] in "-*=" and set(stripped) == {stripped[0]}:
            if current:
                sections.append("\n".join(current).strip())
                current = []
        else:
            current.append(line)
    if current:
        sections.append("\n".join(current).strip())
    return sections or [response]


def _table_column_for(response: str, target: str) -> list[str]:
    """The data cells of the table column whose header shares most words with `target`; with no shared word,
    the column with the most words per cell. Rows with a different cell count are skipped."""
    lines = [line.strip() for line in response.split("\n")
             if line.strip().startswith("|") and line.strip().endswith("|")]
    if len(lines) < 3:
        return []
    headers = [cell.strip() for cell in lines[0].split("|")[1:-1]]
    rows = [dict(zip(headers, cells)) for cells in
            ([cell.strip() for cell in line.split("|")[1:-1]] for line in lines[2:]) if len(cells) == len(headers)]
    if not headers or not rows:
        return []

    def clean(cell: str) -> str:
        return re.sub(r"^#+\s*", "", cell).strip()

    def normalized(word: str) -> str:
        return re.sub(r"\W", "", word).lower()

    target_words = {normalized(word) for word in target.split() if normalized(word)}
    best_header, best_matches = None, -1
    for header in headers:
        matches = sum(normalized(word) in target_words for word in header.split() if normalized(word))
        if matches > best_matches:
            best_header, best_matches = header, matches
    if best_matches <= 0:
        best_header = max(headers, key=lambda header: sum(len(clean(row[header]).split()) for row in rows) / len(rows))
    return [clean(row[best_header]) for row in rows]


def check_content_keywords(response: str, *, description: str) -> Verdict | Unreadable:
    """Keywords to include (or avoid), with optional counts, word limits, capitalization and a final period.

    Follows the official Content_Keywords. A description with "each" or "every" is checked per element of
    the response (table column, list item, section), each element against the whole rule.
    """
    if re.search(r"\b(each|every)\b", description, re.IGNORECASE) and "for each word" not in description:
        return _check_each_element_keywords(response, description)
    for special_case in (_include_and_avoid, _conditional_keywords):
        verdict = special_case(description, response)
        if verdict is not None:
            return Verdict(passed=verdict, spans=None)
    rule = parse_keyword_rule(description)
    if not rule.checks_something:
        return Unreadable("content_keywords", description, official=True)
    passed = judge_keyword_rule(response, rule)
    occurrences = sorted(span for keyword in rule.keywords
                         for span in (match.span() for match in keyword_pattern(keyword).finditer(response)))
    if rule.exclude:  # forbidden keywords: a fail blames them, a pass credits nothing
        return Verdict(passed=passed, spans=() if passed else tuple(occurrences))
    only_keywords = not (rule.end_with_period or rule.capitalized_words or rule.min_words
                         or rule.max_words != float("inf"))
    if not only_keywords:
        return Verdict(passed=passed, spans=None)
    # required keywords: a pass credits them; too few (a lower limit) blames the stop, not those present
    return Verdict(passed=True, spans=tuple(occurrences)) if passed else Verdict.too_few()


def _check_each_element_keywords(response: str, description: str) -> Verdict | Unreadable:
    match = EACH_ELEMENT.search(description)
    if not match:
        return Unreadable("content_keywords", description, official=False)
    rule = parse_keyword_rule(match.group(4))
    elements = _keyword_elements(response, match.group(2).lower())
    return Verdict(passed=bool(elements) and all(judge_keyword_rule(element, rule) for element in elements),
                   spans=None)


# ---------------------------------------------------------------- Content_Punctuation (official Content_Punctuation.py)

PUNCTUATION_NAMES = {"period": ".", "question mark": "?", "exclamation mark": "!", "semicolon": ";"}
NEGATIVE_PUNCTUATION = re.compile(r"\b(must not|avoid|exclude|not end with|do not use)\b", re.IGNORECASE)
PUNCTUATION_FOLLOWED_BY = re.compile(r"(period|question mark|exclamation mark|semicolon)\s+followed by a `([^`]+)`",
                                     re.IGNORECASE)


def _sentences(text: str) -> list[str]:
    """NLTK's English sentence splitter, which the official checker uses (its data must be installed)."""
    from rubrics2tokens.verifiers.ifeval import ensure_nltk_data

    ensure_nltk_data()
    from nltk.tokenize import sent_tokenize

    return sent_tokenize(text)


def _punctuation_units(text: str, wording: str) -> list[str]:
    """What must end with the mark. Official quirk kept: "each", "any" and "all" are matched as substrings
    ("finally", "many"), which switches to a per-sentence check."""
    if "paragraph" in wording or "section" in wording:
        units = [line.strip() for line in text.split("\n") if line.strip()]
    elif "each" in wording or "any" in wording or "all" in wording:
        units = _sentences(text)
    else:
        units = [text]
    if "table" in wording or "cell" in wording:
        rows = text.split("\n")
        if len(rows) > 1:
            rows = rows[2:]  # the header and its separator line
        cells = (cell.strip() for row in rows for cell in re.split(r"\s*\|\s*", row.strip("|")))
        units = [cell for cell in cells if cell and cell.strip("-")]
    return units


def check_content_punctuation(response: str, *, description: str) -> Verdict | Unreadable:
    """The response (or each sentence, line, table cell or bullet point it names) ends with the named mark.

    Follows the official Content_Punctuation. Spans, when the whole response is the unit: its last character,
    except for a ban that held, which credits nothing.
    """
    wording = description.strip().lower().rstrip(".")
    text = response.strip()
    if "bullet point" in wording:
        return Verdict(passed=_bullets_end_with(text, wording), spans=None)
    negative = NEGATIVE_PUNCTUATION.search(wording) is not None
    units = _punctuation_units(text, wording)
    if any(not unit for unit in units):
        return Verdict(passed=negative, spans=())  # an empty response: fails a requirement, meets a ban
    if special := PUNCTUATION_FOLLOWED_BY.search(wording):
        ending = PUNCTUATION_NAMES[special.group(1).lower()] + special.group(2)
        return Verdict(passed=all(unit.endswith(ending) for unit in units), spans=None)
    names = [name.rstrip("s") for name in re.findall(
        r"\b(periods?|question marks?|exclamation marks?|semicolons?|punctuation marks?)\b", wording)]
    if not names:
        return Unreadable("content_punctuation", description, official=None)
    if "punctuation mark" in names:
        allowed = set(string.punctuation)
    else:
        allowed = {PUNCTUATION_NAMES[name] for name in names if name in PUNCTUATION_NAMES}
    passed = all((unit[-1] in allowed) != negative for unit in units)
    if units != [text]:
        return Verdict(passed=passed, spans=None)
    if passed and negative:  # a ban that held: a global property, no character achieves it (method.md §5)
        return Verdict(passed=True, spans=())
    end = len(response.rstrip())
    return Verdict(passed=passed, spans=((end - 1, end),))  # the required mark, or the wrong or forbidden one


def _bullets_end_with(text: str, wording: str) -> bool:
    """Each sentence of each "- ", "* " or "• " line ends with the first named mark (any punctuation if none)."""
    mark = next((value for name, value in PUNCTUATION_NAMES.items() if name in wording), None)
    bullets = re.findall(r"^[\-\*\•]\s.*$", text, re.MULTILINE)
    return all(sentence.strip().endswith(mark) if mark else sentence.strip()[-1] in string.punctuation
               for bullet in bullets for sentence in _sentences(bullet))


# ---------------------------------------------------------------- Content_Identifiers (official Content_Others.py)


def check_content_identifiers(response: str, *, description: str) -> Verdict | Unreadable:
    """Start identifiers and a name's first letter, as the official Content_Others reads them."""
    start_identifier = re.match(r"Start identifier( must be|:)(?:.*)?\s'([^']+)'", description)
    if start_identifier and "Each example must start with" in description:
        return Verdict(passed=start_identifier.group(2) in response, spans=None)  # anywhere, case-sensitive
    start_phrase = re.search(r"(?:Start|start|begin|it is essential to start) (?:with|by) the (?:identifier|phrase)"
                             r" '?([^']+)'?", description, re.IGNORECASE)
    expected_start = (start_identifier or start_phrase)
    if expected_start:
        phrase = expected_start.group(expected_start.lastindex)
        passed = response.lstrip(" #").lower().startswith(phrase.lower())
        return Verdict(passed=passed, spans=None)
    letter = re.match(r"The name of the showroom must start with the letter '([A-Za-z])'\.", description)
    if letter:
        # any word starting with that capital letter counts, as in the official check
        words = [match.span() for match in re.finditer(rf"\b{letter.group(1).upper()}[a-zA-Z]*\b", response)]
        return Verdict(passed=bool(words), spans=tuple(words))
    if "be in full sentences" in description:
        return Verdict(passed=True, spans=())  # the official check always passes: a global property, no credit
    return Unreadable("content_identifiers", description, official=False)
