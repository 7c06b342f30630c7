"""The testbed rule checkers (verdicts and deciding spans) and the verifier registry."""

import logging

import pytest

from rubrics2tokens.verifiers import registry, rules
from rubrics2tokens.verifiers.base import Verdict
from rubrics2tokens.verifiers.registry import (UnknownVerifierError, get_verifier, register_verifier,
                                               run_verifier)


def case(checker, response, kwargs, passed, span_texts, name):
    """One row of the table below: the expected verdict and the text under each expected span."""
    family = checker.__name__.removeprefix("check_")
    return pytest.param(checker, response, kwargs, passed, span_texts, id=f"{family}-{name}")


STOP = object()  # stands for "no character, the stop" (a lower limit not reached, method.md §5)

CASES = [
    # all_lowercase: uppercase runs when failed; a pass credits nothing (a global property)
    case(rules.check_all_lowercase, "hello world.", {}, True, [], "lowercase"),
    case(rules.check_all_lowercase, "Hello WORLD ok", {}, False, ["H", "WORLD"], "uppercase-runs"),
    case(rules.check_all_lowercase, "café ÉTÉ über", {}, False, ["ÉTÉ"], "unicode-capitals"),
    case(rules.check_all_lowercase, "café über straße", {}, True, [], "unicode-lowercase"),
    case(rules.check_all_lowercase, "123, !?", {}, True, [], "no-letters"),
    case(rules.check_all_lowercase, "  \n\t", {}, True, [], "whitespace-only"),
    case(rules.check_all_lowercase, "", {}, True, [], "empty"),
    # no_commas: each ASCII comma when failed
    case(rules.check_no_commas, "no commas here.", {}, True, [], "none"),
    case(rules.check_no_commas, "a, b,, c", {}, False, [",", ",", ","], "adjacent-commas-apart"),
    case(rules.check_no_commas, "a，b", {}, True, [], "fullwidth-comma-is-not-ascii"),
    case(rules.check_no_commas, "\n\n", {}, True, [], "whitespace-only"),
    case(rules.check_no_commas, "", {}, True, [], "empty"),
    # forbidden_word: each whole-word occurrence, any case
    case(rules.check_forbidden_word, "it is fine.", {"word": "very"}, True, [], "absent"),
    case(rules.check_forbidden_word, "Very nice, VERY very.", {"word": "very"}, False, ["Very", "VERY", "very"],
         "case-variants"),
    case(rules.check_forbidden_word, "everything every", {"word": "very"}, True, [], "inside-other-words"),
    case(rules.check_forbidden_word, "very's end", {"word": "very"}, False, ["very"], "before-apostrophe"),
    case(rules.check_forbidden_word, "Un Café noir", {"word": "café"}, False, ["Café"], "unicode"),
    case(rules.check_forbidden_word, "deux cafés", {"word": "café"}, True, [], "unicode-plural"),
    case(rules.check_forbidden_word, "", {"word": "very"}, True, [], "empty"),
    # include_keyword: the occurrences when enough; too few: the stop (occurrences are progress)
    case(rules.check_include_keyword, "The River flows.", {"keyword": "river"}, True, ["River"], "default-once"),
    case(rules.check_include_keyword, "river and RIVER.", {"keyword": "river", "min_count": 2}, True,
         ["river", "RIVER"], "twice"),
    case(rules.check_include_keyword, "river, river", {"keyword": "river", "min_count": 3}, False,
         STOP, "too-few"),
    case(rules.check_include_keyword, "riverbank rivers", {"keyword": "river"}, False, STOP, "inside-other-words"),
    case(rules.check_include_keyword, "CAFÉ au lait", {"keyword": "café"}, True, ["CAFÉ"], "unicode"),
    case(rules.check_include_keyword, "   ", {"keyword": "river"}, False, STOP, "whitespace-only"),
    case(rules.check_include_keyword, "", {"keyword": "river"}, False, STOP, "empty"),
    # start_with_word: the first word, passed (credit) or failed (blame: where the word was required)
    case(rules.check_start_with_word, "Today is sunny.", {"word": "today"}, True, ["Today"], "capitalised"),
    case(rules.check_start_with_word, '  \n\n"today," she said', {"word": "today"}, True, ["today"],
         "leading-blank-and-quote"),
    case(rules.check_start_with_word, "**TODAY** we go", {"word": "today"}, True, ["TODAY"], "markdown"),
    case(rules.check_start_with_word, "Todays news\nmore", {"word": "today"}, False, ["Todays"],
         "longer-word"),
    case(rules.check_start_with_word, "\n\n  Yesterday was fine.  \nToday too", {"word": "today"}, False,
         ["Yesterday"], "second-line"),
    case(rules.check_start_with_word, "... !!!", {"word": "today"}, False, [], "no-words"),
    case(rules.check_start_with_word, "   \n ", {"word": "today"}, False, [], "whitespace-only"),
    case(rules.check_start_with_word, "", {"word": "today"}, False, [], "empty"),
    # end_with_phrase: the phrase when passed, the last non-empty line when failed
    case(rules.check_end_with_phrase, "Bye now. see you soon.", {"phrase": "see you soon."}, True,
         ["see you soon."], "same-line"),
    case(rules.check_end_with_phrase, "Bye.\nsee you soon.\n\n  \n", {"phrase": "see you soon."}, True,
         ["see you soon."], "trailing-whitespace"),
    case(rules.check_end_with_phrase, "x see you soon.", {"phrase": "see you soon. "}, True, ["see you soon."],
         "phrase-with-trailing-space"),
    case(rules.check_end_with_phrase, "Bye. See you soon.", {"phrase": "see you soon."}, False,
         ["Bye. See you soon."], "case-differs"),
    case(rules.check_end_with_phrase, "see you soon. Bye.\n\nP.S. later  \n", {"phrase": "see you soon."}, False,
         ["P.S. later"], "text-after"),
    case(rules.check_end_with_phrase, "see you soon", {"phrase": "see you soon."}, False, ["see you soon"],
         "missing-period"),
    case(rules.check_end_with_phrase, " \n ", {"phrase": "see you soon."}, False, [], "whitespace-only"),
    case(rules.check_end_with_phrase, "", {"phrase": "see you soon."}, False, [], "empty"),
    # max_words: nothing when met, one span over the surplus words when exceeded
    case(rules.check_max_words, "one two three.", {"n": 3}, True, [], "at-limit"),
    case(rules.check_max_words, "one, two three four, five!", {"n": 3}, False, ["four, five"], "surplus"),
    case(rules.check_max_words, "don't stop", {"n": 2}, False, ["stop"], "apostrophe-splits-words"),
    case(rules.check_max_words, "café crème brûlée", {"n": 3}, True, [], "unicode-words"),
    case(rules.check_max_words, "* a\n* b\n* c d", {"n": 3}, False, ["d"], "markers-are-not-words"),
    case(rules.check_max_words, "  ", {"n": 3}, True, [], "whitespace-only"),
    case(rules.check_max_words, "", {"n": 3}, True, [], "empty"),
    # min_words: nothing when met (no word in particular achieves a length), the stop when short
    case(rules.check_min_words, "one two three", {"n": 3}, True, [], "at-limit"),
    case(rules.check_min_words, "Line one here.\nshort end\n\n", {"n": 10}, False, STOP, "short"),
    case(rules.check_min_words, "!!! ???", {"n": 1}, False, STOP, "no-words"),
    case(rules.check_min_words, "  \n ", {"n": 3}, False, STOP, "whitespace-only"),
    case(rules.check_min_words, "", {"n": 3}, False, STOP, "empty"),
    # exact_bullets: the markers when exact, the stop when too few, the surplus bullet lines when too many
    case(rules.check_exact_bullets, "Intro:\n* one\n* two\nbye", {"n": 2}, True, ["*", "*"], "star"),
    case(rules.check_exact_bullets, "- one\n  - two", {"n": 2}, True, ["-", "-"], "dash-indented"),
    case(rules.check_exact_bullets, "* a\n- b\n\t* c", {"n": 3}, True, ["*", "-", "*"], "mixed-tab-indented"),
    case(rules.check_exact_bullets, "*bold* text\n** not\n---\n-no space\n* one", {"n": 2}, False, STOP,
         "too-few-and-lookalikes"),
    case(rules.check_exact_bullets, "* a\n* b\ntext\n  * c  \n", {"n": 1}, False, ["* b", "* c"], "too-many"),
    case(rules.check_exact_bullets, "text with * star - dash\n1. numbered", {"n": 2}, False, STOP, "no-bullets"),
    case(rules.check_exact_bullets, "", {"n": 2}, False, STOP, "empty"),
    # title: every non-blank <<title>> when present, the first non-empty line when absent
    case(rules.check_title, "<<My Day>>\nText", {}, True, ["<<My Day>>"], "first-line"),
    case(rules.check_title, "Text <<a>> and <<b c>>", {}, True, ["<<a>>", "<<b c>>"], "several"),
    case(rules.check_title, "<<café au lait>>", {}, True, ["<<café au lait>>"], "unicode"),
    case(rules.check_title, "<<>>\nbody", {}, False, ["<<>>"], "empty-title"),
    case(rules.check_title, "<<   >> x", {}, False, ["<<   >> x"], "blank-title"),
    case(rules.check_title, "\n\n  no title here\nmore", {}, False, ["no title here"], "absent"),
    case(rules.check_title, "<<split\ntitle>>", {}, False, ["<<split"], "split-over-lines"),
    case(rules.check_title, "<single brackets>", {}, False, ["<single brackets>"], "single-brackets"),
    case(rules.check_title, "", {}, False, [], "empty"),
    # n_paragraphs: the breaks when exact, the surplus paragraphs when too many, the stop when too few
    case(rules.check_n_paragraphs, "p one\nstill one\n\np two", {"n": 2}, True, ["\n\n"], "exact"),
    case(rules.check_n_paragraphs, "a\n\n\n  \nb\n", {"n": 2}, True, ["\n\n\n  \n"], "several-blank-lines"),
    case(rules.check_n_paragraphs, "a\r\n\r\nb", {"n": 2}, True, ["\r\n\r\n"], "windows-newlines"),
    case(rules.check_n_paragraphs, "single\nparagraph", {"n": 1}, True, [], "one"),
    case(rules.check_n_paragraphs, "a\n\nb\n\nc\n\nd", {"n": 2}, False, ["c", "d"], "too-many"),
    case(rules.check_n_paragraphs, "a\n\n  b  \n", {"n": 3}, False, STOP, "too-few"),
    case(rules.check_n_paragraphs, "  \n\n ", {"n": 1}, False, STOP, "whitespace-only"),
    case(rules.check_n_paragraphs, "", {"n": 1}, False, STOP, "empty"),
    # no_repeated_sentences: each repeat after the first (whole lines when lines repeat); a pass credits nothing
    case(rules.check_no_repeated_sentences, "The sea is calm. The sky is grey.", {}, True, [], "distinct"),
    case(rules.check_no_repeated_sentences, "The sea is calm. I swim. the  SEA is calm!", {}, False,
         ["the  SEA is calm!"], "sentence-normalised"),
    case(rules.check_no_repeated_sentences, "I like the sea.\n* I like the sea\nok\n\n  i like the sea.  ", {},
         False, ["* I like the sea", "i like the sea."], "lines-with-markers"),
    case(rules.check_no_repeated_sentences, "We go now. Bye.\nWe go now. Bye.", {}, False, ["We go now. Bye."],
         "line-blamed-whole"),
    case(rules.check_no_repeated_sentences, "* yes\n* yes\nThanks! Thanks! ok ok.\nok ok.", {}, True, [],
         "short-pieces-may-repeat"),
    case(rules.check_no_repeated_sentences, "journey of life journey of life journey of life", {}, True, [],
         "repetition-inside-one-sentence"),
    case(rules.check_no_repeated_sentences, "", {}, True, [], "empty"),
    # distinct_words: every word repeating an earlier one when failed; no word: the stop; a pass credits nothing
    case(rules.check_distinct_words, "The cat sat on the mat.", {"min_ratio": 0.6}, True, [], "enough"),
    case(rules.check_distinct_words, "a b a b", {"min_ratio": 0.5}, True, [], "at-threshold"),
    case(rules.check_distinct_words, "Go go GO now.", {"min_ratio": 0.6}, False, ["go", "GO"], "case-folded"),
    case(rules.check_distinct_words, "life of life, of life", {"min_ratio": 0.5}, False, ["life", "of", "life"],
         "repeats-blamed"),
    case(rules.check_distinct_words, "word", {"min_ratio": 1}, True, [], "one-word"),
    case(rules.check_distinct_words, " ".join(f"w{i % 55}" for i in range(100)), {"min_ratio": 0.55}, True, [],
         "exact-ratio-no-rounding"),
    case(rules.check_distinct_words, "... !!", {"min_ratio": 0.5}, False, STOP, "no-words"),
    case(rules.check_distinct_words, "", {"min_ratio": 0.5}, False, STOP, "empty"),
    # end_with_sentence: the final punctuation when finished, the unfinished last sentence when not
    case(rules.check_end_with_sentence, "It rained. We stayed in.\n\n", {}, True, ["."], "period"),
    case(rules.check_end_with_sentence, 'She said "come home?!"', {}, True, ['?!"'], "closing-quote"),
    case(rules.check_end_with_sentence, "(see you soon.)", {}, True, [".)"], "closing-bracket"),
    case(rules.check_end_with_sentence, "**That is all.**", {}, True, [".**"], "markdown-closer"),
    case(rules.check_end_with_sentence, "And then\u2026", {}, True, ["\u2026"], "ellipsis"),
    case(rules.check_end_with_sentence, "It rained. We stayed in and the", {}, False, ["We stayed in and the"],
         "cut-mid-sentence"),
    case(rules.check_end_with_sentence, "Tips.\n* pack light\n* start early", {}, False, ["* start early"],
         "unpunctuated-bullet"),
    case(rules.check_end_with_sentence, "Done.\n* * *", {}, False, ["* * *"], "stray-markup"),
    case(rules.check_end_with_sentence, "version 3.5", {}, False, ["version 3.5"], "inner-period"),
    case(rules.check_end_with_sentence, "  \n ", {}, False, [], "whitespace-only"),
    case(rules.check_end_with_sentence, "", {}, False, [], "empty"),
]


