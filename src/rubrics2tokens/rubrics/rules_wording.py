"""Extraction rules for IFEval's instructions about the wording of a whole response: commas, letter case,
words in capitals, language and length. Same shape as `rules_keywords`: one finder per instruction id.
"""

from __future__ import annotations

import re
from typing import Any

from rubrics2tokens.rubrics.phrases import (AT_LEAST, COUNT, FLAGS, NEGATION, TIMES, WITHIN_CLAUSE, bounds, sentences,
                                            times_bounds)
from rubrics2tokens.rubrics.rules_keywords import Finder


def _limits(relations: list[tuple[str, int]], relation_key: str, count_key: str) -> list[dict[str, Any]]:
    return [{relation_key: relation, count_key: count} for relation, count in relations]


def _add_new(found: list[dict[str, Any]], limits: list[dict[str, Any]]) -> None:
    found += [limit for limit in limits if limit not in found]


# ---------------------------------------------------------------- commas

NO_COMMA = [rf"{NEGATION}[^.;?!\n,]{{0,40}}?\bcommas?\b", r"\bcommas?\s+(?:are|is)\s+(?:not|never)\s+allowed\b"]


def find_no_comma(prompt: str) -> list[dict[str, Any]]:
    """"Do not use any commas", "without commas", "refrain from the use of any commas", "Commas are not allowed"."""
    return [{}] if any(re.search(pattern, prompt, FLAGS) for pattern in NO_COMMA) else []


# ---------------------------------------------------------------- letter case

LOWERCASE = r"\blower[- ]?case(?:d|s)?\b"
NO_CAPITAL_LETTERS = rf"{NEGATION}(?:(?!\ball\b|\bwords?\b)[^.\n]){{0,30}}?\bcapital letters\b"
CAPITALS = [
    r"\ball (?:in )?(?:capital letters|caps|capitals|uppercase)\b", r"\ball[- ]caps\b(?! words?)",
    r"\bcapital letters only\b", r"\bonly (?:use )?capital letters\b", r"\bcapitali[sz]e (?:all|every|each)\b",
    r"\ball (?:the )?letters\b[^.\n]*\bcapitali[sz]ed\b", r"\bupper[- ]?case\b",
    r"\bnot a single word\b[^.\n]*\blowercase\b",
]
CAPITAL_WORDS = (r"\bwords?\b[^.\n]{0,30}?\b(?:in|with)\s+(?:all\s+)?(?:capital letters|caps|capitals)\b|"
                 r"\ball[- ]caps words\b|\bcapitali[sz]e (?:a few|some) words\b|\bcapitali[sz]ed words\b")
"""Some words in capitals, which `find_capital_words` counts, rather than a response in capitals."""


def find_all_lowercase(prompt: str) -> list[dict[str, Any]]:
    """"in all lowercase letters", "No capital letters are allowed", "without using capital letters", "not a
    single letter ... capitalized"; not "not a single word should contain lowercase letters"."""
    for sentence in sentences(prompt):
        lowercase = re.search(LOWERCASE, sentence, FLAGS)
        if lowercase and not re.search(NEGATION, sentence[:lowercase.start()], FLAGS):
            return [{}]
        if re.search(NO_CAPITAL_LETTERS, sentence, FLAGS) or re.search(
                r"\bnot a single letter\b[^.\n]*\bcapitali[sz]ed\b", sentence, FLAGS):
            return [{}]
    return []


def find_all_capitals(prompt: str) -> list[dict[str, Any]]:
    """"in all capital letters", "Answer in all caps", "capitalize every letter"; a sentence about some words in
    capitals is `find_capital_words`'s."""
    for sentence in sentences(prompt):
        if re.search(CAPITAL_WORDS, sentence, FLAGS):
            continue
        if any(re.search(pattern, sentence, FLAGS) for pattern in CAPITALS):
            return [{}]
    return []


CAPITAL_WORD_COUNTS = [
    rf"(?:{CAPITAL_WORDS}){WITHIN_CLAUSE}{{0,40}}?(?:\bfor\s+)?(?:{TIMES}|(?P<count>{COUNT}))",
    rf"(?P<count>{COUNT})\s+(?:such\s+)?(?:words?\b[^.\n]{{0,30}}?\b(?:in|with)\s+all\s+(?:capital letters|caps|"
    rf"capitals)\b|capitali[sz]ed words\b)",
]
SOME_CAPITAL_WORDS = (r"\b(?:use|include|add)\s+(?:some\s+|a few\s+)?words\s+(?:in|with)\s+all\s+"
                      r"(?:capital letters|caps)\b")


def find_capital_words(prompt: str) -> list[dict[str, Any]]:
    """"words with all capital letters should appear at least 16 times", "at least 3 words in all capital
    letters", "there should be 5 to 10 such capitalized words"; "use some words in all caps" is at least 1 where
    no lower limit is stated ("... but at most 10 times" sets only the upper one)."""
    found: list[dict[str, Any]] = []
    for pattern in CAPITAL_WORD_COUNTS:
        for match in re.finditer(pattern, prompt, FLAGS):
            relations = times_bounds(match["times"]) if match.groupdict().get("times") else bounds(match["count"])
            _add_new(found, _limits(relations, "capital_relation", "capital_frequency"))
    lower_limit_stated = any(limit["capital_relation"] == AT_LEAST for limit in found)
    if re.search(SOME_CAPITAL_WORDS, prompt, FLAGS) and not lower_limit_stated:
        _add_new(found, [{"capital_relation": AT_LEAST, "capital_frequency": 1}])
    return found


