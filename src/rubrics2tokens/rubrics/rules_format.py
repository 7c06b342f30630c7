"""Extraction rules for the IFEval instructions about the layout of a response: title, quotes, JSON, sections,
paragraphs, bullets, highlights, placeholders, postscript, fixed answers, the ending phrase and a repeated
request. Same shape as `rules_wording`: one finder per instruction id, returning the arguments of each constraint
the prompt's wording states.
"""

from __future__ import annotations

import re
from typing import Any

from rubrics2tokens.rubrics.phrases import (COUNT, FLAGS, NUMBER, QUOTED, WITHIN_CLAUSE, bounds, quoted_strings,
                                            sentences, to_number)
from rubrics2tokens.rubrics.rules_keywords import Finder


def _anywhere(*patterns: str) -> Finder:
    """A finder for an instruction without arguments, stated by any of ``patterns``."""
    def find(prompt: str) -> list[dict[str, Any]]:
        return [{}] if any(re.search(pattern, prompt, FLAGS) for pattern in patterns) else []
    find.__doc__ = f"One constraint when the prompt matches any of {patterns}."
    return find


find_title = _anywhere(r"double angular brackets", r"<<[^<>\n]*>>")
find_two_responses = _anywhere(r"(?<!\*)\*{6}(?!\*)", r"\b(?:6|six) asterisk")
find_constrained_response = _anywhere(r"my answer is (?:yes|no|maybe)")
find_json = _anywhere(r"\b(?:in|as|into|using)\s+(?:a\s+)?(?:valid\s+)?JSON\b", r"\bJSON\s+(?:format|block|object)",
                      r"\bwrap\w*\b[^.\n]*\bJSON\b")

WHOLE = r"\b(?:entire|whole|all|response|answer|reply|output|email)\b"
QUOTATION = [r"\b(?:wrap|put|enclose|surround|place)\w*\b[^.\n]*\bdouble quot", r"\bdouble quot[^.\n]*\baround\b"]


def find_quotation(prompt: str) -> list[dict[str, Any]]:
    """"Wrap your entire response with double quotation marks", "Put double quotes around your entire response"."""
    for sentence in sentences(prompt):
        if re.search(WHOLE, sentence, FLAGS) and any(re.search(pattern, sentence, FLAGS) for pattern in QUOTATION):
            return [{}]
    return []


def find_postscript(prompt: str) -> list[dict[str, Any]]:
    """"add a postscript starting with P.P.S" (marker ``P.P.S``), "a postscript ... starts with P.S."
    (``P.S.``): IFEval's checker knows these two markers by their exact spelling."""
    if re.search(r"\bP\.\s?P\.\s?S\b", prompt):
        return [{"postscript_marker": "P.P.S"}]
    if re.search(r"\bP\.\s?S\b", prompt):
        return [{"postscript_marker": "P.S."}]
    return []


def _lower_limit(phrase: str) -> int | None:
    """N of a count phrase that a checker counting "at least N" can hold: "at least 3", "exactly 3", "three"."""
    if re.fullmatch(NUMBER, phrase.strip(), FLAGS):
        return to_number(phrase)
    return next((count for relation, count in bounds(phrase) if relation == "at least"), None)


PLACEHOLDERS = rf"(?P<count>{COUNT}|{NUMBER})\s+(?:\w+\s+)?placeholders?\b"


def find_placeholders(prompt: str) -> list[dict[str, Any]]:
    """"at least 12 placeholders represented by square brackets", "at least one placeholder, such as [address]"."""
    for match in re.finditer(PLACEHOLDERS, prompt, FLAGS):
        count = _lower_limit(match["count"])
        if count is not None:
            return [{"num_placeholders": count}]
    return []


BULLETS = [rf"(?P<count>{NUMBER})\s+(?:(?:very\s+)?short\s+|markdown\s+)?bullet(?:\s*points?|s)?\b",
           rf"\bexactly\s+(?P<count>{NUMBER})\s[^.\n]{{0,60}}\bbullet"]
INEXACT = r"\b(?:at least|at most|more than|less than|fewer than|up to)\s+$"


def find_bullets(prompt: str) -> list[dict[str, Any]]:
    """"exactly 3 bullet points in markdown format", "in the format of 10 bullet points", "Name exactly 3 names
    ... using markdown bullet points" (the checker counts them exactly: "at least 3 bullet points" is no
    constraint it can hold)."""
    for pattern in BULLETS:
        for match in re.finditer(pattern, prompt, FLAGS):
            if not re.search(INEXACT, prompt[:match.start()], FLAGS):
                return [{"num_bullets": to_number(match["count"])}]
    return []


HIGHLIGHTING = r"\b(?:highlight|italic|bold)"
HIGHLIGHTED = (rf"(?P<count>{COUNT}|{NUMBER})\s+(?:\w+\s+){{0,3}}?"
               rf"(?:sections?|parts?|phrases?|keywords?|words?|names?)\b")
MARKDOWN_EXAMPLE = r"\*[^*\n]*\w[^*\n]*\*"  # *highlighted section*


