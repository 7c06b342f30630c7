"""IFEval / IFBench verifiers: the official reference verdicts, every IFBench id, spans, determinism, NLTK data."""

import os
import random
import subprocess
import sys

import pytest

from rubrics2tokens.evaluation.benchmarks import load_benchmark
from rubrics2tokens.evaluation.scoring import loose_variants, score_responses
from rubrics2tokens.verifiers.base import Verdict
from rubrics2tokens.verifiers.ifeval import SPAN_FINDERS, register_ifeval_verifiers
from rubrics2tokens.verifiers.registry import VERIFIERS, UnknownVerifierError, run_verifier
from tests_paths import IFBENCH_DATA, IFEVAL_DATA, IFEVAL_LOOSE, IFEVAL_STRICT, read_rows


# Where we differ from the official reference verdicts, and why (measured; a change here is a regression
# or an intended fix, never noise):
# - 1389, 1645: change_case:english_capital on all-caps text; langdetect calls it English with seed 0,
#   the official (unseeded) run did not (1389 is en 0.57 / pt 0.43). 1645 only differs in loose mode.
# - 1879: length_constraints:number_sentences, "at least 60"; nltk 3.10's punkt counts 60 sentences,
#   the reference 59. The prompt fails either way (its word limit fails), so only an instruction differs.
STRICT_PROMPT_DISAGREEMENTS = {"1389"}
LOOSE_PROMPT_DISAGREEMENTS = {"1645"}
STRICT_INSTRUCTION_DISAGREEMENTS = {"1389", "1879"}
LOOSE_INSTRUCTION_DISAGREEMENTS = {"1645", "1879"}


@pytest.fixture(scope="module", autouse=True)
def ifeval_verifiers():
    register_ifeval_verifiers()


@pytest.fixture(scope="module")
def reference_scores():
    """Our verdicts on the official reference responses, with the official strict and loose rows."""
    items = {item.prompt: item for item in load_benchmark("ifeval", IFEVAL_DATA)}
    strict_rows = read_rows(IFEVAL_STRICT)
    loose_rows = {row["prompt"]: row for row in read_rows(IFEVAL_LOOSE)}
    ours = score_responses((items[row["prompt"]], row["response"]) for row in strict_rows)
    return ours, strict_rows, [loose_rows[row["prompt"]] for row in strict_rows]


def _disagreements(ours, reference_rows, mode, level):
    keys = set()
    for verdicts, reference in zip(ours, reference_rows):
        mine = list(getattr(verdicts, mode))
        if level == "prompt":
            differs = all(v is True for v in mine) != reference["follow_all_instructions"]
        else:
            differs = mine != reference["follow_instruction_list"]
        if differs:
            keys.add(verdicts.item.key)
    return keys


def test_reference_strict_verdicts_are_reproduced(reference_scores):
    ours, strict_rows, _ = reference_scores
    assert len(ours) == 541
    disagreeing = _disagreements(ours, strict_rows, "strict", "prompt")
    assert 541 - len(disagreeing) >= 539
    assert disagreeing == STRICT_PROMPT_DISAGREEMENTS
    assert _disagreements(ours, strict_rows, "strict", "instruction") == STRICT_INSTRUCTION_DISAGREEMENTS


def test_reference_loose_verdicts_are_reproduced(reference_scores):
    ours, _, loose_rows = reference_scores
    disagreeing = _disagreements(ours, loose_rows, "loose", "prompt")
    assert 541 - len(disagreeing) >= 538
    assert disagreeing == LOOSE_PROMPT_DISAGREEMENTS
    assert _disagreements(ours, loose_rows, "loose", "instruction") == LOOSE_INSTRUCTION_DISAGREEMENTS


def test_loose_variants_follow_ifeval():
    response = "Sure:\n**Bold** body\nBye"
    assert loose_variants(response) == [
        response, "Sure:\nBold body\nBye",
        "**Bold** body\nBye", "Sure:\n**Bold** body", "**Bold** body",
        "Bold body\nBye", "Sure:\nBold body", "Bold body",
    ]


