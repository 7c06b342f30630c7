"""MulDimIF verifiers on the real test set: coverage, hand-written cases per category, and `rtt eval score`."""

import importlib.util
import json
import logging
import re

import pytest

from rubrics2tokens.cli.main import main
from rubrics2tokens.evaluation.benchmarks import load_benchmark
from rubrics2tokens.verifiers import muldimif
from rubrics2tokens.verifiers.registry import run_verifier
from tests_paths import MULDIMIF_DATA

GENERIC_RESPONSE = "## Overview\n\nThis Is A Short Answer. It Has Two Sentences.\n\n| A | B |\n|---|---|\n| 1 | 2 |"


@pytest.fixture(scope="module")
def samples():
    return load_benchmark("muldimif", MULDIMIF_DATA)


def _constraints(samples):
    return [(verifier_id, kwargs) for item in samples for verifier_id, kwargs in zip(item.verifier_ids, item.kwargs)]


def _satisfying_response(verifier_id, description):
    """A response built to meet the constraint, for the checkers whose parsed rule says how; else None."""
    name = verifier_id.removeprefix(muldimif.MULDIMIF_PREFIX)
    if name == "length_sentences":
        for pattern, kind in muldimif.SENTENCE_LIMITS:
            if match := re.search(pattern, description.lower().strip()):
                low, high = muldimif._bounds(match, kind, muldimif.SENTENCE_NUMBER_WORDS)
                return "Fine. " * (low if low is not None else min(high, 1))
    if name == "length_paragraphs":
        for pattern, kind in muldimif.PARAGRAPH_LIMITS:
            if match := re.search(pattern, description.lower()):
                low, high = muldimif._bounds(match, kind, muldimif.PARAGRAPH_NUMBER_WORDS)
                return "\n\n".join(["A paragraph."] * (low if low is not None else 1))
    if name == "content_keywords" and not re.search(r"\b(each|every)\b|avoid", description, re.IGNORECASE):
        rule = muldimif.parse_keyword_rule(description)
        if rule.keywords and not rule.exclude and rule.max_words == float("inf"):
            return " ".join(" ".join([keyword] * rule.min_count) for keyword in rule.keywords) + "."
    if name == "language_english":
        return {"all_uppercase": "ALL CAPS HERE.", "title_case": "Every Word Capitalized.",
                "all_lowercase": "all lower.", "short_blurb": "x"}.get(muldimif.english_case_rule(description))
    return None


def test_every_constraint_of_the_test_set_has_a_verifier_and_mostly_a_known_verdict(samples, caplog):
    caplog.set_level(logging.ERROR)
    constraints = _constraints(samples)
    assert len(samples) == 1200 and len(constraints) == 4180

    generic = [run_verifier(verifier_id, GENERIC_RESPONSE, kwargs).passed for verifier_id, kwargs in constraints]
    unknown_rate = sum(verdict is None for verdict in generic) / len(generic)
    # 121 descriptions (2.9%) state nothing the official checker reads: it gives them a constant verdict;
    # without the optional zhconv package the 10 Chinese-script constraints are unknown too
    assert unknown_rate <= (121 if importlib.util.find_spec("zhconv") else 131) / 4180, unknown_rate
    assert {True, False} <= set(generic)

    built = [(verifier_id, kwargs, _satisfying_response(verifier_id, kwargs["description"]))
             for verifier_id, kwargs in constraints]
    built = [(verifier_id, kwargs, response) for verifier_id, kwargs, response in built if response is not None]
    verdicts = [run_verifier(verifier_id, response, kwargs).passed for verifier_id, kwargs, response in built]
    assert len(built) > 1500
    assert None not in verdicts
    assert sum(verdicts) / len(verdicts) > 0.95


def test_the_official_constant_can_replace_unknown(monkeypatch):
    description = "The answer must be written entirely in uppercase letters."  # no official phrasing matches
    assert muldimif.check_language_english("LOUD", description=description).passed is None
    monkeypatch.setattr(muldimif, "UNREADABLE_GIVES_OFFICIAL_VERDICT", True)
    assert muldimif.check_language_english("LOUD", description=description).passed is False


