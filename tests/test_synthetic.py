"""The seeded testbed prompt generator: determinism, sampling rules, satisfiability, round-trip."""

import pytest

from rubrics2tokens.data.row_formats import load_prompt_rows
from rubrics2tokens.data.synthetic import FAMILIES, generate_rows, min_tokens_needed, write_testbed
from rubrics2tokens.models import DEFAULT_POLICY, load_tokenizer
from rubrics2tokens.verifiers import rules
from rubrics2tokens.verifiers.registry import VERIFIERS, run_verifier

# Written out here, not imported, so the tests check the generator against the brief, not itself.
NEAR_EMPTY_PASSES = {"max_words", "forbidden_word", "no_commas", "all_lowercase"}
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
    assert seen_families == set(FAMILIES)


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
])
def test_bad_arguments_raise(arguments, message):
    with pytest.raises(ValueError, match=message):
        generate_rows(**arguments)
