"""IFEval and IFBench verifiers: the checkers of the `if-verifiable` package, with spans where cheap.

Every instruction id of IFEval is registered as ``ifeval:<instruction_id>`` (``ifeval:punctuation:no_comma``)
and every one of IFBench as ``ifbench:<instruction_id>`` (``ifbench:count:word_count_range``). A verifier is
called as ``verifier(response, **kwargs)`` with the instruction's kwargs as the benchmark data gives them;
``None`` values are dropped (IFBench rows carry every key, mostly null) and ``0`` is kept. Prompt-dependent
instructions get the prompt through their kwargs, as the data provides it (``prompt_to_repeat``).

The verdict is exactly the official strict verdict: an empty (blank) response fails every instruction, any
other is judged by the package's ``check_following``. The spans follow method.md §5 for the instructions in
`SPAN_FINDERS`, which mirror the checker's own matching; every other instruction reports ``spans=None``.
A blank response has no character to point at; under a lower limit (`LOWER_LIMITS`) it blames the stop.

Determinism: some checkers draw missing arguments from `random` (IFEval keys 1122 and 1129 ask for a
"letter" that is not a letter) and `langdetect` is random unless seeded. Each check therefore runs with
``langdetect.DetectorFactory.seed = 0`` and `random` seeded with `RANDOM_SEED`; the caller's `random`
state is restored afterwards, so a training loop's random stream is not reset by scoring.

NLTK data (punkt, punkt_tab, stopwords, averaged_perceptron_tagger_eng): the package calls ``nltk.download`` at
import when it is missing, which would hit the network in the middle of a run. We ship the English data
(`rubrics2tokens.resources`), and `register_ifeval_verifiers` makes NLTK see it first (after any ``NLTK_DATA``
folders), or raises `MissingNLTKDataError` with the fix. Importing this module is cheap; the package is imported on
registration.
"""

from __future__ import annotations

import os
import random
import re
from typing import Any, Callable, Mapping, Sequence

from rubrics2tokens.resources import nltk_data_dir
from rubrics2tokens.verifiers import rules
from rubrics2tokens.verifiers.base import Span, Verdict
from rubrics2tokens.verifiers.registry import VERIFIERS, register_verifier

IFEVAL_PREFIX = "ifeval:"
IFBENCH_PREFIX = "ifbench:"

RANDOM_SEED = 0

NLTK_RESOURCES = {
    "tokenizers/punkt": "punkt",
    "tokenizers/punkt_tab": "punkt_tab",
    "corpora/stopwords": "stopwords",
    "taggers/averaged_perceptron_tagger_eng": "averaged_perceptron_tagger_eng",
}
"""NLTK resource path -> downloader package name: everything `if-verifiable` looks for at import."""


class MissingNLTKDataError(RuntimeError):
    """The NLTK data the IFEval/IFBench checkers need is not installed where NLTK looks."""


def ensure_nltk_data() -> None:
    """Make NLTK see ``NLTK_DATA``'s folders, then the data this package ships; fail clearly (no download) when a
    resource is still missing.

    NLTK reads ``NLTK_DATA`` once, when it is imported; adding its folders here also covers a variable set after
    that import. A user's own folders come first, so their data wins.
    """
    import nltk

    try:
        shipped = str(nltk_data_dir())
    except OSError as error:  # an unwritable cache: the data may still be in the user's own folders
        shipped, unpack_problem = None, f" (the copy this package ships could not be unpacked: {error})"
    else:
        unpack_problem = ""
    folders = [folder for folder in os.environ.get("NLTK_DATA", "").split(os.pathsep) if folder]
    for folder in reversed(folders + ([shipped] if shipped else [])):
        if folder in nltk.data.path:
            nltk.data.path.remove(folder)
        nltk.data.path.insert(0, folder)
    missing = []
    for resource, package in NLTK_RESOURCES.items():
        try:
            nltk.data.find(resource)
        except LookupError:
            missing.append(package)
    if missing:
        raise MissingNLTKDataError(
            f"the IFEval/IFBench checkers need the NLTK data {', '.join(missing)}, not found in {nltk.data.path}"
            f"{unpack_problem}; set RTT_CACHE to a writable folder so the shipped copy can be unpacked, point "
            f"NLTK_DATA=/path at a folder that has the data, or (with internet) run "
            f"`python -m nltk.downloader -e {' '.join(NLTK_RESOURCES.values())}`"
        )