@pytest.mark.parametrize("checker, description, response", [
    ("content_keywords", "The answer must include the keyword 'religion'", "Religions only."),
    ("length_sentences", "The answer must include at least 3 sentences", "One. Two!"),
    ("length_paragraphs", "The script must be divided into 3 to 4 paragraphs", "A\n\nB"),
])
def test_a_lower_limit_not_reached_blames_the_stop(checker, description, response):
    verdict = muldimif.CHECKERS[checker](response, description=description)
    assert (verdict.passed, verdict.spans, verdict.stop) == (False, (), True)


def _sliced(response, verdict):
    return [response[start:end] for start, end in verdict.spans]


# (checker, description from the test set, response, expected verdict, expected spans as text or None)
CASES = [
    ("content_keywords", "The answer must include the keyword 'religion'", "Religion and religions.", True,
     ["Religion"]),
    ("content_keywords", "The answer must include the keyword 'religion'", "Religions only.", False, []),
    ("content_keywords", "Ensure That Your Explanation Includes The Keyword 'Econometrics'", "econometrics!", True,
     ["econometrics"]),
    ("content_keywords", "Each character description must include the keyword 'Zootopia'",
     "| Character | Description |\n|---|---|\n| Judy | Zootopia cop |\n| Nick | A fox |", False, None),
    ("content_keywords", "Each character description must include the keyword 'Zootopia'",
     "- Judy, a Zootopia cop\n- Nick, a fox of zootopia", True, None),
    ("content_punctuation", "The script must end with a period", "The end.  ", True, ["."]),
    ("content_punctuation", "end with a question mark", "Is it over.", False, ["."]),
    ("content_identifiers", "The answer must start with the identifier 'List of Models:'",
     "## List of models: A, B", True, None),
    ("content_identifiers", "The answer must start with the identifier 'List of Models:'", "Models: A", False, None),
    ("format_json", "Object nesting levels must not exceed 3", '```json\n{"a": {"b": {"c": 1}}}\n```', True, None),
    ("format_json", "Object nesting levels must not exceed 3", '{"a": {"b": {"c": {"d": 1}}}}', False, None),
    ("format_markdown", "The answer must include a level 2 heading in Markdown format", "# T\n## Sub\ntext", True,
     None),
    ("format_markdown", "The answer must include a level 2 heading in Markdown format", "# T\n### Sub", False, None),
    ("format_markdown", "Use block quotes to highlight key points about the currents.", "> key\nplain", True, None),
    ("format_table", "The answer must be presented in a table with no more than 5 rows",
     "| A |\n|---|\n| 1 |\n| 2 |", True, None),
    ("format_table", "the table must not exceed two rows", "| A |\n|---|\n| 1 |\n| 2 |\n| 3 |", False, None),
    ("format_table", "If a table is used in your response, it should not exceed 3 columns", "No table.", True, None),
    ("format_others", "Each XML element must have no more than three attributes", "<a x='1' y='2' z='3'/>", True,
     None),
    ("format_others", "Each XML element must have no more than three attributes", "<a w='0' x='1' y='2' z='3'/>",
     False, None),
    ("format_others", "No bullet points", "- one\n- two", False, None),
    ("language_english", "The answer must use capitalized letters for each word", "Hello World 42", True,
     []),  # a global property that held credits nothing (method.md §5)
    ("language_english", "The answer must use capitalized letters for each word", "Hello big world", False,
     ["big", "world"]),
    ("language_english", "The answer must be provided in all uppercase letters", "LOUD. quiet", False,
     ["q", "u", "i", "e", "t"]),
    ("language_chinese", "The answer must be provided in Simplified Chinese.", "这是简体", True, []),
    ("language_chinese", "The answer must be provided in Simplified Chinese.", "This is English", False,
     ["This is English"]),
    ("length_words", "The response should not exceed 5 words", "one two three four five six seven", False,
     ["six", "seven"]),
    ("length_words", "ensure that your response is between 3 and 5 words", "one two three", True,
     []),
    ("length_words", "Each cell in the table must contain at most 3 words",
     "| Name | Note |\n|---|---|\n| A | one two three four |", False, None),
    ("length_sentences", "The answer must include at least 2 sentences", "One. Two! Three?", True,
     []),
    ("length_sentences", "be at most 2 sentences long", "One. Two! Three? four", False, [" Three?"]),
    ("length_paragraphs", "The script must be divided into 3 to 4 paragraphs", "A\n\nB\n\nC", True, []),
    ("length_paragraphs", "The script should be at most three paragraphs long", "A\n\nB\n\nC\n\nD", False, ["D"]),
]


