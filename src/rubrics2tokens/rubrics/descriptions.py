"""The plain sentence that describes an extracted constraint: a rubric's ``description``, read by the policy's
relevance model and by a person looking at the rows (the verifier decides it, not the sentence)."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from rubrics2tokens.rubrics.phrases import AT_LEAST
from rubrics2tokens.rubrics.rules_wording import LANGUAGES

Describe = Callable[[Mapping[str, Any]], str]


def _limit(relation: str, count: int, unit: str) -> str:
    """``at least 3 sentences`` / ``fewer than 3 sentences``."""
    return f"{'at least' if relation == AT_LEAST else 'fewer than'} {count} {unit}"


def _language_name(code: str) -> str:
    """The first name `LANGUAGES` gives the code ("Bengali", not "Bangla"), or the code itself."""
    return next((name for name, known in LANGUAGES.items() if known == code), code)


def _listed(words: list[str]) -> str:
    quoted = [f'"{word}"' for word in words]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


DESCRIPTIONS: dict[str, Describe] = {
    "ifeval:punctuation:no_comma": lambda _: "The response contains no commas.",
    "ifeval:change_case:english_lowercase": lambda _: "The response is in English and in all lowercase letters.",
    "ifeval:change_case:english_capital": lambda _: "The response is in English and in all capital letters.",
    "ifeval:change_case:capital_word_frequency": lambda a: (
        f"Words in all capital letters appear {_limit(a['capital_relation'], a['capital_frequency'], 'times')}."),
    "ifeval:keywords:existence": lambda a: f"The response includes the keywords {_listed(a['keywords'])}.",
    "ifeval:keywords:frequency": lambda a: (
        f"The word \"{a['keyword']}\" appears {_limit(a['relation'], a['frequency'], 'times')}."),
    "ifeval:keywords:forbidden_words": lambda a: (
        f"The response does not use the words {_listed(a['forbidden_words'])}."),
    "ifeval:keywords:letter_frequency": lambda a: (
        f"The letter \"{a['letter']}\" appears {_limit(a['let_relation'], a['let_frequency'], 'times')}."),
    "ifeval:language:response_language": lambda a: f"The whole response is in {_language_name(a['language'])}.",
    "ifeval:length_constraints:number_words": lambda a: (
        f"The response has {_limit(a['relation'], a['num_words'], 'words')}."),
    "ifeval:length_constraints:number_sentences": lambda a: (
        f"The response has {_limit(a['relation'], a['num_sentences'], 'sentences')}."),
    "ifeval:length_constraints:number_paragraphs": lambda a: (
        f"The response has exactly {a['num_paragraphs']} paragraphs, separated by the markdown divider ***."),
    "ifeval:length_constraints:nth_paragraph_first_word": lambda a: (
        f"The response has exactly {a['num_paragraphs']} paragraphs separated by blank lines, and paragraph "
        f"{a['nth_paragraph']} starts with the word \"{a['first_word']}\"."),
    "ifeval:detectable_content:number_placeholders": lambda a: (
        f"The response contains at least {a['num_placeholders']} placeholders in square brackets, like [name]."),
    "ifeval:detectable_content:postscript": lambda a: (
        f"The response ends with a postscript starting with {a['postscript_marker']}."),
    "ifeval:detectable_format:number_bullet_lists": lambda a: (
        f"The response has exactly {a['num_bullets']} markdown bullet points."),
    "ifeval:detectable_format:constrained_response": lambda _: (
        'The response is one of "My answer is yes.", "My answer is no." or "My answer is maybe."'),
    "ifeval:detectable_format:number_highlighted_sections": lambda a: (
        f"At least {a['num_highlights']} sections are highlighted with markdown, like *highlighted section*."),
    "ifeval:detectable_format:multiple_sections": lambda a: (
        f"The response has {a['num_sections']} sections, each beginning with \"{a['section_spliter']} X\"."),
    "ifeval:detectable_format:json_format": lambda _: "The whole response is valid JSON.",
    "ifeval:detectable_format:title": lambda _: "The response has a title in double angular brackets, like <<title>>.",
    "ifeval:combination:two_responses": lambda _: (
        "The response gives two different answers separated by six asterisks: ******."),
    "ifeval:combination:repeat_prompt": lambda _: "The response first repeats the request word for word, then answers.",
    "ifeval:startend:end_checker": lambda a: f"The response ends with the exact phrase \"{a['end_phrase']}\".",
    "ifeval:startend:quotation": lambda _: "The whole response is wrapped in double quotation marks.",
}
"""Verifier id -> the sentence for its arguments."""


def describe(verifier: str, kwargs: Mapping[str, Any]) -> str:
    return DESCRIPTIONS[verifier](kwargs)
