"""The seeded testbed prompt generator: determinism, sampling rules, satisfiability, round-trip."""

import hashlib
import itertools
import json

import pytest

from rubrics2tokens.data.row_formats import load_prompt_rows
from rubrics2tokens.data.synthetic import (DEFAULT_FAMILIES, FAMILIES, FORBIDDEN_WORDS, LENGTH_FLOOR_WORDS,
                                           MIN_DISTINCT_RATIOS, QUALITY_FAMILIES, generate_rows, min_tokens_needed,
                                           write_testbed)
from rubrics2tokens.models import DEFAULT_POLICY, load_tokenizer
from rubrics2tokens.verifiers import rules
from rubrics2tokens.verifiers.registry import VERIFIERS, run_verifier

# Written out here, not imported, so the tests check the generator against the brief, not itself.
NEAR_EMPTY_PASSES = {"max_words", "forbidden_word", "no_commas", "all_lowercase", "no_repeated_sentences",
                     "distinct_words", "end_with_sentence"}
QUALITY = ["no_repeated_sentences", "distinct_words", "end_with_sentence"]
SHORT_ANSWER_FAILS = {"min_words", "exact_bullets", "n_paragraphs", "end_with_phrase", "include_keyword",
                      "title", "start_with_word"}


@pytest.fixture(scope="module")
def many_rows():
    return generate_rows(2000, seed=11)


def constraints_of(row):
    """Family name -> kwargs of one generated row."""
    return {rubric.verifier.removeprefix("testbed:"): rubric.kwargs for rubric in row.rubrics}


def compliant_response(constraints):
    """A response built to satisfy every constraint of a prompt, so that each prompt is shown satisfiable."""
    opening = []
    if "start_with_word" in constraints:
        opening.append(constraints["start_with_word"]["word"])
    if "include_keyword" in constraints:
        opening += [constraints["include_keyword"]["keyword"]] * constraints["include_keyword"]["min_count"]
    opening.append("calm")
    blocks = [" ".join(opening)]
    if "title" in constraints:
        blocks[0] = "<<a calm title>>\n" + blocks[0]
    if "exact_bullets" in constraints:
        blocks.append("\n".join(f"* point {i}" for i in range(constraints["exact_bullets"]["n"])))
    while len(blocks) < constraints.get("n_paragraphs", {}).get("n", 0):
        blocks.append("more calm words")
    ending = constraints.get("end_with_phrase", {}).get("phrase", "")
    word_count = len(rules.find_words("\n\n".join(blocks) + " " + ending))
    missing_words = constraints.get("min_words", {}).get("n", 0) - word_count
    blocks[0] += " calm" * max(missing_words, 0)
    return ("\n\n".join(blocks) + " " + ending).rstrip()


def fresh_words():
    """Distinct lowercase made-up words ("baba", "babe", ...), none of them a forbidden word."""
    syllables = ["".join(pair) for pair in itertools.product("bdgklmnprst", "aeiou")]
    return ("".join(pair) for pair in itertools.product(syllables, repeat=2) if "".join(pair) not in FORBIDDEN_WORDS)


def quality_compliant_response(constraints):
    """Like `compliant_response`, in words that never repeat and sentences that all end in a period, so it
    also satisfies the quality families."""
    fresh = fresh_words()
    opening = [constraints["start_with_word"]["word"]] if "start_with_word" in constraints else []
    if "include_keyword" in constraints:
        opening += [constraints["include_keyword"]["keyword"]] * constraints["include_keyword"]["min_count"]
    blocks = [" ".join(opening + [next(fresh) for _ in range(6)]) + "."]
    if "title" in constraints:
        blocks[0] = "<<a calm title>>\n" + blocks[0]
    if "exact_bullets" in constraints:
        blocks.append("\n".join(f"* {next(fresh)} {next(fresh)}." for _ in range(constraints["exact_bullets"]["n"])))
    while len(blocks) < constraints.get("n_paragraphs", {}).get("n", 0):
        blocks.append(f"{next(fresh)} {next(fresh)} {next(fresh)}.")
    ending = constraints.get("end_with_phrase", {}).get("phrase", "")
    floor = max(constraints.get(name, {}).get("n", 0) for name in ("min_words", "length_floor"))
    missing_words = floor - len(rules.find_words(" ".join(blocks) + ending))
    blocks[0] += "".join(f" {next(fresh)}" for _ in range(max(missing_words, 0))) + "." * (missing_words > 0)
    return ("\n\n".join(blocks) + " " + ending).rstrip()


