"""Extraction rules for IFEval's keyword instructions: words to include, words to use a number of times, words to
leave out, and how often a letter appears. One finder per instruction id: it takes the prompt text and returns
the arguments of each constraint of its kind that the wording states (``[]`` when none).
"""

from __future__ import annotations

import re
from typing import Any, Callable

from rubrics2tokens.rubrics.phrases import (FLAGS, LESS_THAN, NEGATION, QUOTED, TIMES, WITHIN_CLAUSE, negated,
                                            sentence_before, times_bounds, word_list)

Finder = Callable[[str], list[dict[str, Any]]]

FUNCTION_WORDS = {"a", "an", "the", "of", "to", "in", "for", "that", "this", "is", "it", "and", "or", "with"}
"""Unquoted, these are the grammar around a keyword ("the name of the company"), never the keyword itself."""
MOST_WORDS_PER_ITEM = 3  # a longer unquoted "item" is a clause the list ran into, not a keyword


def _keywords(listed: str) -> list[str]:
    """The words a list names, or ``[]`` when its unquoted items read as a clause rather than keywords."""
    words = word_list(listed)
    if re.search(QUOTED, listed):
        return words
    if any(len(word.split()) > MOST_WORDS_PER_ITEM or word.split()[0].lower() in FUNCTION_WORDS for word in words):
        return []
    return words


# ---------------------------------------------------------------- a word a number of times

KEYWORD = rf"(?P<quote>{QUOTED})?(?P<keyword>[\w’'-]+?){QUOTED}?"
KEYWORD_COUNT = re.compile(
    rf"\b(?:word|keyword|name|term)\s+{KEYWORD}\s+(?:{WITHIN_CLAUSE}{{0,30}}?\s)??(?:for\s+)?{TIMES}", FLAGS)


def find_keyword_counts(prompt: str) -> list[dict[str, Any]]:
    """"use the word war at least 8 times", "the word "fake" should appear 6 or 7 times" (two limits), "Mention
    the name Sarah only once", "the word "the" once or less"."""
    found = []
    for match in KEYWORD_COUNT.finditer(prompt):
        if not match["quote"] and match["keyword"].lower() in FUNCTION_WORDS:
            continue
        found += [{"keyword": match["keyword"], "relation": relation, "frequency": count}
                  for relation, count in times_bounds(match["times"])]
    return found


# ---------------------------------------------------------------- words to include

LIST_END = (r"(?=[.;?\n]|,\s*but\b|\s+in\s+it\b|\s+(?:in|throughout|anywhere in)\s+(?:your|the|this|my|each)\b|"
            r"\s+each time\b|$)")
KEYWORD_LIST = r"(?:\s*:)?\s*(?P<list>.+?)" + LIST_END
INCLUDED_KEYWORDS = [
    rf"\b(?:include|includes|including|contain|contains|containing|use|with|has|have)\s+"
    rf"(?:the\s+|these\s+|following\s+)*(?:key ?words?|words?|terms?|items?|line)\b(?!\s+(?:with|in|that)\b)"
    rf"{KEYWORD_LIST}",
    rf"\bmention\s+(?P<list>{QUOTED}[^\"“”'‘’\n]+{QUOTED})",
]
FIRST_WORD_CONTEXT = r"\b(?:start|starts|begin|begins)\b.{0,30}$"  # "start the first paragraph with the word"


def find_included_keywords(prompt: str) -> list[dict[str, Any]]:
    """"Include the keywords "lacking" and "model"", "include the words trust, brand and law", "Mention
    "Argentinian""; not when a negation comes first in the sentence (`find_forbidden_words`), nor a count after
    (`find_keyword_counts`), nor for the word a paragraph starts with."""
    keywords: list[str] = []
    for pattern in INCLUDED_KEYWORDS:
        for match in re.finditer(pattern, prompt, FLAGS):
            before = sentence_before(prompt, match.start())
            if re.search(NEGATION, before, FLAGS) or re.search(FIRST_WORD_CONTEXT, before, FLAGS):
                continue
            if re.search(TIMES, match["list"], FLAGS):
                continue
            keywords += [word for word in _keywords(match["list"]) if word not in keywords]
    return [{"keywords": keywords}] if keywords else []


