"""AdvancedIF: its data layout read from a hand-made file, both judge protocols scored through a judge server on
127.0.0.1 against a summary computed by hand, `rtt eval run` on the tiny model, and every error one clear line."""

import csv
import json

import pytest
from transformers import AutoTokenizer

from advancedif_judge import AdvancedIFJudgeServer
from rubrics2tokens.cli.main import main
from rubrics2tokens.data.schema import DataError
from rubrics2tokens.evaluation.advancedif import load_advancedif
from rubrics2tokens.evaluation.generate import chat_prompt_ids
from rubrics2tokens.judge.rubric_set import parse_reply

ROWS = [  # (task as the file spells it, conversation, rubrics); see advancedif_judge.py for the markers
    ("complex_if_single_turn_v5", [{"role": "user", "content": "Write a haiku about rain."}],
     ["PASS five, seven and five syllables", "PASS mentions rain"]),
    ("complex_if_single_turn_oss", [{"role": "user", "content": "List three fruits."}],
     ["PASS exactly three items", "uses a numbered list"]),
    ("carried_context_multi_turn_eval_v5",
     [{"role": "user", "content": "My name is Ada. Remember it."}, {"role": "assistant", "content": "Noted, Ada."},
      {"role": "user", "content": "Greet me by name."}],
     ["PASS greets Ada by name [noflag]", "PASS is one sentence"]),
    ("carried_context_multi_turn_oss",
     [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Plan a day in Rome."},
      {"role": "assistant", "content": "Morning: the Forum. Afternoon: the Vatican."},
      {"role": "user", "content": "Now make it two days, \"quoted\", with commas, and a\nline break."}],
     ["keeps Rome [noflag]"]),
    ("system_steerability_v2",
     [{"role": "system", "content": "Answer only in French."}, {"role": "user", "content": "What is the capital?"}],
     ["PASS answers in French", "PASS names the city [maybe]"]),
    ("system_steerability_oss",
     [{"role": "system", "content": "Answer only in uppercase."}, {"role": "user", "content": "What is the capital?"}],
     ["PASS all uppercase [flagpass]", "names the city"]),
]
RESPONSES = [(0, "Rain on the roof."), (0, "FAIL-ALL: a second response to the first prompt"), (1, "1. apple"),
             (2, "Hello, Ada."), (3, "Day 1, day 2."), (4, "Rome."), (5, "ROME.")]


def write_csv(path, rows):
    """The release's layout: JSON in the CSV's cells, and the rubrics JSON-encoded once more inside the metadata."""
    with open(path, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["benchmark_name", "conversation_history", "prompt_metadata"])
        for task, conversation, rubrics in rows:
            writer.writerow([task, json.dumps(conversation), json.dumps({"rubrics": json.dumps(rubrics)})])
    return path


def write_responses(path, responses):
    path.write_text("".join(json.dumps({"key": key, "response": text}) + "\n" for key, text in responses))
    return path


@pytest.fixture
def data(tmp_path):
    return write_csv(tmp_path / "if_oss_full_data.csv", ROWS)


@pytest.fixture
def judge_server():
    with AdvancedIFJudgeServer() as server:
        yield server


def scores(n_prompts, n_responses, n_rubrics, satisfied_all, all_rubrics_pass, rubric_satisfaction, flags,
           rubric_verdicts):
    return {"n_prompts": n_prompts, "n_responses": n_responses, "n_rubrics": n_rubrics,
            "satisfied_all": satisfied_all, "all_rubrics_pass": all_rubrics_pass,
            "rubric_satisfaction": rubric_satisfaction, "unknown": {"flags": flags, "rubric_verdicts": rubric_verdicts}}


def test_the_file_layout_is_read_with_canonical_task_names_and_row_index_keys(data, tmp_path):
    prompts = load_advancedif(data)
    assert [item.key for item in prompts] == ["0", "1", "2", "3", "4", "5"]
    assert [item.task for item in prompts] == ["complex_if_single_turn"] * 2 + ["carried_context_multi_turn"] * 2 \
        + ["system_steerability"] * 2
    assert [list(item.messages) for item in prompts] == [conversation for _, conversation, _ in ROWS]
    assert [list(item.rubrics) for item in prompts] == [rubrics for _, _, rubrics in ROWS]
    assert prompts[3].prompt == ROWS[3][1][-1]["content"]
    # JSONL with the same fields, decoded or JSON-encoded as in the CSV, is read alike
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text("".join(json.dumps({"benchmark_name": task, "conversation_history": conversation,
                                         "prompt_metadata": {"rubrics": rubrics} if index % 2 else
                                         json.dumps({"rubrics": json.dumps(rubrics)})}) + "\n"
                             for index, (task, conversation, rubrics) in enumerate(ROWS)))
    assert load_advancedif(jsonl) == prompts