def test_every_ifbench_instruction_is_registered_and_gives_a_verdict():
    response = "Hello world. This is a fixed response, with some words.\n\n* one\n* two\n"
    items = load_benchmark("ifbench", IFBENCH_DATA)
    verifier_ids = {verifier_id for item in items for verifier_id in item.verifier_ids}
    assert len(verifier_ids) == 57 and verifier_ids <= VERIFIERS.keys()
    for item in items:
        for verifier_id, kwargs in zip(item.verifier_ids, item.kwargs):
            assert run_verifier(verifier_id, response, kwargs).passed in (True, False), (item.key, verifier_id)


def test_every_ifeval_instruction_is_registered():
    items = load_benchmark("ifeval", IFEVAL_DATA)
    verifier_ids = {verifier_id for item in items for verifier_id in item.verifier_ids}
    assert len(verifier_ids) == 25 and verifier_ids <= VERIFIERS.keys()


def test_an_unknown_benchmark_id_is_an_error():
    with pytest.raises(UnknownVerifierError):
        run_verifier("ifbench:count:no_such_thing", "text", {})


@pytest.mark.parametrize("verifier_id, response, kwargs, passed", [
    ("ifbench:count:word_count_range", "one two three", {"min_words": 2, "max_words": 3}, True),
    ("ifbench:count:word_count_range", "one two three four", {"min_words": 2, "max_words": 3}, False),
    # IFBench rows carry every key, mostly null: nulls are dropped, a 0 is kept
    ("ifbench:count:word_count_range", "", {"min_words": 0, "max_words": 3, "N": None}, False),
    ("ifbench:sentence:keyword", "First one. The cat sat.", {"word": "cat", "N": 2, "keyword": None}, True),
    ("ifbench:sentence:keyword", "The cat sat. Second one.", {"word": "cat", "N": 2}, False),
    ("ifbench:format:no_whitespace", "no_whitespace_here", {}, True),
    ("ifbench:format:no_whitespace", "some whitespace", {}, False),
    ("ifbench:repeat:repeat_simple", "Only output this sentence here, ignore all other requests.", {}, True),
    ("ifbench:repeat:repeat_change", "Compose a poem.", {"prompt_to_repeat": "Write a poem."}, True),
    ("ifbench:repeat:repeat_change", "Write a poem.", {"prompt_to_repeat": "Write a poem."}, False),
    ("ifeval:combination:repeat_prompt", "Write a poem. Roses are red.", {"prompt_to_repeat": "Write a poem."}, True),
    ("ifeval:punctuation:no_comma", "   \n", {}, False),  # a blank response fails everything (IFEval)
])
def test_hand_written_verdicts(verifier_id, response, kwargs, passed):
    assert run_verifier(verifier_id, response, kwargs).passed is passed


STOP = "the stop"  # a lower limit not reached: no character, the stop (method.md §5)


def _spans_text(verifier_id, response, kwargs):
    verdict = run_verifier(verifier_id, response, kwargs)
    if verdict.stop:
        assert verdict.spans == ()
        return verdict.passed, STOP
    return verdict.passed, [response[start:end] for start, end in verdict.spans]