@pytest.mark.parametrize("checker, description, response, passed, spans", CASES)
def test_hand_written_cases(checker, description, response, passed, spans):
    verdict = muldimif.CHECKERS[checker](response, description=description)
    if checker == "language_chinese" and importlib.util.find_spec("zhconv") is None:
        assert verdict.passed is None, "without the optional zhconv package the verdict is unknown"
        return
    assert verdict.passed is passed
    if spans is not None:
        assert _sliced(response, verdict) == spans


@pytest.mark.parametrize("description, response, passed, spans", [
    ("The answer must not end with a question mark", "It is over.", True, []),
    ("Avoid ending the response with an exclamation mark", "Calm down.  ", True, []),
    ("The answer must not end with a question mark", "Is it over?", False, ["?"]),
    ("The script must end with a period", "The end.", True, ["."]),
])
def test_a_punctuation_ban_that_holds_credits_no_character(description, response, passed, spans):
    """issue 20 defect 7: passed punctuation ban credits nothing. A ban that holds is a global property every
    token merely avoids breaking (method.md §5); a broken ban blames the mark, a required mark is credited."""
    verdict = muldimif.check_content_punctuation(response, description=description)
    assert (verdict.passed, _sliced(response, verdict)) == (passed, spans)


def test_every_checker_has_a_pass_and_a_fail_case():
    outcomes = {(checker, passed) for checker, _, _, passed, _ in CASES}
    assert all((checker, result) in outcomes for checker in muldimif.CHECKERS for result in (True, False)
               if checker != "content_identifiers" or result)


def test_eval_score_muldimif_matches_a_hand_computation(tmp_path, samples):
    by_key = {item.key: item for item in samples}
    first, second = samples[0], samples[1]
    # sample 0 asks for XML, a table, <= 150 words and capitalized words: this response fails only the table rule
    # ("| A |" with 6 rows > 5); sample 1, answered twice, is scored per response and averaged
    rows = [{"id": first.key, "response": "<Report Name='X'/>\n" + "\n".join(["| A |"] * 7)},
            {"prompt": second.prompt, "response": "Short."},
            {"id": second.key, "response": ""}]
    responses = tmp_path / "responses.jsonl"
    responses.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")

    main(["eval", "score", "--benchmark", "muldimif", "--responses", str(responses), "--out", str(tmp_path / "out"),
          "--data", str(MULDIMIF_DATA)])

    verdicts = [json.loads(line) for line in (tmp_path / "out" / "verdicts.jsonl").read_text().splitlines()]
    assert verdicts[0]["strict"] == [True, False, True, True]
    first_passes = [True, False, True, True]
    second_passes = [[run_verifier(v, row["response"], k).passed is True for v, k in zip(second.verifier_ids,
                                                                                         second.kwargs)]
                     for row in rows[1:]]
    assert [verdict["strict"] for verdict in verdicts[1:]] == second_passes
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    expected_overall = (all(first_passes) + sum(map(all, second_passes)) / 2) / 2
    expected_constraints = (sum(first_passes) + sum(map(sum, second_passes)) / 2) / (len(first_passes)
                                                                                      + len(second.categories))
    assert (summary["num_prompts"], summary["num_responses"]) == (2, 3)
    assert summary["overall"] == pytest.approx(expected_overall)
    assert summary["constraint_level"] == pytest.approx(expected_constraints)
    assert summary["by_category"]["Format_Table"] == pytest.approx(0.0)
    # Format: sample 0 fails its table rule; sample 1's XML rule holds on both responses (no tag at all)
    assert summary["by_dimension"]["Format"] == pytest.approx(0.5)
    assert summary["by_difficulty"][by_key[first.key].difficulty]["overall"] == pytest.approx(0.0)