# ---------------------------------------------------------------- language

LANGUAGES = {
    "Spanish": "es", "Portuguese": "pt", "Arabic": "ar", "Hindi": "hi", "French": "fr", "Russian": "ru",
    "German": "de", "Japanese": "ja", "Italian": "it", "Bengali": "bn", "Bangla": "bn", "Ukrainian": "uk",
    "Thai": "th", "Urdu": "ur", "Tamil": "ta", "Telugu": "te", "Bulgarian": "bg", "Korean": "ko", "Polish": "pl",
    "Hebrew": "he", "Persian": "fa", "Farsi": "fa", "Vietnamese": "vi", "Nepali": "ne", "Swahili": "sw",
    "Kannada": "kn", "Marathi": "mr", "Gujarati": "gu", "Punjabi": "pa", "Malayalam": "ml", "Finnish": "fi",
}
"""Language name -> the ISO 639-1 code of IFEval's language check (its `LANGUAGE_CODES`), English aside: "in
English" comes with the case rules, and IFEval never asks for English as a language constraint."""
LANGUAGE_NAME = "(?P<language>" + "|".join(LANGUAGES) + ")"
IN_LANGUAGE = [
    rf"\b(?:in|using|use)\s+(?:only\s+|entirely\s+)?(?:the\s+)?{LANGUAGE_NAME}\b",
    rf"\bonly\s+{LANGUAGE_NAME}\b",
]
WHOLE_RESPONSE = r"\b(?:only|entire|entirely|completely|whole|all|throughout|respond|answer|reply)\b"


def find_language(prompt: str) -> list[dict[str, Any]]:
    """"Please respond using only the Kannada language", "Your entire response should be in Hindi", "Outside of
    Arabic, no other language is allowed"; the sentence must say the whole response is in it (not "explain the
    word in French")."""
    for sentence in sentences(prompt):
        named = re.search(LANGUAGE_NAME, sentence)  # case-sensitive: a language name is capitalized
        if named and re.search(r"\bno other language\b", sentence, FLAGS):
            return [{"language": LANGUAGES[named["language"]]}]
        if not re.search(WHOLE_RESPONSE, sentence, FLAGS):
            continue
        for pattern in IN_LANGUAGE:
            match = re.search(pattern, sentence)
            if match:
                return [{"language": LANGUAGES[match["language"]]}]
    return []


# ---------------------------------------------------------------- length

WORD_UNIT = r"words?\b(?![^.\n]{0,30}?\b(?:in|with)\s+all\s+(?:capital|caps)|\s+(?:be\s+)?capitali[sz]ed)"
WORD_COUNTS = [
    rf"(?P<count>{COUNT})[\s-]*{WORD_UNIT}",
    rf"\b(?P<count>\d+)\s+{WORD_UNIT}\s+(?P<after>or (?:less|fewer|more))",
    rf"\bnumber of {WORD_UNIT}{WITHIN_CLAUSE}{{0,40}}?(?P<count>{COUNT})",
]


def find_word_counts(prompt: str) -> list[dict[str, Any]]:
    """"at least 300 words", "400 or more words", "200 words or less", "a 300+ word summary", "the total number
    of words ... should be 250 or more"; a bare "a 500-word story" is no limit (IFEval rarely counts it as one)."""
    found: list[dict[str, Any]] = []
    for pattern in WORD_COUNTS:
        for match in re.finditer(pattern, prompt, FLAGS):
            phrase = f"{match['count']} {match.groupdict().get('after') or ''}"
            _add_new(found, _limits(bounds(phrase), "relation", "num_words"))
    return found


SENTENCE_COUNTS = [
    rf"(?P<count>{COUNT})\s+sentences?\b",
    rf"\bnumber of sentences\b{WITHIN_CLAUSE}{{0,40}}?(?P<count>{COUNT})",
]
PER_UNIT = r"\b(?:each|every|per)\s+\w+\s+(?:\w+\s+){0,3}$"  # "each line should contain exactly one sentence"


def find_sentence_counts(prompt: str) -> list[dict[str, Any]]:
    """"at least 30 sentences", "17 or more sentences", "20 to 25 sentences", "Keep it under 3 sentences", "The
    number of sentences ... in the range of 40 to 60"; not "each line should contain exactly one sentence"."""
    found: list[dict[str, Any]] = []
    for pattern in SENTENCE_COUNTS:
        for match in re.finditer(pattern, prompt, FLAGS):
            if not re.search(PER_UNIT, prompt[:match.start()], FLAGS):
                _add_new(found, _limits(bounds(match["count"]), "relation", "num_sentences"))
    return found


RULES: dict[str, Finder] = {
    "ifeval:punctuation:no_comma": find_no_comma,
    "ifeval:change_case:english_lowercase": find_all_lowercase,
    "ifeval:change_case:english_capital": find_all_capitals,
    "ifeval:change_case:capital_word_frequency": find_capital_words,
    "ifeval:language:response_language": find_language,
    "ifeval:length_constraints:number_words": find_word_counts,
    "ifeval:length_constraints:number_sentences": find_sentence_counts,
}
"""Verifier id -> its finder, for the instructions about a whole response's wording."""