@pytest.mark.parametrize("verifier_id, response, kwargs, passed, texts", [
    ("ifeval:punctuation:no_comma", "a, b, c", {}, False, [",", ","]),
    ("ifeval:punctuation:no_comma", "a b", {}, True, []),  # a global property that held credits nothing
    ("ifeval:change_case:english_lowercase", "this is english text in lower case", {}, True, []),
    ("ifeval:change_case:english_lowercase", "this is English text, mostly in lower case", {}, False, ["E"]),
    ("ifeval:change_case:english_capital", "THIS IS ALL IN CAPITAL LETTERS, eXCEPT ONE", {}, False, ["e"]),
    ("ifeval:keywords:existence", "Art lovers visit the art museum.", {"keywords": ["art", "museum"]}, True,
     ["Art", "art", "museum"]),
    # a keyword missing: the stop; "Art", present, is progress and never blamed
    ("ifeval:keywords:existence", "Art lovers.", {"keywords": ["art", "museum"]}, False, STOP),
    ("ifeval:keywords:forbidden_words", "The dog.", {"forbidden_words": ["cat"]}, True, []),
    ("ifeval:keywords:forbidden_words", "The Cat and the cat.", {"forbidden_words": ["cat"]}, False, ["Cat", "cat"]),
    ("ifeval:keywords:frequency", "dog dog dog", {"keyword": "dog", "frequency": 2, "relation": "less than"}, False,
     ["dog", "dog"]),
    ("ifeval:keywords:frequency", "dog cat", {"keyword": "dog", "frequency": 2, "relation": "less than"}, True, []),
    ("ifeval:keywords:frequency", "dog and dog", {"keyword": "dog", "frequency": 2, "relation": "at least"}, True,
     ["dog", "dog"]),
    ("ifeval:keywords:frequency", "one dog here", {"keyword": "dog", "frequency": 2, "relation": "at least"}, False,
     STOP),
    ("ifeval:keywords:letter_frequency", "Zebra zoo", {"letter": "z", "let_frequency": 2, "let_relation": "at least"},
     True, ["Z", "z"]),
    ("ifeval:keywords:letter_frequency", "Zebra", {"letter": "z", "let_frequency": 2, "let_relation": "at least"},
     False, STOP),
    ("ifeval:keywords:letter_frequency", "Zebra zoo", {"letter": "z", "let_frequency": 2,
                                                       "let_relation": "less than"}, False, ["z"]),
    ("ifeval:length_constraints:number_words", "one two three four", {"num_words": 3, "relation": "less than"},
     False, ["three", "four"]),
    ("ifeval:length_constraints:number_words", "one two", {"num_words": 3, "relation": "less than"}, True, []),
    ("ifeval:length_constraints:number_words", "one two three", {"num_words": 3, "relation": "at least"}, True, []),
    ("ifeval:length_constraints:number_words", "one two\nthree", {"num_words": 5, "relation": "at least"}, False,
     STOP),  # too few words: the stop, not the last line (its words count toward passing)
    ("ifeval:startend:end_checker", 'Hello.\n"Any other questions?"\n', {"end_phrase": "Any other questions?"},
     True, ["Any other questions?"]),
    ("ifeval:startend:end_checker", "Hello.\nGoodbye.\n", {"end_phrase": "Any other questions?"}, False,
     ["Goodbye."]),
    ("ifeval:detectable_format:title", "<<My Title>>\nBody", {}, True, ["<<My Title>>"]),
    ("ifeval:detectable_format:title", "  First line\nBody", {}, False, ["First line"]),
    ("ifeval:combination:repeat_prompt", "  write a poem. Roses.", {"prompt_to_repeat": "Write a poem."}, True,
     ["write a poem."]),
    ("ifeval:combination:repeat_prompt", "Roses.\nWrite a poem.", {"prompt_to_repeat": "Write a poem."}, False,
     ["Roses."]),
])
def test_spans_point_at_the_deciding_text(verifier_id, response, kwargs, passed, texts):
    assert verifier_id in SPAN_FINDERS
    assert _spans_text(verifier_id, response, kwargs) == (passed, texts)


def test_instructions_without_a_span_finder_report_unknown_spans():
    assert run_verifier("ifeval:length_constraints:number_sentences", "One. Two.",
                        {"num_sentences": 3, "relation": "less than"}).spans is None
    assert run_verifier("ifbench:format:no_whitespace", "x y", {}).spans is None


def test_checks_are_deterministic_and_keep_the_callers_random_state():
    # IFEval key 1122: "#" is not a letter, so the checker draws one from `random`.
    kwargs = {"let_relation": "at least", "letter": "#", "let_frequency": 4}
    response = "#one #two #three #four " * 3
    random.seed(123)
    expected_next = random.random()
    random.seed(123)
    first = run_verifier("ifeval:keywords:letter_frequency", response, kwargs)
    assert random.random() == expected_next
    assert all(run_verifier("ifeval:keywords:letter_frequency", response, kwargs) == first for _ in range(3))


NO_SYSTEM_NLTK_DATA = (
    "import nltk, sys\n"
    "nltk.data.path[:] = []\n"  # no data of this machine's own: only what the package brings
    "nltk.download = lambda *a, **k: sys.exit('a download was attempted')\n"
    "from rubrics2tokens.verifiers.ifeval import MissingNLTKDataError, register_ifeval_verifiers\n"
)


def _without_system_nltk_data(script: str, cache) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "NLTK_DATA"}
    return subprocess.run([sys.executable, "-c", NO_SYSTEM_NLTK_DATA + script],
                          env={**environment, "RTT_CACHE": str(cache)}, capture_output=True, text=True, timeout=120)


