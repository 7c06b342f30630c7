"""MulDimIF language constraints: Language_English (case rules) and Language_Chinese (simplified or traditional
script), as the official ``Language_English.py`` and ``Language_Chinese.py`` decide them."""

from __future__ import annotations

import logging
import re

from rubrics2tokens.verifiers import rules
from rubrics2tokens.verifiers.base import Verdict
from rubrics2tokens.verifiers.muldimif.common import Unreadable, whitespace_tokens

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------- Language_English (official Language_English.py)


def english_case_rule(description: str) -> str | None:
    """'all_uppercase', 'title_case', 'all_lowercase' or 'short_blurb', tested in that order on the lowercased text."""
    text = description.strip().lower()
    if (re.search(r"\ball[- ]?uppercase\b", text) or "in all uppercase letters" in text
            or "in capitalized form" in text or text == "all uppercase"):
        return "all_uppercase"
    if ("capitalize the first letter of each word" in text or "capitalized letters for each word" in text
            or "have each word capitalized" in text or "each word must be capitalized" in text or "each word in" in text
            or re.search(r"\bcapitalized\b", text) or ("each" in text and ("a capital letter" in text
                                                                          or "capital" in text))):
        return "title_case"
    if "must be in lowercase" in text or "all lowercase" in text or re.search(r"\blowercase\b", text):
        return "all_lowercase"
    if "written as a short blurb" in text:
        return "short_blurb"
    return None


def english_checked_text(response: str, description: str) -> str:
    """The part of the response a case rule applies to: table cells, JSON keys or values, or heading texts when
    the description names them; the whole response otherwise (or when that part cannot be found)."""
    text = description.strip().lower()
    if "headings" in text and "table" in text:
        return _table_cells(response, "all") or _heading_texts(response)
    if "table" in text:
        return _table_cells(response, "headers" if "header" in text else "entries" if "entries" in text else "all")
    if "json" in text:
        pattern = r'"([^"]+)"\s*:' if "keys" in text else r':\s*"([^"]+)"' if "values" in text else None
        if pattern and "{" in response and "}" in response:
            return " ".join(re.findall(pattern, response)) or response
        return response
    if "heading" in text:
        return _heading_texts(response)
    return response


def _table_cells(response: str, part: str) -> str:
    """Cells joined by spaces: of the first non-blank line ("headers"), the others ("entries"), or all lines.
    Any response without "|" is returned whole, as the official extraction does."""
    if "|" not in response:
        return response
    lines = [line.strip() for line in response.split("\n") if line.strip()]
    chosen = lines[:1] if part == "headers" else lines[1:] if part == "entries" else lines
    if part == "entries" and len(lines) <= 1:
        return response
    return " ".join(cell.strip() for line in chosen for cell in line.split("|") if cell.strip())


def _heading_texts(response: str) -> str:
    headings = re.findall(r"^#+\s*(.+)$", response, re.MULTILINE)
    return " ".join(headings) if headings else response


def check_language_english(response: str, *, description: str) -> Verdict | Unreadable:
    """All uppercase, every word capitalized, or all lowercase (official Language_English).

    "Capitalized" means no whitespace-separated word starts with a letter a-z (digits and symbols pass).
    Spans on the whole response: fail, the offending words or letters; pass, nothing (a global property).
    """
    if not response.strip():
        return Verdict(passed=False, spans=())
    rule = english_case_rule(description)
    if rule is None:
        return Unreadable("language_english", description, official=False)
    text = english_checked_text(response, description)
    if rule == "all_uppercase":
        passed = text == text.upper()
        offending = [(i, i + 1) for i, char in enumerate(response) if char != char.upper()]
    elif rule == "title_case":
        offending = [span for span in whitespace_tokens(text) if "a" <= text[span[0]] <= "z"]
        passed = not offending
    elif rule == "all_lowercase":
        passed = text == text.lower()
        offending = [(i, i + 1) for i, char in enumerate(response) if char != char.lower()]
    else:
        return Verdict(passed=True, spans=())  # the official blurb check always passes: nothing to credit
    if text is not response:
        return Verdict(passed=passed, spans=None)  # the checked text is a rebuilt extract, not response positions
    return Verdict(passed=passed, spans=() if passed else tuple(offending))  # case: a global property


# ---------------------------------------------------------------- Language_Chinese (official Language_Chinese.py)

SIMPLIFIED_PHRASING = (r"(?:must be|must use|must write|must be presented|answer must be|essential|is|should be"
                       r"|必须|请|需要)"
                       r" {0,1}(?:in|provided in|written in|to use|conducted in|用|使用|提供|书写|翻译为|将文本翻译为)"
                       r" {0,1}(?:Simplified Chinese|简体中文)")
CHINESE_RULES = [
    (r'Must include the phrase "{1,2}(.+?)"{1,2}', "phrase"),
    (r'Must write the name "Shen Lim" in Simplified Chinese', "shen_lim"),
    (r"Must (?:use|convert into|be converted into) Traditional Chinese characters", "entirely_traditional"),
    (r"include .*?Traditional Chinese characters", "has_traditional"),
    (r"use .*?Traditional Chinese characters", "has_traditional"),
    (r"使用繁體中文", "has_traditional"),
    (r"(The answer must ){0,1}include some content in Simplified Chinese", "has_simplified"),
    (r"Use Simplified Chinese characters", "has_simplified"),
    (SIMPLIFIED_PHRASING, "has_simplified"),
    (r"用中文简体描述", "has_simplified"),
    (r"Names must be in Simplified Chinese", "has_simplified"),
    (r"Must translate the text into Simplified Chinese", "entirely_simplified"),
    (r"Simplified", "has_simplified"),
]
"""(pattern, test) in the official order; the first pattern found (ignoring case) decides."""


def _chinese_script_test(kind: str, response: str, phrase: str | None) -> bool:
    """The official tests, built on zhconv's conversion tables: a character is simplified-only when converting
    it to Taiwan Traditional changes it, traditional-only when converting it to mainland Simplified does."""
    if kind == "phrase":
        return phrase in response
    if kind == "shen_lim":
        return "沈林" in response
    from zhconv import convert  # optional dependency; its absence makes the verdict unknown

    if kind == "has_simplified":
        return any(convert(char, "zh-tw") != char for char in response)
    if kind == "has_traditional":
        return any(convert(char, "zh-cn") != char for char in response)
    if re.search(r"[A-Za-z]", response):
        return False
    return convert(response, "zh-tw" if kind == "entirely_traditional" else "zh-cn") == response


def check_language_chinese(response: str, *, description: str) -> Verdict | Unreadable:
    """Simplified or Traditional Chinese characters present (or used throughout), as official Language_Chinese.

    Needs the `zhconv` package (as the official code does); without it the verdict is unknown. Spans (a
    whole-response property): fail, the whole response; pass, nothing.
    """
    for pattern, kind in CHINESE_RULES:
        if match := re.search(pattern, description, re.IGNORECASE):
            try:
                passed = _chinese_script_test(kind, response, match.group(1) if kind == "phrase" else None)
            except ImportError:
                logger.warning("muldimif:language_chinese needs the zhconv package; verdict is unknown")
                return Verdict.unknown()
            # the script of the whole text: a fail blames all of it, a pass credits nothing
            return Verdict(passed=passed, spans=() if passed else rules.whole_response(response))
    return Unreadable("language_chinese", description, official=False)