@pytest.mark.parametrize("checker, response, kwargs, passed, span_texts", CASES)
def test_checker_verdict_and_spans(checker, response, kwargs, passed, span_texts):
    verdict = checker(response, **kwargs)
    assert verdict.passed is passed
    assert isinstance(verdict.spans, tuple)
    if span_texts is STOP:
        assert verdict.spans == () and verdict.stop
    else:
        assert [response[start:end] for start, end in verdict.spans] == span_texts
        assert not verdict.stop


def test_every_family_has_cases():
    assert {param.values[0] for param in CASES} == set(rules.CHECKERS.values())


def test_repeated_matches_have_their_own_positions():
    assert rules.check_no_commas("a, b,, c").spans == ((1, 2), (4, 5), (5, 6))
    assert rules.check_include_keyword("river and river", keyword="river", min_count=2).spans == ((0, 5), (10, 15))
    assert rules.check_exact_bullets("* a\n* b\n* a", n=3).spans == ((0, 1), (4, 5), (8, 9))


@pytest.mark.parametrize("checker, kwargs", [
    (rules.check_max_words, {"n": 0}),
    (rules.check_min_words, {"n": True}),
    (rules.check_exact_bullets, {"n": "3"}),
    (rules.check_include_keyword, {"keyword": "", "min_count": 1}),
    (rules.check_include_keyword, {"keyword": "river", "min_count": 0}),
    (rules.check_forbidden_word, {"word": "  "}),
    (rules.check_end_with_phrase, {"phrase": None}),
    (rules.check_distinct_words, {"min_ratio": 0}),
    (rules.check_distinct_words, {"min_ratio": 1.5}),
    (rules.check_distinct_words, {"min_ratio": True}),
    (rules.check_distinct_words, {"min_ratio": "0.5"}),
])
def test_bad_arguments_raise(checker, kwargs):
    with pytest.raises(ValueError):
        checker("some text", **kwargs)


