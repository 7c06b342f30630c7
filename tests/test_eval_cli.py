"""`rtt eval score` on responses taken from the official IFEval reference, checked against a hand computation."""

import json

import pytest

from rubrics2tokens.cli.main import main
from tests_paths import IFEVAL_DATA, IFEVAL_LOOSE, IFEVAL_STRICT, read_rows

KNOWN_DISAGREEMENTS = {1389, 1645, 1879}  # see test_ifeval.py: skipped so the reference is the expected value


def _expected_summary(strict_rows, loose_rows, doubled):
    """The four accuracies by hand from the official verdicts; each prompt in `doubled` also has an empty
    response (which fails every instruction), so its values are halved."""
    expected = {}
    for mode, rows in (("strict", strict_rows), ("loose", loose_rows)):
        weights = [0.5 if index in doubled else 1.0 for index in range(len(rows))]
        expected[f"prompt_level_{mode}"] = sum(
            weight * row["follow_all_instructions"] for weight, row in zip(weights, rows)) / len(rows)
        expected[f"instruction_level_{mode}"] = sum(
            weight * sum(row["follow_instruction_list"]) for weight, row in zip(weights, rows)
        ) / sum(len(row["instruction_id_list"]) for row in rows)
    return expected


def test_eval_score_matches_a_hand_computation(tmp_path, capsys):
    keys = {row["prompt"]: row["key"] for row in read_rows(IFEVAL_DATA)}
    strict_rows = [row for row in read_rows(IFEVAL_STRICT)
                   if keys[row["prompt"]] not in KNOWN_DISAGREEMENTS][:30]
    loose_by_prompt = {row["prompt"]: row for row in read_rows(IFEVAL_LOOSE)}
    loose_rows = [loose_by_prompt[row["prompt"]] for row in strict_rows]
    doubled = {0, 3, 7, 12, 20}

    responses = tmp_path / "responses.jsonl"
    with open(responses, "w", encoding="utf-8") as out:
        for index, row in enumerate(strict_rows):
            # half the rows name their prompt by key, half by text
            prompt_ref = {"key": keys[row["prompt"]]} if index % 2 else {"prompt": row["prompt"]}
            out.write(json.dumps({**prompt_ref, "response": row["response"]}) + "\n")
            if index in doubled:
                out.write(json.dumps({**prompt_ref, "response": ""}) + "\n")

    main(["eval", "score", "--benchmark", "ifeval", "--responses", str(responses), "--out", str(tmp_path / "out"),
          "--data", str(IFEVAL_DATA)])

    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["num_prompts"], summary["num_responses"]) == (30, 35)
    for name, value in _expected_summary(strict_rows, loose_rows, doubled).items():
        assert summary[name] == pytest.approx(value), name
    assert summary["paper_names"]["prompt_level"] == "instruction-level accuracy (RTT paper)"

    verdicts = read_rows(tmp_path / "out" / "verdicts.jsonl")
    assert len(verdicts) == 35
    first_empty = verdicts[1]  # row 0 is doubled: its empty response comes second
    assert (first_empty["key"], first_empty["response_index"]) == (str(keys[strict_rows[0]["prompt"]]), 1)
    assert not any(first_empty["strict"]) and not any(first_empty["loose"])
    assert verdicts[0]["strict"] == strict_rows[0]["follow_instruction_list"]
    assert "rubric-level accuracy (RTT paper)" in capsys.readouterr().out


@pytest.mark.parametrize("row, field, problem", [
    ({"key": 1000}, "response", "must be a string"),
    ({"key": 999999, "response": "x"}, "key", "not a prompt key"),
    ({"response": "x"}, "key", "missing"),
])
def test_eval_score_names_the_file_row_and_field_of_a_bad_row(tmp_path, capsys, row, field, problem):
    responses = tmp_path / "responses.jsonl"
    responses.write_text(json.dumps({"key": 1000, "response": "fine"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "score", "--benchmark", "ifeval", "--responses", str(responses),
              "--out", str(tmp_path / "out"), "--data", str(IFEVAL_DATA)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert f"{responses}, row 2, field '{field}'" in error and problem in error
