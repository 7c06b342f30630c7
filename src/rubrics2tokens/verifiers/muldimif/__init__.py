r"""MulDimIF verifiers: each checker reads the natural-language constraint description and judges the response.

MulDimIF (Ye et al. 2025, github.com/Junjie-Ye/MulDimIF) ships no package; its evaluation script
(``Code/evaluation/evaluation.py``) sends every constraint, keyed ``"<category>_<subcategory>"``, to one of
twelve checker classes (``Code/evaluation/scripts/<Class>.py``) that parse the description with regular
expressions. The checkers here re-implement those decisions in our own code: the same phrasings, number words,
counting units and thresholds, including the official quirks that change verdicts (which are pointed out where
they occur). The official source was read for every checker; the comment on each says which class it follows.

Raw keys of the test set -> verifier (``muldimif:<checker>``) -> reporting category (the official
``constraint_mapping``, which folds the raw keys into 12 categories):

    ==========================================  ===========================  ====================
    raw key                                      verifier id                  category
    ==========================================  ===========================  ====================
    Content_Keywords, Content_Keywords: Must     muldimif:content_keywords    Content_Keywords
    include
    Content_Punctuation, Content_Punctuation:    muldimif:content_punctuation Content_Punctuation
    Ending punctuation, Punctuation_Ending
    punctuation
    Content_Identifiers                          muldimif:content_identifiers Content_Identifiers
    Format_Json, Json_Object nesting levels      muldimif:format_json         Format_Json
    Format_Markdown, Format_Markdown: Heading    muldimif:format_markdown     Format_Markdown
    levels, Markdown_Heading levels,
    Markdown_Block quotes
    Format_Table, Format_Table: Row limit,       muldimif:format_table        Format_Table
    Format_Table: Column limit, Table_Row
    limit, Table_Column limit
    Table_Table                                  muldimif:format_others       Format_Table
    Format_XML, XML_Number of attributes         muldimif:format_others       Format_XML
    Format_Text                                  muldimif:format_others       Content_Identifiers
    Format_Blurb                                 muldimif:format_others       Length_Words
    Language_English, Language_English:          muldimif:language_english    Language_English
    Capitalized, Language_English: All
    Uppercase
    Language_Chinese, Language_Chinese:          muldimif:language_chinese    Language_Chinese
    Traditional
    Length_Words, Length_Words: At most /        muldimif:length_words        Length_Words
    At least / Range
    Length_Sentences, Length_Sentences: At       muldimif:length_sentences    Length_Sentences
    least / At most
    Length_Paragraphs, Length_Paragraphs: At     muldimif:length_paragraphs   Length_Paragraphs
    most
    ==========================================  ===========================  ====================

A checker is called as ``check(response, description=...)``. Where the official parser finds nothing to check
in a description, it returns a constant (pass for some classes, fail for others) whatever the response; we
return `Verdict.unknown()` instead and log it, so a description we cannot read is never a silent verdict
(`UNREADABLE_GIVES_OFFICIAL_VERDICT` switches to the official constants).

Spans (method.md §5) are given where they are cheap and honest: keyword occurrences, the sentences or words past
an upper limit, the stop for a lower limit not reached, the offending lowercase words or letters of a case rule,
the last character of an ending punctuation rule (unless a ban on it held), the whole response for a failed
whole-response property, and nothing (``()``) for a met limit or a global property that held; else ``None``.

The checkers live in one module per official category family: `content`, `formats` (XML, JSON, Markdown,
others), `tables`, `language` and `length`, on the shared pieces of `common`. A checker module reports a
description it cannot read as an `Unreadable`; this package settles it (`settle_unreadable`), routes raw keys
to checkers and registers them, and re-exports the modules' names.
"""

from __future__ import annotations

import functools
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from rubrics2tokens.verifiers.base import Verdict
from rubrics2tokens.verifiers.muldimif import content, formats, language, length, tables
from rubrics2tokens.verifiers.registry import VERIFIERS, register_verifier

# every name of the checker modules stays importable from here, as when MulDimIF was one module
# (`_bounds` included: tests build satisfying responses with it)
from rubrics2tokens.verifiers.muldimif.common import (BULLET_START, CHINESE_DIGITS, CJK_CHARACTER, JSON_START,
                                                      NUMBERED_START, ONE_TO_TEN, TABLE_LINE, TENS_AND_TEENS,
                                                      UP_TO_HUNDRED, WHITESPACE_TOKEN, Unreadable, alternation,
                                                      bullet_items, compound_number, count_limit_verdict,
                                                      numbered_items, response_format, simple_number,
                                                      whitespace_tokens, within)
from rubrics2tokens.verifiers.muldimif.content import (EACH_ELEMENT, KEYWORD_COUNT_WORDS, KEYWORD_IN_DOUBLED_QUOTES,
                                                       KEYWORD_IN_QUOTES, NEGATIVE_PUNCTUATION,
                                                       PUNCTUATION_FOLLOWED_BY, PUNCTUATION_NAMES, KeywordRule,
                                                       judge_keyword_rule, keyword_pattern, parse_keyword_rule)
