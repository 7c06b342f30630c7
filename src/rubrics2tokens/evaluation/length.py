"""Which IFEval instructions a response's length cannot pass or fail by itself: a reading of transfer results that
length does not explain.

A policy trained with RL often changes its answer length most of all (docs/study.md: GRPO-CSR went from 1097 to
277 characters on IFEval, RTT to 705), and most IFEval rules are bound to length by construction: they count
something against a limit (words, sentences, paragraphs, sections, bullets, highlights, placeholders, keyword or
letter or capital-word occurrences), or require or forbid something that ordinary text contains by chance (a
keyword, a comma, a capital letter), which a longer answer meets or breaks more easily. The rules below ask for a
deliberate marker that ordinary text does not produce by chance: the request repeated first, two answers split by
******, a P.S., one of the given options, JSON, a <<title>>, a language, an ending phrase, wrapping quotes. A
longer answer is no likelier to contain one by chance, and a shorter one no likelier to avoid breaking it. The
list is fixed by these rules (read in IFEval's checkers), not by any result.

One way length still reaches them: an answer cut at the token limit loses its end (the ending phrase, the closing
quote or brace, a P.S., the second answer), and the language check passes an answer too short to detect. Read the
metric next to the answers' lengths.
"""

from __future__ import annotations

LENGTH_FREE_INSTRUCTIONS = frozenset({
    "combination:repeat_prompt",           # starts with the request, word for word
    "combination:two_responses",           # two answers separated by ******
    "detectable_content:postscript",       # a P.S. (or P.P.S.) is there
    "detectable_format:constrained_response",  # one of the given options
    "detectable_format:json_format",       # the whole answer is JSON
    "detectable_format:title",             # a title in <<double angular brackets>>
    "language:response_language",          # written in the asked language
    "startend:end_checker",                # ends with the given phrase
    "startend:quotation",                  # wrapped in double quotes
})


def is_length_free(instruction_id: str) -> bool:
    """Whether an IFEval instruction id (``group:name``) is one whose pass does not depend on answer length."""
    return instruction_id in LENGTH_FREE_INSTRUCTIONS