def fingerprint(rows):
    blob = json.dumps([[r.id, r.prompt, [[x.description, x.verifier, x.kwargs, x.weight] for x in r.rubrics]]
                       for r in rows], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def test_the_default_prompts_are_those_of_before_the_quality_families():
    # Hashes of the rows generated before the quality families existed: the default must not move a byte.
    mix = ["all_lowercase", "include_keyword", "min_words", "end_with_phrase", "no_commas", "exact_bullets"]
    assert fingerprint(generate_rows(200, seed=0)) == \
        "ab1ac34dbd1209dbab264046a12e3fc490aaf4be2e1c827e8ed62a0a82e40ee2"
    assert fingerprint(generate_rows(200, seed=7, max_tokens=96)) == \
        "ad8a4f5d8a79f66358291dea7d04fe22c845479a81653f2e3fb3dc8e858ca528"
    assert fingerprint(generate_rows(100, seed=3, min_rubrics=4, max_rubrics=4, families=mix)) == \
        "c557b1a7e122447a8c9d7e36286e46b9994bd745e1e95f4103c5b8c86dcbebea"
    assert generate_rows(50, seed=2, quality_rubrics=[]) == generate_rows(50, seed=2, quality_rubrics=None) \
        == generate_rows(50, seed=2)


@pytest.mark.parametrize("max_tokens", [None, 96])
def test_quality_rubrics_are_appended_to_every_prompt(max_tokens):
    plain = generate_rows(300, seed=5, max_tokens=max_tokens)
    rows = generate_rows(300, seed=5, max_tokens=max_tokens, quality_rubrics=QUALITY)
    ratios = set()
    for before, row in zip(plain, rows, strict=True):
        # the drawn constraints are those of the plain call; the quality ones follow, in the order asked
        assert row.id == before.id and row.rubrics[:-3] == before.rubrics
        assert [rubric.verifier for rubric in row.rubrics[-3:]] == [f"testbed:{name}" for name in QUALITY]
        instructions = [FAMILIES[name].instruction(rubric.kwargs) for name, rubric in zip(QUALITY, row.rubrics[-3:])]
        assert row.prompt == " ".join([before.prompt, *instructions])
        assert row.messages == [{"role": "user", "content": row.prompt}]
        ratios.add(row.rubrics[-2].kwargs["min_ratio"])
        if max_tokens is not None:
            assert min_tokens_needed(constraints_of(row)) <= max_tokens
    assert ratios == set(MIN_DISTINCT_RATIOS)
    assert generate_rows(300, seed=5, max_tokens=max_tokens, quality_rubrics=QUALITY) == rows


def test_prompts_with_quality_rubrics_are_satisfiable_and_fail_the_hacks():
    rows = generate_rows(300, seed=6, quality_rubrics=QUALITY)
    repetition = "the journey of life " * 30 + "the journey of"
    for row in rows:
        response = quality_compliant_response(constraints_of(row))
        for rubric in row.rubrics:
            assert run_verifier(rubric.verifier, response, rubric.kwargs).passed, (rubric.verifier, response)
        quality = {rubric.verifier: run_verifier(rubric.verifier, repetition, rubric.kwargs).passed
                   for rubric in row.rubrics[-3:]}
        assert quality == {"testbed:no_repeated_sentences": True, "testbed:distinct_words": False,
                           "testbed:end_with_sentence": False}
        assert any(run_verifier(r.verifier, "", r.kwargs).passed is False for r in row.rubrics)


def test_a_length_floor_in_every_prompt_fails_the_short_answers_that_hacked_the_reward():
    """The fourth quality family (docs/study.md, the intra study: GRPO-CSR's answers shrank to 36-49 tokens)."""
    mix = ["all_lowercase", "include_keyword", "min_words", "end_with_phrase", "no_commas", "exact_bullets"]
    plain = generate_rows(200, seed=7, families=mix, quality_rubrics=QUALITY)
    rows = generate_rows(200, seed=7, families=mix, quality_rubrics=[*QUALITY, "length_floor"])
    hacks = ["Can't wait to wrap up! Keep moving!", "I mentioned that I could help with your questions about space "
             "life. But I just needed to make sure you understood exactly one thing. That is the message."]
    for before, row in zip(plain, rows, strict=True):
        floor = row.rubrics[-1]
        # the drawn constraints are the plain call's (no max_words, no completion limit to clash with the floor;
        # the other quality arguments after the first row may differ: the floor draws from their stream)
        assert row.rubrics[:-4] == before.rubrics[:-3] and floor.verifier == "testbed:length_floor"
        assert LENGTH_FLOOR_WORDS[0] <= floor.kwargs["n"] <= LENGTH_FLOOR_WORDS[1]
        response = quality_compliant_response(constraints_of(row))
        assert all(run_verifier(r.verifier, response, r.kwargs).passed for r in row.rubrics), response
        for hack in hacks:
            verdict = run_verifier(floor.verifier, hack, floor.kwargs)
            assert verdict.passed is False and verdict.stop, "too few words: the stop is blamed, as for min_words"
    assert not FAMILIES["length_floor"].near_empty_passes


def test_quality_families_named_in_families_are_drawn_in_the_mix():
    rows = generate_rows(500, seed=8, families=list(FAMILIES))
    seen = set()
    for row in rows:
        constraints = constraints_of(row)
        response = quality_compliant_response(constraints)
        assert all(run_verifier(r.verifier, response, r.kwargs).passed for r in row.rubrics), response
        seen |= constraints.keys()
    assert seen == set(FAMILIES) and set(QUALITY_FAMILIES) == {*QUALITY, "length_floor"}


def test_quality_rubrics_reach_the_written_file(tmp_path):
    path = write_testbed(tmp_path / "testbed.jsonl", 5, seed=1, quality_rubrics=["end_with_sentence"])
    assert load_prompt_rows(path) == generate_rows(5, seed=1, quality_rubrics=["end_with_sentence"])
    assert all(row.rubrics[-1].verifier == "testbed:end_with_sentence" for row in load_prompt_rows(path))


def test_same_seed_same_rows_and_different_seed_different_rows():
    assert generate_rows(50, seed=3) == generate_rows(50, seed=3)
    assert [row.prompt for row in generate_rows(50, seed=3)] != [row.prompt for row in generate_rows(50, seed=4)]


def test_row_shape():
    rows = generate_rows(20, seed=7)
    assert [row.id for row in rows[:2]] == ["testbed-7-000000", "testbed-7-000001"]
    for row in rows:
        assert row.source == "testbed"
        assert row.messages == [{"role": "user", "content": row.prompt}]
        assert all(rubric.weight == 1.0 and rubric.description for rubric in row.rubrics)
        # every instruction follows the task, in rubric order
        instructions = [FAMILIES[name].instruction(kwargs) for name, kwargs in constraints_of(row).items()]
        assert row.prompt.endswith(" " + " ".join(instructions))


def test_two_to_five_rubrics_one_per_family(many_rows):
    for row in many_rows:
        families = [rubric.verifier for rubric in row.rubrics]
        assert 2 <= len(families) <= 5 and len(set(families)) == len(families)


def test_no_conflicting_constraints(many_rows):
    for row in many_rows:
        constraints = constraints_of(row)
        assert not {"start_with_word", "title"} <= constraints.keys()
        if {"max_words", "min_words"} <= constraints.keys():
            assert constraints["min_words"]["n"] < constraints["max_words"]["n"] - 20
        if "forbidden_word" in constraints:
            forbidden = constraints["forbidden_word"]["word"]
            assert forbidden != constraints.get("include_keyword", {}).get("keyword")
            assert forbidden != constraints.get("start_with_word", {}).get("word")
            assert forbidden not in constraints.get("end_with_phrase", {}).get("phrase", "").split()
        for kwargs in constraints.values():
            for value in kwargs.values():
                if isinstance(value, str):
                    assert value == value.lower() and "," not in value


def test_every_prompt_resists_collapse(many_rows):
    for row in many_rows:
        families = constraints_of(row).keys()
        if families & NEAR_EMPTY_PASSES:
            assert families & SHORT_ANSWER_FAILS


def test_the_empty_response_fails_every_prompt(many_rows):
    for row in many_rows:
        verdicts = [run_verifier(rubric.verifier, "", rubric.kwargs) for rubric in row.rubrics]
        assert any(verdict.passed is False for verdict in verdicts), row.prompt


def test_every_rubric_has_a_registered_verifier_that_accepts_its_kwargs(many_rows):
    for row in many_rows[:300]:
        for rubric in row.rubrics:
            # called directly, not through run_verifier, so a kwargs error raises instead of turning unknown
            verdict = VERIFIERS[rubric.verifier]("Some sample text, with words.\n\n* one\n* two", **rubric.kwargs)
            assert verdict.passed is not None


def test_every_generated_prompt_is_satisfiable(many_rows):
    seen_families = set()
    for row in many_rows[:500]:
        response = compliant_response(constraints_of(row))
        for rubric in row.rubrics:
            assert run_verifier(rubric.verifier, response, rubric.kwargs).passed, (rubric.verifier, response)
        seen_families |= constraints_of(row).keys()
    assert seen_families == set(DEFAULT_FAMILIES) == set(FAMILIES) - {*QUALITY, "length_floor"}


@pytest.mark.parametrize("max_tokens", [48, 96])
def test_every_prompt_is_satisfiable_within_the_completion_limit(max_tokens):
    # A compliant response, in the embedded policy's own tokens plus its EOS, fits the limit the rows were drawn for.
    tokenizer = load_tokenizer(DEFAULT_POLICY)
    rows = generate_rows(300, seed=4, max_tokens=max_tokens)
    lengths = []
    for row in rows:
        constraints = constraints_of(row)
        assert min_tokens_needed(constraints) <= max_tokens
        response = compliant_response(constraints)
        assert all(run_verifier(r.verifier, response, r.kwargs).passed for r in row.rubrics)
        lengths.append(len(tokenizer(response, add_special_tokens=False)["input_ids"]) + 1)
    assert max(lengths) <= max_tokens
    unbounded = [min_tokens_needed(constraints_of(row)) for row in generate_rows(300, seed=4)]
    assert max(unbounded) > max_tokens, "without the limit some prompts need more: the limit is what filtered them"


def test_a_limit_no_prompt_fits_is_refused():
    with pytest.raises(ValueError, match="satisfiable within 20 tokens"):
        generate_rows(3, families=["min_words", "no_commas"], min_rubrics=2, max_rubrics=2, max_tokens=20)


def test_hand_written_response_for_a_fixed_prompt():
    row = generate_rows(1, seed=0, families=["title", "exact_bullets", "no_commas", "end_with_phrase"],
                        min_rubrics=4, max_rubrics=4)[0]
    constraints = constraints_of(row)
    bullets = "\n".join(f"- tip number {i}" for i in range(constraints["exact_bullets"]["n"]))
    response = f"<<Tips>>\n{bullets}\n{constraints['end_with_phrase']['phrase']}\n"
    assert all(run_verifier(rubric.verifier, response, rubric.kwargs).passed for rubric in row.rubrics)


def test_families_can_be_restricted():
    rows = generate_rows(30, seed=1, families=["no_commas", "min_words"])  # max_rubrics=5 is capped at 2
    assert all(constraints_of(row).keys() == {"no_commas", "min_words"} for row in rows)


def test_round_trip_through_jsonl(tmp_path):
    rows = generate_rows(40, seed=5)
    path = write_testbed(tmp_path / "testbed.jsonl", 40, seed=5)
    assert load_prompt_rows(path) == rows


@pytest.mark.parametrize("arguments, message", [
    ({"n": 3, "families": ["no_commas", "emojis"]}, "unknown testbed families \\['emojis'\\]"),
    ({"n": 3, "families": "no_commas"}, "not the string"),
    ({"n": 3, "families": ["title", "title"]}, "must not repeat"),
    ({"n": 3, "min_rubrics": 4, "max_rubrics": 3}, "min_rubrics"),
    ({"n": 3, "families": ["title"], "min_rubrics": 2}, "number of families"),
    ({"n": -1}, "n must be"),
    ({"n": 3, "families": ["no_commas", "all_lowercase"]}, "could not draw"),
    ({"n": 3, "families": ["start_with_word", "title"]}, "could not draw"),
    ({"n": 3, "quality_rubrics": ["distinct_words", "no_commas"]}, "unknown quality rubrics \\['no_commas'\\]"),
    ({"n": 3, "quality_rubrics": "distinct_words"}, "not the string"),
    ({"n": 3, "quality_rubrics": ["distinct_words", "distinct_words"]}, "must not repeat"),
    ({"n": 3, "families": ["no_commas", "min_words", "distinct_words"], "quality_rubrics": ["distinct_words"]},
     "also in families"),
    ({"n": 3, "families": ["no_commas", "all_lowercase"], "quality_rubrics": ["end_with_sentence"]},
     "with quality rubrics \\['end_with_sentence'\\]"),
])
def test_bad_arguments_raise(arguments, message):
    with pytest.raises(ValueError, match=message):
        generate_rows(**arguments)