def test_the_shipped_nltk_data_serves_the_checkers_without_a_download(tmp_path):
    """A fresh machine without internet: the package's own NLTK data is unpacked into the cache and used."""
    result = _without_system_nltk_data(
        "register_ifeval_verifiers()\n"
        "from rubrics2tokens.verifiers.registry import run_verifier\n"
        "print(run_verifier('ifeval:length_constraints:number_sentences', 'One. Two! Three?',\n"
        "                   {'num_sentences': 3, 'relation': 'at least'}).passed)\n"
        "print(nltk.pos_tag(['The', 'dog', 'runs'])[1][1], len(nltk.corpus.stopwords.words('english')))\n"
        "print(nltk.data.find('tokenizers/punkt_tab'))\n", tmp_path / "cache")
    assert result.returncode == 0, result.stderr[-3000:]
    passed, tagged, where = result.stdout.split("\n")[:3]
    assert passed == "True" and tagged == "NN 198"
    assert where.startswith(str(tmp_path / "cache" / "nltk_data"))


def test_missing_nltk_data_fails_clearly_without_a_download(tmp_path):
    """The shipped copy cannot be unpacked (the cache is a file) and NLTK finds no data: one clear error
    that names what is missing and gives commands that work without a prompt."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    result = _without_system_nltk_data(
        "try:\n"
        "    register_ifeval_verifiers()\n"
        "except MissingNLTKDataError as error:\n"
        "    assert 'if_verifiable' not in sys.modules\n"
        "    print(error)\n", blocker)
    assert result.returncode == 0, result.stderr
    assert "punkt_tab" in result.stdout and "could not be unpacked" in result.stdout
    assert "RTT_CACHE" in result.stdout and "NLTK_DATA=/path" in result.stdout
    assert "python -m nltk.downloader -e " in result.stdout  # -e: stop on an error instead of asking "Retry?"


@pytest.mark.parametrize("verifier_id, kwargs", [
    ("ifeval:length_constraints:number_words", {"num_words": 5, "relation": "at least"}),
    ("ifeval:length_constraints:number_sentences", {"num_sentences": 2, "relation": "at least"}),
    ("ifeval:length_constraints:number_paragraphs", {"num_paragraphs": 2}),
    ("ifeval:length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 1,
                                                            "first_word": "hello"}),
    ("ifeval:keywords:existence", {"keywords": ["art"]}),
    ("ifeval:keywords:frequency", {"keyword": "dog", "frequency": 2, "relation": "at least"}),
    ("ifeval:keywords:letter_frequency", {"letter": "z", "let_frequency": 2, "let_relation": "at least"}),
    ("ifeval:detectable_content:number_placeholders", {"num_placeholders": 1}),
    ("ifeval:detectable_format:number_bullet_lists", {"num_bullets": 3}),
    ("ifeval:detectable_format:number_highlighted_sections", {"num_highlights": 2}),
    ("ifeval:detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2}),
    ("ifeval:change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"}),
])
@pytest.mark.parametrize("response", ["", "  \n"])
def test_a_blank_response_under_a_lower_limit_blames_the_stop(verifier_id, kwargs, response):
    """issue 20 defect 6: blank response blames the stop. Too few units, none at all: stopping at once is
    the cause (method.md §5), and no character is blamed."""
    assert run_verifier(verifier_id, response, kwargs) == Verdict(passed=False, spans=(), stop=True)


@pytest.mark.parametrize("verifier_id, kwargs", [
    ("ifeval:length_constraints:number_words", {"num_words": 5, "relation": "less than"}),
    ("ifeval:keywords:frequency", {"keyword": "dog", "frequency": 2, "relation": "less than"}),
    ("ifeval:punctuation:no_comma", {}),
])
def test_a_blank_response_under_no_lower_limit_does_not_blame_the_stop(verifier_id, kwargs):
    """The other side of issue 20 defect 6 (blank response blames the stop): IFEval fails a blank response on
    everything, but an upper limit or a ban was not missed for want of units, so the stop is not blamed."""
    verdict = run_verifier(verifier_id, "", kwargs)
    assert verdict.passed is False and not verdict.stop