def find_highlights(prompt: str) -> list[dict[str, Any]]:
    """"Highlight at least 3 sections with markdown", "Italicize at least 10 text parts", "Italicize 5 of your
    favorite names", "include two italic text sections"; without a count, "highlight some key parts ... like
    *highlighted text*" asks for at least one (and "... twice" for two)."""
    asked = False
    for sentence in sentences(prompt):
        if not re.search(HIGHLIGHTING, sentence, FLAGS):
            continue
        asked = True
        for match in re.finditer(HIGHLIGHTED, sentence, FLAGS):
            count = _lower_limit(match["count"])
            if count is not None:
                return [{"num_highlights": count}]
        if re.search(r"\btwice\b", sentence, FLAGS):
            return [{"num_highlights": 2}]
    return [{"num_highlights": 1}] if asked and re.search(MARKDOWN_EXAMPLE, prompt) else []


SECTION_MARK = r"\b(?P<splitter>[A-Z][A-Za-z]*)\s+X\b"  # "SECTION X", "Day X": the word is case-sensitive
# "Section 1 and Section 2", on one line
NUMBERED_MARKS = r"\b(?P<splitter>[A-Z][A-Za-z]*)\s+1\b[^\n]{0,30}?\b(?P=splitter)\s+(?P<last>\d+)\b"
SECTION_COUNT = rf"(?P<count>{NUMBER})[\s-]+(?:\w+\s+)?(?:sections?|paragraphs?|parts?|chapters?|days?)\b"


def find_sections(prompt: str) -> list[dict[str, Any]]:
    """"4 sections marked with SECTION X", "two sections (Section 1 and Section 2)", "Mark the beginning of each
    advertisement with Audience 1 and Audience 2": the marker word as written, and how many sections."""
    marked = re.search(SECTION_MARK, prompt)
    numbered = re.search(NUMBERED_MARKS, prompt)
    if marked is None and numbered is None:
        return []
    splitter = (marked or numbered)["splitter"]
    counted = re.search(SECTION_COUNT, prompt, FLAGS)
    if counted is not None:
        return [{"section_spliter": splitter, "num_sections": to_number(counted["count"])}]
    if numbered is not None:
        return [{"section_spliter": splitter, "num_sections": int(numbered["last"])}]
    return []


DIVIDER = r"(?<!\*)\*\*\*(?!\*)|markdown divider|\b(?:3|three) (?:asterisks|asterisk symbols|\"\*\" symbols)"
PARAGRAPH_COUNT = rf"(?P<count>{NUMBER})\s+(?:paragraphs?|stanzas?|sections?|parts?|steps?|points?|advice)\b"


def find_divided_paragraphs(prompt: str) -> list[dict[str, Any]]:
    """Paragraphs split by the markdown divider ***: "exactly 4 paragraphs. Separate the paragraphs with ***",
    "just the first 5 steps ... Separated them with "***"";
    without a count, the parts of an example split by *** lines, or two for "separate X and Y by ***"."""
    if not re.search(DIVIDER, prompt, FLAGS):
        return []
    counted = re.search(PARAGRAPH_COUNT, prompt, FLAGS)
    if counted is not None:
        return [{"num_paragraphs": to_number(counted["count"])}]
    divider_lines = re.findall(r"^\s*\*\*\*\s*$", prompt, re.MULTILINE)
    if divider_lines:
        return [{"num_paragraphs": len(divider_lines) + 1}]
    if re.search(r"\bseparate\b[^.\n]*\band\b", prompt, FLAGS):
        return [{"num_paragraphs": 2}]
    return []


ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
            "ninth": 9, "tenth": 10, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5}
ORDINAL = "(?P<nth>" + "|".join([*ORDINALS, "last"]) + ")"
FIRST_WORD = rf"(?:the\s+)?(?:word\s+)?{QUOTED}?(?P<word>\w+){QUOTED}?"
NTH_PARAGRAPH = [
    rf"\b{ORDINAL}\s+paragraph\s+(?:must|should|has to|needs to|will)?\s*(?:start|begin)s?\s+with\s+{FIRST_WORD}",
    rf"\b(?:start|begin)\s+(?:the\s+)?{ORDINAL}\s+paragraph\s+with\s+{FIRST_WORD}",
    rf"\bparagraph\s+(?P<number>\d+)\s+(?:must|should|has to|needs to|will)?\s*(?:start|begin)s?\s+with\s+{FIRST_WORD}",
    rf"\b(?:start|begin)\s+paragraph\s+(?P<number>\d+)\s+with\s+{FIRST_WORD}",
]
PARAGRAPHS = rf"(?P<count>{NUMBER})\s+paragraphs?\b"


def find_nth_paragraph_word(prompt: str) -> list[dict[str, Any]]:
    """"exactly 3 paragraphs ... The third paragraph must start with the word bonding", "Start Paragraph 2 with
    the word Jasper" (paragraphs separated by blank lines); needs the paragraph count too."""
    counted = re.search(PARAGRAPHS, prompt, FLAGS)
    if counted is None:
        return []
    for pattern in NTH_PARAGRAPH:
        match = re.search(pattern, prompt, FLAGS)
        if match:
            count = to_number(counted["count"])
            if "number" in match.groupdict():
                nth = int(match["number"])
            else:
                nth = count if match["nth"].lower() == "last" else ORDINALS[match["nth"].lower()]
            return [{"num_paragraphs": count, "nth_paragraph": nth,
                     "first_word": match["word"].lower()}]
    return []