from rubrics2tokens.verifiers.muldimif.formats import (BLOCK_QUOTE_USE, EXACT_NESTING, FORMAT_OTHER_RULES,
                                                       GENERIC_HEADINGS, JSON_LEVEL, JSON_LEVEL_WORDS, LEVEL_NUMBER,
                                                       MARKDOWN_HEADING, MAX_NESTING, MIN_NESTING, NUMBER_ONE_TO_TEN,
                                                       VERBS_OF_USE, XML_TAG, Heading, heading_rule_holds, json_depth,
                                                       markdown_headings, parse_heading_rules)
from rubrics2tokens.verifiers.muldimif.tables import (COLUMN_LIMITS, COLUMN_NAME_PATTERNS, CONTENT_PATTERNS,
                                                      OPTIONAL_TABLE, ROW_LIMITS, TABLE_NUMBER, TABLE_NUMBER_WORDS,
                                                      TableRules, parse_table_rules, table_holds)
from rubrics2tokens.verifiers.muldimif.language import (CHINESE_RULES, SIMPLIFIED_PHRASING, english_case_rule,
                                                        english_checked_text)
from rubrics2tokens.verifiers.muldimif.length import (CHINESE_SENTENCE, CJK_FOR_COUNTING, EACH_WORD_LIMITS,
                                                      MAX_SENTENCES_IN_WORDS, MAX_WORDS, MAX_WORDS_CHINESE,
                                                      MIN_SENTENCES_IN_WORDS, MIN_WORDS, PARAGRAPH_LIMITS,
                                                      PARAGRAPH_NUMBER_WORDS, PN, SENTENCE, SENTENCE_LIMITS,
                                                      SENTENCE_NUMBER_WORDS, SN, TABLE_SEPARATOR,
                                                      WORD_NUMBER_CHARACTERS, WORD_RANGES, WordLimits, _bounds,
                                                      count_words, find_blank_line_paragraphs, find_sentences,
                                                      parse_word_limits)

logger = logging.getLogger(__name__)

MULDIMIF_PREFIX = "muldimif:"


@dataclass(frozen=True)
class ConstraintKind:
    """Where a raw ``"<category>_<subcategory>"`` key goes: its checker and the category it is reported under."""

    checker: str
    category: str


RAW_KEYS: dict[str, ConstraintKind] = {
    "Content_Keywords": ConstraintKind("content_keywords", "Content_Keywords"),
    "Content_Keywords: Must include": ConstraintKind("content_keywords", "Content_Keywords"),
    "Content_Punctuation": ConstraintKind("content_punctuation", "Content_Punctuation"),
    "Content_Punctuation: Ending punctuation": ConstraintKind("content_punctuation", "Content_Punctuation"),
    "Punctuation_Ending punctuation": ConstraintKind("content_punctuation", "Content_Punctuation"),
    "Content_Identifiers": ConstraintKind("content_identifiers", "Content_Identifiers"),
    "Format_Json": ConstraintKind("format_json", "Format_Json"),
    "Json_Object nesting levels": ConstraintKind("format_json", "Format_Json"),
    "Format_Markdown": ConstraintKind("format_markdown", "Format_Markdown"),
    "Format_Markdown: Heading levels": ConstraintKind("format_markdown", "Format_Markdown"),
    "Markdown_Heading levels": ConstraintKind("format_markdown", "Format_Markdown"),
    "Markdown_Block quotes": ConstraintKind("format_markdown", "Format_Markdown"),
    "Format_Table": ConstraintKind("format_table", "Format_Table"),
    "Format_Table: Row limit": ConstraintKind("format_table", "Format_Table"),
    "Format_Table: Column limit": ConstraintKind("format_table", "Format_Table"),
    "Table_Row limit": ConstraintKind("format_table", "Format_Table"),
    "Table_Column limit": ConstraintKind("format_table", "Format_Table"),
    "Table_Table": ConstraintKind("format_others", "Format_Table"),
    "Format_XML": ConstraintKind("format_others", "Format_XML"),
    "XML_Number of attributes": ConstraintKind("format_others", "Format_XML"),
    "Format_Text": ConstraintKind("format_others", "Content_Identifiers"),
    "Format_Blurb": ConstraintKind("format_others", "Length_Words"),
    "Language_English": ConstraintKind("language_english", "Language_English"),
    "Language_English: Capitalized": ConstraintKind("language_english", "Language_English"),
    "Language_English: All Uppercase": ConstraintKind("language_english", "Language_English"),
    "Language_Chinese": ConstraintKind("language_chinese", "Language_Chinese"),
    "Language_Chinese: Traditional": ConstraintKind("language_chinese", "Language_Chinese"),
    "Length_Words": ConstraintKind("length_words", "Length_Words"),
    "Length_Words: At most": ConstraintKind("length_words", "Length_Words"),
    "Length_Words: At least": ConstraintKind("length_words", "Length_Words"),
    "Length_Words: Range": ConstraintKind("length_words", "Length_Words"),
    "Length_Sentences": ConstraintKind("length_sentences", "Length_Sentences"),
    "Length_Sentences: At least": ConstraintKind("length_sentences", "Length_Sentences"),
    "Length_Sentences: At most": ConstraintKind("length_sentences", "Length_Sentences"),
    "Length_Paragraphs": ConstraintKind("length_paragraphs", "Length_Paragraphs"),
    "Length_Paragraphs: At most": ConstraintKind("length_paragraphs", "Length_Paragraphs"),
}
"""Every raw key of the MulDimIF test set (4,180 constraints), as the official evaluation routes it."""