# ---------------------------------------------------------------- words to leave out

SAYING = r"(?:use|using|include|including|mention|mentioning|say|saying|contain|containing|write|writing)"
FORBIDDEN_WORDS = [
    rf"{NEGATION}\s*(?:to\s+)?{SAYING}?\s*(?:any\s+of\s+)?(?:the\s+|following\s+|negative\s+)*"
    rf"(?:key ?words?|words?|terms?)\b(?:\s+such\s+as)?{KEYWORD_LIST}",
    rf"{NEGATION}\s*{SAYING}\s+(?P<list>{QUOTED}.+?){LIST_END}",
    rf"{NEGATION}\s*(?:mention|mentioning)\s+(?!the\s+(?:key)?words?\b)(?P<list>[\w ,]+?){LIST_END}",
    rf"\bthe\s+(?:key)?words?\s+(?P<list>.+?)\s+(?:cannot|can ?not|should not|shouldn't|must not|may not|"
    rf"does not|doesn't|do not|don't)\s+(?:be|appear)\b",
]


def find_forbidden_words(prompt: str) -> list[dict[str, Any]]:
    """"Do not include the following keywords: a, b", "without using the word "rename" or "name"", "Do not say
    'yes' or 'no'", "do not mention nursery and storytelling", "The word "rock" should not appear"; letters are
    `find_letter_counts`'s."""
    words: list[str] = []
    for pattern in FORBIDDEN_WORDS:
        for match in re.finditer(pattern, prompt, FLAGS):
            if re.match(r"\s*(?:the\s+)?letter\b", match["list"], FLAGS):
                continue
            words += [word for word in _keywords(match["list"]) if word not in words]
    return [{"forbidden_words": words}] if words else []


# ---------------------------------------------------------------- letters

LETTER = rf"(?:letter|character)\s+{QUOTED}?(?P<letter>[a-z]){QUOTED}?(?!\w)"
LETTER_COUNT = rf"\b{LETTER}\s+(?:{WITHIN_CLAUSE}{{0,30}}?\s)??(?:for\s+)?{TIMES}"
NO_LETTER = rf"{NEGATION}\s*(?:\w+\s+){{0,2}}?(?:the\s+)?{LETTER}"


def find_letter_counts(prompt: str) -> list[dict[str, Any]]:
    """"The letter o should appear at least 40 times", "make sure the letter q appears at least once", "Avoid
    using the letter i more than twice" (less than 3), "Don't contain the letter "p"" (less than 1)."""
    found = []
    for match in re.finditer(LETTER_COUNT, prompt, FLAGS):
        relations = times_bounds(match["times"])
        clause = re.split(r",|\band\b|\bbut\b", sentence_before(prompt, match.start()))[-1]
        if re.search(NEGATION, clause, FLAGS):  # "Avoid using the letter i more than twice"
            relations = negated(relations)
        found += [{"letter": match["letter"].lower(), "let_relation": relation, "let_frequency": count}
                  for relation, count in relations]
    if not found:
        found = [{"letter": match["letter"].lower(), "let_relation": LESS_THAN, "let_frequency": 1}
                 for match in re.finditer(NO_LETTER, prompt, FLAGS)]
    return found


RULES: dict[str, Finder] = {
    "ifeval:keywords:existence": find_included_keywords,
    "ifeval:keywords:frequency": find_keyword_counts,
    "ifeval:keywords:forbidden_words": find_forbidden_words,
    "ifeval:keywords:letter_frequency": find_letter_counts,
}
"""Verifier id -> its finder, for the keyword and letter instructions."""
