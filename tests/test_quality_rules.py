"""The quality families on the answers that hacked the testbed reward (docs/testbed.md §4), and their spans."""

import pytest

from rubrics2tokens.data.synthetic import (END_PHRASES, FAMILIES, LENGTH_FLOOR_WORDS, MIN_DISTINCT_RATIOS,
                                           QUALITY_FAMILIES, is_consistent)
from rubrics2tokens.verifiers import rules
from rubrics2tokens.verifiers.registry import run_verifier

# Hack 2 as the policy wrote it: lowercase repetition run to the length limit, cut mid-phrase.
REPETITION = "the journey of life " * 30 + "the journey of"
REPEATED_LINES = "\n".join(["the journey of life is long"] * 6 + ["the journey of"])
# Hack 1's cure failing the other way: a short answer cut mid-sentence.
CUT_SHORT = "the river is blue and the"
NORMAL = ("Dear Sam,\n\nThe small bakery on Elm Street opened last week. Every morning the smell of warm bread "
          "drifts down the road, and I cannot walk past without buying a loaf. The owner, an old sailor named Rui, "
          "bakes everything himself before dawn.\n\n* Try the rye bread.\n* Come early: by noon the shelves are "
          "empty.\n\nI hope you visit soon. See you then!")


def texts(response, spans):
    return [response[start:end] for start, end in spans]


@pytest.mark.parametrize("min_ratio", MIN_DISTINCT_RATIOS)
def test_repetition_fails_distinct_words_and_blames_every_repeat(min_ratio):
    verdict = rules.check_distinct_words(REPETITION, min_ratio=min_ratio)
    words = rules.find_words(REPETITION)
    assert verdict.passed is False and not verdict.stop
    assert len(verdict.spans) == len(words) - 4  # only the first "the journey of life" is kept
    assert texts(REPETITION, verdict.spans[:4]) == ["the", "journey", "of", "life"]
    assert verdict.spans[0] == words[4]
    assert set(verdict.spans) <= set(words)


def test_repetition_cut_at_the_limit_fails_end_with_sentence_on_its_unfinished_sentence():
    verdict = rules.check_end_with_sentence(REPETITION)
    assert verdict.passed is False and not verdict.stop
    assert verdict.spans == ((0, len(REPETITION.rstrip())),)  # no sentence was ever finished


def test_repetition_in_one_line_is_no_repeated_sentence_but_repeated_lines_are():
    assert rules.check_no_repeated_sentences(REPETITION).passed is True  # distinct_words is the one that sees it
    verdict = rules.check_no_repeated_sentences(REPEATED_LINES)
    lines = rules.find_lines(REPEATED_LINES)
    assert verdict.passed is False
    assert verdict.spans == tuple(lines[1:6])  # the repeats after the first; the short cut line is not a repeat
    assert rules.check_distinct_words(REPEATED_LINES, min_ratio=0.5).passed is False


def test_a_short_answer_cut_mid_sentence_fails_end_with_sentence():
    verdict = rules.check_end_with_sentence(CUT_SHORT)
    assert verdict.passed is False and texts(CUT_SHORT, verdict.spans) == [CUT_SHORT]
    finished = rules.check_end_with_sentence(CUT_SHORT + " sky.")
    assert finished.passed is True and texts(CUT_SHORT + " sky.", finished.spans) == ["."]


def strictest(name):
    """The kwargs of a quality family at its strictest drawn value."""
    return {"distinct_words": {"min_ratio": max(MIN_DISTINCT_RATIOS)},
            "length_floor": {"n": max(LENGTH_FLOOR_WORDS)}}.get(name, {})


def test_a_normal_answer_passes_every_quality_family():
    for name in QUALITY_FAMILIES:
        assert run_verifier(f"testbed:{name}", NORMAL, strictest(name)).passed is True, name
    assert rules.check_end_with_sentence(NORMAL).spans == ((len(NORMAL) - 1, len(NORMAL)),)


def test_a_pass_credits_nothing_for_the_global_properties():
    assert rules.check_no_repeated_sentences(NORMAL).spans == ()
    assert rules.check_distinct_words(NORMAL, min_ratio=0.5).spans == ()


def test_repeats_are_blamed_once_in_order_and_never_overlap():
    response = "We sail at dawn. We sail at dawn.\nWe sail at dawn. We sail at dawn.\nWe sail at dawn!"
    spans = rules.check_no_repeated_sentences(response).spans
    # the second sentence, then the whole repeated second line (not its sentences again), then the last line
    assert texts(response, spans) == ["We sail at dawn.", "We sail at dawn. We sail at dawn.", "We sail at dawn!"]
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))


def test_sentences_split_at_final_punctuation_and_line_breaks_only():
    response = "Pi is 3.14 today. Really?! \"Yes.\" (ok.) x.org rules\n<<title>>\n* a bullet"
    assert texts(response, rules.find_sentences(response)) == [
        "Pi is 3.14 today.", "Really?!", '"Yes."', "(ok.)", "x.org rules", "<<title>>", "* a bullet"]


def test_ending_phrases_are_finished_sentences_and_a_bare_one_would_be_refused():
    for phrase in END_PHRASES:
        assert rules.check_end_with_sentence(phrase).passed, phrase
        assert is_consistent({"end_with_phrase": {"phrase": phrase}, "end_with_sentence": {}})
    assert not is_consistent({"end_with_phrase": {"phrase": "see you"}, "end_with_sentence": {}})
    assert is_consistent({"exact_bullets": {"n": 3}, "end_with_sentence": {}})  # a closing sentence settles it


def test_quality_families_but_the_floor_pass_a_near_empty_clean_answer_so_they_never_stand_alone():
    for name in QUALITY_FAMILIES:
        passes = run_verifier(f"testbed:{name}", "The river is blue.", strictest(name)).passed
        assert FAMILIES[name].near_empty_passes is passes is (name != "length_floor"), name