def constraint_kind(category: str, subcategory: str) -> ConstraintKind:
    """The kind of a test-set constraint ``[category, subcategory, description]``; an unknown key raises KeyError."""
    return RAW_KEYS[f"{category}_{subcategory}"]


# ---------------------------------------------------------------- descriptions the checkers cannot read

UNREADABLE_GIVES_OFFICIAL_VERDICT = False
"""What a description that states nothing checkable gets. False: `Verdict.unknown()`. True: the constant the
official checker returns for it whatever the response (121 of the test set's 4,180 constraints, 2.9%; each
`Unreadable` a checker returns names that constant), which is what agreement with the official verdicts needs."""


@contextmanager
def official_constants_for_unreadable() -> Iterator[None]:
    """Within this block, unreadable descriptions get the official constant: what benchmark evaluation needs
    to agree with the official scores. Training keeps unknown, so such a rubric never pushes the policy."""
    global UNREADABLE_GIVES_OFFICIAL_VERDICT
    previous, UNREADABLE_GIVES_OFFICIAL_VERDICT = UNREADABLE_GIVES_OFFICIAL_VERDICT, True
    try:
        yield
    finally:
        UNREADABLE_GIVES_OFFICIAL_VERDICT = previous


def settle_unreadable(unreadable: Unreadable) -> Verdict:
    """The verdict of a description a checker cannot read: unknown (logged as a warning), or inside
    `official_constants_for_unreadable` the official constant where there is one."""
    checker, description, official = unreadable.checker, unreadable.description, unreadable.official
    if UNREADABLE_GIVES_OFFICIAL_VERDICT and official is not None:
        logger.info("muldimif:%s finds nothing to check in %r; giving the official constant %s",
                    checker, description, official)
        return Verdict(passed=official, spans=None)
    logger.warning("muldimif:%s cannot read the constraint %r (the official checker gives %s for any response);"
                   " verdict is unknown", checker, description, official)
    return Verdict.unknown()


# ---------------------------------------------------------------- registration

def _settling(checker: Callable[..., Verdict | Unreadable]) -> Callable[..., Verdict]:
    """The checker with an `Unreadable` result settled into a verdict (`settle_unreadable`)."""

    @functools.wraps(checker)
    def check(response: str, *, description: str) -> Verdict:
        result = checker(response, description=description)
        return settle_unreadable(result) if isinstance(result, Unreadable) else result

    return check


CHECKERS: dict[str, Callable[..., Verdict]] = {name: _settling(checker) for name, checker in {
    "content_keywords": content.check_content_keywords,
    "content_punctuation": content.check_content_punctuation,
    "content_identifiers": content.check_content_identifiers,
    "format_json": formats.check_format_json,
    "format_markdown": formats.check_format_markdown,
    "format_table": tables.check_format_table,
    "format_others": formats.check_format_others,
    "language_english": language.check_language_english,
    "language_chinese": language.check_language_chinese,
    "length_words": length.check_length_words,
    "length_sentences": length.check_length_sentences,
    "length_paragraphs": length.check_length_paragraphs,
}.items()}
"""Checker name -> checker; registered as ``muldimif:<name>``."""

# the public checkers, settled, under the names they had before the families became modules
check_content_keywords = CHECKERS["content_keywords"]
check_content_punctuation = CHECKERS["content_punctuation"]
check_content_identifiers = CHECKERS["content_identifiers"]
check_format_json = CHECKERS["format_json"]
check_format_markdown = CHECKERS["format_markdown"]
check_format_table = CHECKERS["format_table"]
check_format_others = CHECKERS["format_others"]
check_language_english = CHECKERS["language_english"]
check_language_chinese = CHECKERS["language_chinese"]
check_length_words = CHECKERS["length_words"]
check_length_sentences = CHECKERS["length_sentences"]
check_length_paragraphs = CHECKERS["length_paragraphs"]


def register_muldimif_verifiers() -> list[str]:
    """Register every MulDimIF checker (once; later calls do nothing) and return their ids."""
    registered = []
    for name, checker in CHECKERS.items():
        verifier_id = MULDIMIF_PREFIX + name
        if verifier_id not in VERIFIERS:
            register_verifier(verifier_id, checker)
        registered.append(verifier_id)
    return registered