# ---------------------------------------------------------------- one check


def check_instruction(instruction_class: type, instruction_id: str, response: str,
                      kwargs: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
    """The official strict verdict of one instruction, and the arguments the checker actually used.

    The arguments come from ``get_instruction_args`` so spans use the values the checker drew when the
    data left one out.
    """
    import langdetect

    langdetect.DetectorFactory.seed = 0
    caller_random_state = random.getstate()
    random.seed(RANDOM_SEED)
    try:
        checker = instruction_class(instruction_id)
        checker.build_description(**{name: value for name, value in kwargs.items() if value is not None})
        used_args = checker.get_instruction_args() or {}
        passed = bool(response.strip()) and bool(checker.check_following(response))
    finally:
        random.setstate(caller_random_state)
    return passed, used_args


class InstructionVerifier:
    """A registered verifier: one instruction class of `if-verifiable`, with its span finder if any."""

    def __init__(self, instruction_id: str, instruction_class: type, find_spans: SpanFinder | None,
                 asks_for_units: LowerLimit | None = None):
        self.instruction_id = instruction_id
        self.instruction_class = instruction_class
        self.find_spans = find_spans
        self.asks_for_units = asks_for_units

    def __call__(self, response: str, **kwargs: Any) -> Verdict:
        passed, used_args = check_instruction(self.instruction_class, self.instruction_id, response, kwargs)
        if not response.strip():
            return self._blank_verdict(used_args)
        if self.find_spans is None:
            return Verdict(passed=passed, spans=None)
        return self.find_spans(response, passed, used_args)

    def _blank_verdict(self, used_args: Mapping[str, Any]) -> Verdict:
        """A blank response fails every instruction and has no character to point at.

        Under a lower limit (at least N words, sentences, paragraphs, keywords...) it has none of the units
        asked for: stopping at once is the cause, so the stop is blamed (method.md §5).
        """
        if self.asks_for_units is not None and self.asks_for_units(used_args):
            return Verdict.too_few()
        return Verdict(passed=False, spans=None if self.find_spans is None else ())


# ---------------------------------------------------------------- spans (method.md §5)

SpanFinder = Callable[[str, bool, Mapping[str, Any]], Verdict]
"""``(response, passed, used_args) -> Verdict`` with the spans (``None`` when they cannot be told honestly)."""

# IFEval's two relations
LESS_THAN = "less than"
AT_LEAST = "at least"


def _blame(spans: Sequence[Span] | None) -> Verdict:
    return Verdict(passed=False, spans=None if spans is None else tuple(spans))


def _credit(spans: Sequence[Span] | None = ()) -> Verdict:
    """A pass; by default one that credits no character (a global property that held)."""
    return Verdict(passed=True, spans=None if spans is None else tuple(spans))


def _character_runs(response: str, is_offending: Callable[[str], bool]) -> list[Span]:
    runs: list[Span] = []
    for position, char in enumerate(response):
        if not is_offending(char):
            continue
        if runs and runs[-1][1] == position:
            runs[-1] = (runs[-1][0], position + 1)
        else:
            runs.append((position, position + 1))
    return runs


def _regex_matches(pattern: str, response: str) -> list[Span]:
    # The checkers use their keywords as regular expressions, case-insensitively; so do the spans.
    matches = re.finditer(pattern, response, flags=re.IGNORECASE)
    return [match.span() for match in matches if match.end() > match.start()]


def _counted(passed: bool, occurrences: list[Span], relation: str, limit: int, credit: bool) -> Verdict:
    """A count constraint on `occurrences`, the units the checker counted.

    "less than N" is an upper limit: met, nothing; exceeded, the units past the (N-1)-th.
    "at least N" is a lower limit: met, the units when they are things asked for (``credit``: keywords,
    letters) and nothing when any unit would do (words); missed, the stop.
    """
    if relation == LESS_THAN:
        return _credit() if passed else _blame(occurrences[max(limit - 1, 0):])
    if passed:
        return _credit(occurrences if credit else ())
    return Verdict.too_few()


def _forbidden_characters(is_offending: Callable[[str], bool]) -> SpanFinder:
    """Case constraints: a pass credits nothing; a fail blames the offending letters.

    They also require English (langdetect); a failure without an offending letter comes from the
    language (or from having no letters at all): every character would have to change.
    """
    def find_spans(response: str, passed: bool, _: Mapping[str, Any]) -> Verdict:
        if passed:
            return _credit()
        return _blame(_character_runs(response, is_offending) or rules.whole_response(response))
    return find_spans


def _no_comma_spans(response: str, passed: bool, _: Mapping[str, Any]) -> Verdict:
    return rules.check_no_commas(response)


def _keyword_existence_spans(response: str, passed: bool, args: Mapping[str, Any]) -> Verdict:
    # Pass: every occurrence of every keyword. Fail: a keyword is missing (a lower limit of one): the
    # stop; the keywords present are progress.
    if not passed:
        return Verdict.too_few()
    return _credit(sorted(span for keyword in args["keywords"] for span in _regex_matches(keyword, response)))


def _keyword_frequency_spans(response: str, passed: bool, args: Mapping[str, Any]) -> Verdict:
    occurrences = _regex_matches(args["keyword"], response)
    return _counted(passed, occurrences, args["relation"], args["frequency"], credit=True)


def _forbidden_words_spans(response: str, passed: bool, args: Mapping[str, Any]) -> Verdict:
    if passed:
        return _credit()
    return _blame(sorted(span for word in args["forbidden_words"] for span in _regex_matches(rf"\b{word}\b", response)))


def _letter_frequency_spans(response: str, passed: bool, args: Mapping[str, Any]) -> Verdict:
    letter = args["letter"]
    occurrences = [(position, position + 1) for position, char in enumerate(response) if char.lower() == letter]
    if len(occurrences) != response.lower().count(letter):
        return Verdict(passed=passed, spans=None)  # lower() changed the length (e.g. "İ"): not per character
    return _counted(passed, occurrences, args["let_relation"], args["let_frequency"], credit=True)


def _number_words_spans(response: str, passed: bool, args: Mapping[str, Any]) -> Verdict:
    # The checker counts words with nltk's RegexpTokenizer(r"\w+"), the testbed's word unit.
    return _counted(passed, rules.find_words(response), args["relation"], args["num_words"], credit=False)


def _end_phrase_spans(response: str, passed: bool, args: Mapping[str, Any]) -> Verdict:
    """Pass: the end phrase (the checker ignores surrounding whitespace and double quotes). Fail: the last line."""
    if not passed:
        return _blame(rules.find_lines(response)[-1:])
    content = response.strip()
    start = len(response) - len(response.lstrip()) + len(content) - len(content.lstrip('"'))
    end = start + len(content.strip('"'))
    phrase_length = len(args["end_phrase"].strip().lower())
    if len(response[start:end].lower()) != end - start:
        return _credit(None)  # lower() changed the length: the phrase's characters cannot be located
    return _credit([(end - phrase_length, end)])


def _title_spans(response: str, passed: bool, _: Mapping[str, Any]) -> Verdict:
    """Pass: the non-blank titles, as the checker's (greedy) pattern finds them. Fail: the first line."""
    if not passed:
        return _blame(rules.find_lines(response)[:1])
    return _credit([match.span() for match in re.finditer(r"<<[^\n]+>>", response)
                    if match.group().lstrip("<").rstrip(">").strip()])


def _repeat_prompt_spans(response: str, passed: bool, args: Mapping[str, Any]) -> Verdict:
    """Pass: the repeated prompt at the start. Fail: the first line, where the repetition was required."""
    if not passed:
        return _blame(rules.find_lines(response)[:1])
    start = len(response) - len(response.lstrip())
    length = len(args["prompt_to_repeat"].strip().lower())
    if len(response[start:start + length].lower()) != length:
        return _credit(None)  # lower() changed the length: the repeated prompt's characters cannot be located
    return _credit([(start, start + length)])


def _global_property_spans(response: str, passed: bool, _: Mapping[str, Any]) -> Verdict:
    """A property of the whole text (its language, being JSON): a pass credits nothing, a fail blames all."""
    return _credit() if passed else _blame(rules.whole_response(response))


SPAN_FINDERS: dict[str, SpanFinder] = {
    IFEVAL_PREFIX + "punctuation:no_comma": _no_comma_spans,
    IFEVAL_PREFIX + "change_case:english_lowercase": _forbidden_characters(lambda char: char != char.lower()),
    IFEVAL_PREFIX + "change_case:english_capital": _forbidden_characters(lambda char: char != char.upper()),
    IFEVAL_PREFIX + "keywords:existence": _keyword_existence_spans,
    IFEVAL_PREFIX + "keywords:frequency": _keyword_frequency_spans,
    IFEVAL_PREFIX + "keywords:forbidden_words": _forbidden_words_spans,
    IFEVAL_PREFIX + "keywords:letter_frequency": _letter_frequency_spans,
    IFEVAL_PREFIX + "length_constraints:number_words": _number_words_spans,
    IFEVAL_PREFIX + "startend:end_checker": _end_phrase_spans,
    IFEVAL_PREFIX + "detectable_format:title": _title_spans,
    IFEVAL_PREFIX + "combination:repeat_prompt": _repeat_prompt_spans,
    IFEVAL_PREFIX + "language:response_language": _global_property_spans,
    IFEVAL_PREFIX + "detectable_format:json_format": _global_property_spans,
}
"""Verifier id -> span finder; the ids not listed here report ``spans=None``."""

LowerLimit = Callable[[Mapping[str, Any]], bool]
"""``used_args -> whether the instruction asks for at least some units``, so a blank response falls short."""


def _always(_: Mapping[str, Any]) -> bool:
    return True


def _relation_is_at_least(relation_key: str) -> LowerLimit:
    return lambda args: args[relation_key] == AT_LEAST


LOWER_LIMITS: dict[str, LowerLimit] = {
    IFEVAL_PREFIX + "keywords:existence": _always,
    IFEVAL_PREFIX + "keywords:frequency": _relation_is_at_least("relation"),
    IFEVAL_PREFIX + "keywords:letter_frequency": _relation_is_at_least("let_relation"),
    IFEVAL_PREFIX + "length_constraints:number_words": _relation_is_at_least("relation"),
    IFEVAL_PREFIX + "length_constraints:number_sentences": _relation_is_at_least("relation"),
    IFEVAL_PREFIX + "length_constraints:number_paragraphs": _always,
    IFEVAL_PREFIX + "length_constraints:nth_paragraph_first_word": _always,
    IFEVAL_PREFIX + "detectable_content:number_placeholders": _always,
    IFEVAL_PREFIX + "detectable_format:number_bullet_lists": _always,
    IFEVAL_PREFIX + "detectable_format:number_highlighted_sections": _always,
    IFEVAL_PREFIX + "detectable_format:multiple_sections": _always,
    IFEVAL_PREFIX + "change_case:capital_word_frequency": _relation_is_at_least("capital_relation"),
}
"""Verifier id -> when its instruction is a lower limit, which a blank response misses by stopping at once.

Counts required exactly (paragraphs, bullets) are lower limits too for a response that has none.
"""


# ---------------------------------------------------------------- registration


def instruction_registries() -> dict[str, dict[str, type]]:
    """Verifier-id prefix -> the package's instruction id -> checker class, after the NLTK data check."""
    ensure_nltk_data()  # before the import: if-verifiable downloads missing NLTK data when imported
    from if_verifiable.ifbench.instructions_registry import INSTRUCTION_DICT as IFBENCH_INSTRUCTIONS
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT as IFEVAL_INSTRUCTIONS

    return {IFEVAL_PREFIX: IFEVAL_INSTRUCTIONS, IFBENCH_PREFIX: IFBENCH_INSTRUCTIONS}


def register_ifeval_verifiers() -> list[str]:
    """Register every IFEval and IFBench instruction (once; later calls do nothing) and return their ids."""
    registered = []
    for prefix, instructions in instruction_registries().items():
        for instruction_id, instruction_class in instructions.items():
            verifier_id = prefix + instruction_id
            if verifier_id not in VERIFIERS:
                register_verifier(verifier_id, InstructionVerifier(instruction_id, instruction_class,
                                                                   SPAN_FINDERS.get(verifier_id),
                                                                   LOWER_LIMITS.get(verifier_id)))
            registered.append(verifier_id)
    return registered
