"""The pieces of English the extraction rules share: numbers written as digits or words, count phrases ("at
least 300", "6 or 7", "no more than ten") turned into IFEval's two relations, quoted strings and word lists.

IFEval states every count limit with one of two relations, ``at least N`` (count >= N) and ``less than N``
(count < N), so every phrasing is mapped onto those: "more than 5" is ``at least 6``, "at most 10" and "10 or
less" are ``less than 11``, and a range ("20 to 25", "6 or 7 times", "exactly 4") is both a lower and an upper
limit, two rubrics.
"""

from __future__ import annotations

import re

AT_LEAST = "at least"
LESS_THAN = "less than"

NUMBER_WORDS = {
    "zero": 0, "one": 1, "a single": 1, "single": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "a hundred": 100,
    "hundred": 100,
}
TIMES_WORDS = {"once": 1, "twice": 2, "thrice": 3}

# Longest words first, so "sixteen" is not read as "six".
NUMBER = r"(?:\d+|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")\b"


def to_number(text: str) -> int:
    """``"12"``, ``"twelve"`` -> 12."""
    text = text.strip().lower()
    return int(text) if text.isdigit() else NUMBER_WORDS[text]


def _number_group(name: str) -> str:
    return rf"(?P<{name}>{NUMBER})"


N, N2 = _number_group("n"), _number_group("n2")
TOTAL = r"(?:a total of\s+)?"  # "less than a total of 10 sentences"

# How each count phrase reads, tried in this order at each position (the first that matches wins). The text of
# a number in group ``n`` (and ``n2``) becomes the relations on the right.
COUNT_PHRASES: list[tuple[str, str]] = [
    (rf"(?:between|in the range of|from)\s+{N}\s+(?:and|to)\s+{N2}", "range"),
    (rf"{N}\s*(?:to|-|–|or)\s*{N2}", "range"),
    (rf"exactly\s+{N}", "exactly"),
    (rf"(?:at least|no less than|no fewer than|not less than|(?:a )?minimum of)\s+{TOTAL}{N}", "at least"),
    (rf"{N}\s*(?:or more|or above|\+)", "at least"),
    (rf"(?:more than|over|greater than|above)\s+{TOTAL}{N}", "more than"),
    (rf"(?:less than|fewer than|under|below)\s+{TOTAL}{N}", "less than"),
    (rf"(?:at most|no more than|not more than|(?:a )?maximum of|up to|not exceed(?:ing)?|"
     rf"nothing longer than|anything longer than)\s+{TOTAL}{N}", "at most"),
    (rf"{N}\s*(?:or less|or fewer|or below)", "at most"),
]
COUNT = "(?:" + "|".join(f"(?:{re.sub(r'[(][?]P<n2?>', '(?:', pattern)})" for pattern, _ in COUNT_PHRASES) + ")"
"""A count phrase, to embed in a rule's pattern (its number groups unnamed: a pattern names each group once);
read it back with `bounds`."""


def bounds(phrase: str) -> list[tuple[str, int]]:
    """The (relation, N) limits a count phrase sets: ``"at least 3"`` -> ``[("at least", 3)]``, ``"20 to 25"``
    -> ``[("at least", 20), ("less than", 26)]``; a phrase that is no count phrase gives ``[]``."""
    for pattern, kind in COUNT_PHRASES:
        match = re.fullmatch(pattern, phrase.strip(), flags=re.IGNORECASE)
        if match is None:
            continue
        n = to_number(match["n"])
        if kind == "range":
            return [(AT_LEAST, n), (LESS_THAN, to_number(match["n2"]) + 1)]
        return {"exactly": [(AT_LEAST, n), (LESS_THAN, n + 1)], "at least": [(AT_LEAST, n)],
                "more than": [(AT_LEAST, n + 1)], "less than": [(LESS_THAN, n)],
                "at most": [(LESS_THAN, n + 1)]}[kind]
    return []