def test_eval_score_reports_both_protocols_as_computed_by_hand(data, tmp_path, judge_server, capsys):
    responses = write_responses(tmp_path / "responses.jsonl", RESPONSES)
    main(["eval", "score", "--benchmark", "advancedif", "--data", str(data), "--responses", str(responses),
          "--out", str(tmp_path / "out"), "--judge-base-url", judge_server.base_url, "--judge-model", "test-judge"])

    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    # per prompt (its responses averaged), SATISFIED_ALL flag / all rubrics YES / rubrics YES of its rubrics:
    # 0: 1 then 0 (FAIL-ALL) -> 0.5 / 0.5 / 1 of 2   1: false / no / 1 of 2   2: no flag / yes / 2 of 2
    # 3: no flag / no / 0 of 1   4: true / no ([maybe] is unknown) / 1 of 2   5: true ([flagpass]) / no / 1 of 2
    assert summary == {
        "benchmark": "advancedif", "judge": "test-judge",
        **scores(6, 7, 11, 2.5 / 6, 1.5 / 6, 6 / 11, flags=2, rubric_verdicts=1),
        "by_task": {"complex_if_single_turn": scores(2, 3, 4, 0.25, 0.25, 0.5, flags=0, rubric_verdicts=0),
                    "carried_context_multi_turn": scores(2, 2, 3, None, 0.5, 2 / 3, flags=2, rubric_verdicts=0),
                    "system_steerability": scores(2, 2, 4, 1.0, 0.0, 0.5, flags=0, rubric_verdicts=1)}}

    verdicts = [json.loads(line) for line in (tmp_path / "out" / "verdicts.jsonl").read_text().splitlines()]
    assert [(row["key"], row["response_index"]) for row in verdicts] == [
        ("0", 0), ("0", 1), ("1", 0), ("2", 0), ("3", 0), ("4", 0), ("5", 0)]
    assert verdicts[5]["per_rubric"] == {"verdicts": [True, None], "all_pass": False}
    assert verdicts[6]["reference"]["satisfied_all"] is True and verdicts[6]["reference"]["verdicts"] == [True, False]
    assert verdicts[3]["reference"]["satisfied_all"] is None and "SATISFIED_ALL" not in verdicts[3]["reference"]["reply"]

    # the judge saw the whole conversation, system prompt and earlier turns included, in both protocols
    asked = [conversation[-1]["content"] for conversation in judge_server.conversations]
    rome = [question for question in asked if "Day 1, day 2." in question]
    assert len(rome) == 2  # its one rubric, and the all-rubrics question
    assert all("<system>\nBe brief.\n</system>\n\n<user>\nPlan a day in Rome.\n</user>\n\n<assistant>\nMorning: "
               in question for question in rome)
    # a lone user turn is asked about as it is, as training asks the judge
    assert any(question.startswith("<instruction>\nList three fruits.\n</instruction>") for question in asked)
    out = capsys.readouterr().out
    assert "satisfied_all       0.4167" in out and "carried_context_multi_turn (2 prompts):" in out
    assert "satisfied_all         null   (" in out