# ---------------------------------------------------------------- registry


@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the registry that registrations in one test cannot leak out of."""
    monkeypatch.setattr(registry, "VERIFIERS", dict(registry.VERIFIERS))


def test_every_testbed_family_is_registered():
    for family, checker in rules.CHECKERS.items():
        assert get_verifier(f"testbed:{family}") is checker
    assert len(rules.CHECKERS) >= 14


def test_unknown_id_raises_with_a_suggestion():
    with pytest.raises(UnknownVerifierError) as caught:
        get_verifier("testbed:no_comma")
    message = str(caught.value)
    assert isinstance(caught.value, KeyError)
    assert "'testbed:no_commas'" in message and f"{len(registry.VERIFIERS)} ids are known" in message


def test_run_verifier_never_skips_an_unknown_id():
    with pytest.raises(UnknownVerifierError):
        run_verifier("ifeval:nothing_like_this", "text", {})


def test_run_verifier_passes_kwargs():
    assert run_verifier("testbed:max_words", "a b c", {"n": 2}) == Verdict(passed=False, spans=((4, 5),))


def test_bad_kwargs_give_an_unknown_verdict_and_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger=registry.__name__):
        verdict = run_verifier("testbed:max_words", "a b c", {"limit": 2})
    assert verdict == Verdict.unknown()
    assert "testbed:max_words" in caplog.text and "TypeError" in caplog.text


def test_a_crashing_checker_gives_an_unknown_verdict(scratch_registry, caplog):
    def broken(response):
        raise RuntimeError("bug in checker")

    register_verifier("test:broken", broken)
    with caplog.at_level(logging.WARNING, logger=registry.__name__):
        assert run_verifier("test:broken", "text", {}) == Verdict.unknown()
    assert "test:broken" in caplog.text and "bug in checker" in caplog.text


def test_duplicate_registration_raises(scratch_registry):
    with pytest.raises(ValueError, match="already registered"):
        register_verifier("testbed:no_commas", rules.check_no_commas)