TIMES_WORD = r"(?:once|twice|thrice)\b"
TIMES = (rf"(?P<times>(?:only\s+)?{TIMES_WORD}(?:\s+or\s+(?:less|more|fewer))?|"
         rf"(?:at least|more than|less than|fewer than|at most|no more than)\s+{TIMES_WORD}|"
         rf"(?:{COUNT}|{NUMBER})\s*times?\b)")
"""How often something appears, said with "times" or a times word: "at least 3 times", "twice", "at least once",
"once or less", "6 or 7 times", "4 times"."""


def times_bounds(phrase: str) -> list[tuple[str, int]]:
    """The limits of a `TIMES` phrase: "twice" is ``at least 2``, "only once" and "once or less" ``less than 2``
    (an upper limit), "at least 3 times" ``at least 3``, a bare "4 times" ``at least 4``."""
    phrase = re.sub(r"\s*times?$", "", phrase.strip().lower())
    alone = re.fullmatch(rf"(only\s+)?({TIMES_WORD})(?:\s+or\s+(less|more|fewer))?", phrase)
    if alone:
        only, count, direction = alone.groups()
        upper = only or direction in ("less", "fewer")
        return [(LESS_THAN, TIMES_WORDS[count] + 1)] if upper else [(AT_LEAST, TIMES_WORDS[count])]
    phrase = re.sub(TIMES_WORD, lambda word: str(TIMES_WORDS[word.group()]), phrase)  # "at least once"
    if re.fullmatch(NUMBER, phrase):
        return [(AT_LEAST, to_number(phrase))]
    return bounds(phrase)


QUOTED = r"[\"“”'‘’]"
QUOTED_STRING = re.compile(r"\"([^\"\n]+)\"|“([^”\n]+)”|”([^\"\n]+)\"|'([^'\n]+)'|‘([^’\n]+)’")


def quoted_strings(text: str) -> list[str]:
    """The strings in double, single or curly quotes, in order. A single quote inside a word (don't) opens none."""
    found = []
    for match in QUOTED_STRING.finditer(text):
        value = next(group for group in match.groups() if group is not None)
        if match.group(0).startswith("'") and match.start() > 0 and text[match.start() - 1].isalnum():
            continue  # an apostrophe, not a quote
        found.append(value)
    return found


def word_list(text: str) -> list[str]:
    """The words a list names: its quoted items when it has any ("'flea' and 'JSON'"), else the items between
    commas, "and" and "or" ("trust, brand, and law"); each stripped of brackets and quotes."""
    quoted = quoted_strings(text)
    items = quoted or re.split(r",|\bor\b|\band\b|&", text)
    words = [item.strip(" .[]()\"'“”‘’\t\n") for item in items]
    return [word for word in words if word and word.lower() not in ("etc", "so on")]


FLAGS = re.IGNORECASE
NEGATION = r"(?:\bno|\bnot|n't|\bnever|\bwithout|\bavoid(?:ing)?|\brefrain(?:ing)?|\bcannot|\bexclude)\b"
WITHIN_CLAUSE = r"[^.;?!\n]"
"""One character of the same clause: no sentence end, no line break."""


def sentences(text: str) -> list[str]:
    """The text cut at line breaks and at sentence ends followed by a capital, which is enough to keep one
    instruction's phrasing apart from the next one's."""
    return [piece for line in text.splitlines() for piece in re.split(r"(?<=[.!?])\s+(?=[A-Z\"“])", line)
            if piece.strip()]


def sentence_before(text: str, position: int) -> str:
    """The part of the sentence that ``text[position]`` is in, up to that position."""
    return re.split(r"[.!?\n]", text[:position])[-1]


def negated(relations: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The limits of "avoid ... more than twice": not (count >= 3) is count < 3. Only one lower limit negates
    into one IFEval relation; anything else gives ``[]``."""
    if len(relations) == 1 and relations[0][0] == AT_LEAST:
        return [(LESS_THAN, relations[0][1])]
    return []