def test_eval_run_answers_through_the_chat_template_and_scores_with_the_judge(data, tmp_path, tiny_model_dir,
                                                                               judge_server):
    main(["eval", "run", "--benchmark", "advancedif", "--data", str(data), "--model", str(tiny_model_dir),
          "--out", str(tmp_path / "run"), "--limit", "0", "--max-new-tokens", "8",
          "--judge-base-url", judge_server.base_url, "--judge-model", "test-judge"])

    responses = [json.loads(line) for line in (tmp_path / "run" / "responses.jsonl").read_text().splitlines()]
    assert sorted(row["key"] for row in responses) == ["0", "1", "2", "3", "4", "5"]
    assert {row["key"]: row["prompt"] for row in responses} == {
        str(index): conversation[-1]["content"] for index, (_, conversation, _) in enumerate(ROWS)}
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    # as in the hand computation above, with one response (not FAIL-ALL) to prompt 0
    assert {key: summary[key] for key in ("n_prompts", "satisfied_all", "all_rubrics_pass", "rubric_satisfaction",
                                          "unknown")} == {
        "n_prompts": 6, "satisfied_all": 3 / 6, "all_rubrics_pass": 2 / 6, "rubric_satisfaction": 7 / 11,
        "unknown": {"flags": 2, "rubric_verdicts": 1}}


def test_system_prompts_and_earlier_turns_go_through_the_chat_template_as_given(data, tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    multi_turn = load_advancedif(data)[3]
    expected = ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nPlan a day in Rome.<|im_end|>\n"
                "<|im_start|>assistant\nMorning: the Forum. Afternoon: the Vatican.<|im_end|>\n<|im_start|>user\n"
                f"{multi_turn.prompt}<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer.decode(chat_prompt_ids(tokenizer, multi_turn)) == expected


def test_a_local_judge_scores_too_and_unreadable_replies_are_unknown_never_guessed(data, tmp_path, tiny_model_dir):
    """The tiny model's greedy replies are neither YES/NO nor JSON: every verdict and flag is unknown, and
    satisfied_all is null rather than 0."""
    responses = write_responses(tmp_path / "responses.jsonl", RESPONSES)
    main(["eval", "score", "--benchmark", "advancedif", "--data", str(data), "--responses", str(responses),
          "--out", str(tmp_path / "out"), "--judge-local", str(tiny_model_dir), "--judge-reply-tokens", "8"])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["judge"], summary["satisfied_all"], summary["all_rubrics_pass"], summary["unknown"]) == (
        str(tiny_model_dir), None, 0.0, {"flags": 7, "rubric_verdicts": 13})


@pytest.mark.parametrize("reply, flag, verdicts", [
    ('{"rubrics": [{"satisfied": true}, {"satisfied": false}], "SATISFIED_ALL": false}', False, (True, False)),
    ('```json\n{"rubrics": [{"satisfied": "YES"}, {"satisfied": "no"}], "SATISFIED_ALL": "YES"}\n```',
     True, (True, False)),
    ('<think>Rubric 1 holds.</think>\n{"rubrics": [{"satisfied": true}, {"satisfied": true}], "SATISFIED_ALL": true}',
     True, (True, True)),
    ('{"rubrics": [{"satisfied": true}], "SATISFIED_ALL": true}', True, (None, None)),  # one entry for two rubrics
    ('{"rubrics": [{"satisfied": "mostly"}, {"satisfied": true}], "SATISFIED_ALL": 1}', None, (None, True)),
    ('Overall the response satisfies all rubrics: {"SATISFIED_ALL": true}', None, (None, None)),
    (None, None, (None, None)),
])
def test_the_rubric_set_reply_is_read_strictly(reply, flag, verdicts):
    verdict = parse_reply(reply, 2)
    assert (verdict.satisfied_all, verdict.rubric_verdicts, verdict.reply) == (flag, verdicts, reply)