ENDING = r"(?<!the )\b(?:end|ends|finish|finishes|conclude|concludes)\b"  # a verb, not "at the end"
LAST_PART = r"\b(?:very\s+)?(?:last|final)\s+(?:sentence|line|words?)\b|\bvery end\b"
END_PHRASES = [
    # quoted: "Finish your response with this exact phrase: "Is there anything else I can help with?"", "The
    # very last sentence of your response should be "..."", "The very end of your response should read "...""
    rf"(?:{ENDING}|{LAST_PART}){WITHIN_CLAUSE}{{0,60}}?\b(?:with|be|read)\b[^\"“”\n]{{0,40}}?"
    rf"(?P<quoted>{QUOTED}.+)",
    # unquoted, to the end of its sentence: "End with the exact phrase Is there anything else I can help with?",
    # "end with: That is all you need!", "Finish the song with:\n\nPeace!"
    rf"{ENDING}{WITHIN_CLAUSE}{{0,60}}?\bwith(?:\s+(?:the|this)\s+(?:exact\s+)?(?:phrase|question|sentence|words?))?"
    rf"\s*:?\s+(?P<plain>[^\"“\n]+?[.?!])(?=\s|$)",
    r"\bshould read (?:exactly )?(?:like)?:?\s+(?P<plain>[^\"“\n]+?[.?!])(?=\s|$)",
]


def find_end_phrase(prompt: str) -> list[dict[str, Any]]:
    """The exact phrase a response must end with: the quoted one after "end/finish ... with" or "the last sentence
    ... should be", else the words to the end of the sentence after "end with the exact phrase" or "end with:"."""
    for pattern in END_PHRASES:
        for match in re.finditer(pattern, prompt, FLAGS):
            phrases = quoted_strings(match["quoted"]) if match.groupdict().get("quoted") else [match["plain"]]
            # an opening quote without its closing one quotes nothing; a lone "*" is a markdown mark, no phrase
            if phrases and re.search(r"\w", phrases[0]) and not re.match(r"\s*(?:a|an|the)\s", phrases[0]):
                return [{"end_phrase": phrases[0].strip()}]
    return []


REPEAT = re.compile(r"\brepl?eat(?:s|ed|ing)?\b", FLAGS)


def find_repeat_request(prompt: str) -> list[dict[str, Any]]:
    """"First repeat the request above word for word without change, then give your answer": the request to
    repeat is the prompt without the paragraph (or else the lines) asking for the repetition, which come first or
    last."""
    if not re.search(r"\brepl?eat\b[^.\n]*\b(?:request|sentence|line|question|prompt|it)\b", prompt, FLAGS):
        return []
    paragraphs = re.split(r"\n\s*\n", prompt.strip())
    if len(paragraphs) > 1 and REPEAT.search(paragraphs[-1]):
        request = "\n\n".join(paragraphs[:-1])
    elif len(paragraphs) > 1 and REPEAT.search(paragraphs[0]):
        request = "\n\n".join(paragraphs[1:])
    else:
        request = _without_repeat_lines(prompt.strip().splitlines())
    request = request.strip()
    return [{"prompt_to_repeat": request}] if request else []


def _without_repeat_lines(lines: list[str]) -> str:
    """The lines left when those asking for the repetition are taken off the end, or else off the start."""
    if REPEAT.search(lines[-1]):
        while lines and (REPEAT.search(lines[-1]) or not lines[-1].strip()):
            lines.pop()
    elif REPEAT.search(lines[0]):
        while lines and (REPEAT.search(lines[0]) or not lines[0].strip()):
            lines.pop(0)
    else:
        return ""
    return "\n".join(lines)


RULES: dict[str, Finder] = {
    "ifeval:detectable_format:title": find_title,
    "ifeval:startend:quotation": find_quotation,
    "ifeval:detectable_format:json_format": find_json,
    "ifeval:combination:two_responses": find_two_responses,
    "ifeval:detectable_format:constrained_response": find_constrained_response,
    "ifeval:detectable_content:postscript": find_postscript,
    "ifeval:detectable_content:number_placeholders": find_placeholders,
    "ifeval:detectable_format:number_bullet_lists": find_bullets,
    "ifeval:detectable_format:number_highlighted_sections": find_highlights,
    "ifeval:detectable_format:multiple_sections": find_sections,
    "ifeval:length_constraints:number_paragraphs": find_divided_paragraphs,
    "ifeval:length_constraints:nth_paragraph_first_word": find_nth_paragraph_word,
    "ifeval:startend:end_checker": find_end_phrase,
    "ifeval:combination:repeat_prompt": find_repeat_request,
}
"""Verifier id -> its finder, for the instructions about a response's layout."""