@pytest.mark.parametrize("row, field, problem", [
    (("complex_if_single_turn_v5", "[{\"role\": \"user\", \"content\": ", '{"rubrics": "[\\"a\\"]"}'),
     "conversation_history", "is not valid JSON"),
    (("complex_if_single_turn_v5", '[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]',
      '{"rubrics": "[\\"a\\"]"}'), "conversation_history", "must end on the user turn to answer"),
    (("complex_if_single_turn_v5", '[{"role": "narrator", "content": "Hi"}]', '{"rubrics": "[\\"a\\"]"}'),
     "conversation_history", "message 0 must be"),
    (("complex_if_single_turn_v5", '[{"role": "user", "content": "Hi"}]', '{"rubrics": "a rubric"}'),
     "prompt_metadata", "its 'rubrics' is not valid JSON"),
    (("complex_if_single_turn_v5", '[{"role": "user", "content": "Hi"}]', '{"rubrics": "[]"}'),
     "prompt_metadata", "non-empty list of non-empty strings"),
    (("complex_if_single_turn_v5", '[{"role": "user", "content": "Hi"}]', '{"other": 1}'),
     "prompt_metadata", "its 'rubrics' must be a JSON list, got NoneType"),
    (("open_qa_v1", '[{"role": "user", "content": "Hi"}]', '{"rubrics": "[\\"a\\"]"}'),
     "benchmark_name", "unknown task 'open_qa_v1'"),
])
def test_a_bad_data_row_is_one_line_naming_the_file_row_and_field(tmp_path, capsys, row, field, problem):
    data = tmp_path / "data.csv"
    with open(data, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["benchmark_name", "conversation_history", "prompt_metadata"])
        writer.writerow(["system_steerability_v2", '[{"role": "user", "content": "Fine."}]', '{"rubrics": "[\\"a\\"]"}'])
        writer.writerow(row)
    responses = write_responses(tmp_path / "responses.jsonl", [(0, "x")])
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "score", "--benchmark", "advancedif", "--data", str(data), "--responses", str(responses),
              "--out", str(tmp_path / "out"), "--judge-base-url", "http://127.0.0.1:9/v1", "--judge-model", "j"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"rtt: error: {data}, row 2, field '{field}': ") and problem in error
    assert error.endswith("(key 1)") and "\n" not in error


def test_a_csv_without_a_column_of_the_layout_is_refused(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("benchmark_name,conversation\nsystem_steerability_v2,[]\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"row 0, field 'conversation_history': not a column of the header, which "
                                        r"must name benchmark_name, conversation_history, prompt_metadata \(it "
                                        r"names benchmark_name, conversation\)"):
        load_advancedif(data)


@pytest.mark.parametrize("extra, message", [
    ([], "AdvancedIF is not shipped with rtt"),
    (["--data", "DATA"], "AdvancedIF is scored by an LLM judge: give --judge-base-url URL --judge-model NAME"),
    (["--data", "DATA", "--judge-base-url", "http://127.0.0.1:9/v1"], "AdvancedIF is scored by an LLM judge"),
    (["--data", "DATA", "--judge-local", "LOCAL", "--judge-model", "j"], "name one judge"),
])
def test_options_that_cannot_score_advancedif_are_refused_before_anything_runs(data, tmp_path, capsys, extra,
                                                                              message):
    responses = write_responses(tmp_path / "responses.jsonl", [(0, "x")])
    extra = [str(data) if value == "DATA" else value for value in extra]
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "score", "--benchmark", "advancedif", "--responses", str(responses), "--out",
              str(tmp_path / "out"), *extra])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_eval_run_without_a_judge_is_refused_before_it_generates(data, tmp_path, tiny_model_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "run", "--benchmark", "advancedif", "--data", str(data), "--model", str(tiny_model_dir),
              "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2 and "AdvancedIF is scored by an LLM judge" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_judge_options_are_refused_for_a_benchmark_scored_by_code(tmp_path, capsys):
    responses = write_responses(tmp_path / "responses.jsonl", [(1000, "x")])
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "score", "--benchmark", "ifeval", "--responses", str(responses), "--out", str(tmp_path / "out"),
              "--judge-model", "j"])
    assert exit_info.value.code == 2
    assert "--judge-model: the judge options are for --benchmark advancedif only" in capsys.readouterr().err


@pytest.mark.parametrize("row, field, problem", [
    ({"key": 6, "response": "x"}, "key", "6 is not a row of the AdvancedIF data (keys 0 to 5)"),
    ({"response": "x"}, "key", "missing"),
    ({"key": 4, "prompt": "What is the capital of France?", "response": "x"}, "prompt", "is not the last user turn"),
])
def test_a_bad_response_row_names_the_file_row_and_field(data, tmp_path, capsys, row, field, problem):
    responses = tmp_path / "responses.jsonl"
    responses.write_text(json.dumps({"key": 0, "response": "fine"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "score", "--benchmark", "advancedif", "--data", str(data), "--responses", str(responses),
              "--out", str(tmp_path / "out"), "--judge-base-url", "http://127.0.0.1:9/v1", "--judge-model", "j"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert f"{responses}, row 2, field '{field}'" in error and problem in error
