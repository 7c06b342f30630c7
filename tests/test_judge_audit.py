"""`rtt judge audit` against judge servers on 127.0.0.1 whose answers are known, so every figure is known exactly:
a server that always says YES, one that answers what the verifier says, and one that answers neither YES nor NO."""

from __future__ import annotations

import json
import re
from typing import Callable

import pytest

from chat_server import ChatServer, Reply, completion
from rubrics2tokens.cli.main import main
from rubrics2tokens.data.schema import write_jsonl, write_prompt_rows
from rubrics2tokens.data.synthetic import generate_rows
from rubrics2tokens.judge.audit import Agreement
from rubrics2tokens.verifiers.registry import run_verifier

QUESTION = re.compile(r"<response>\n(.*)\n</response>\n\n<rubric>\n(.*)\n</rubric>", re.DOTALL)

RESPONSES = [
    "yes here is my answer without any capital letters and without a single comma in it at all",
    "Hello, World! This one has Capitals, commas, and few words.",
    "* one\n* two\n* three\n* four\n* five",
    "no",
]


def answering_server(answer: Callable[[str, str], str], usage: bool = False) -> ChatServer:
    """A chat-completions server whose reply to each judge question is ``answer(response, rubric)``; with
    ``usage`` its replies report 10 prompt tokens and 1 completion token each."""

    def reply(request: dict, headers: object) -> Reply:
        response, rubric = QUESTION.search(request["messages"][-1]["content"]).groups()
        return Reply(completion(answer(response, rubric), usage=(10, 1) if usage else None))

    return ChatServer(reply)


@pytest.fixture
def audit_files(tmp_path):
    """Testbed rows, every response above to each, and the verifiers' verdict per (response, rubric text)."""
    rows = generate_rows(6, seed=3)
    write_prompt_rows(rows, tmp_path / "rows.jsonl")
    write_jsonl([{"id": row.id, "response": response} for row in rows for response in RESPONSES],
                tmp_path / "responses.jsonl")
    truth = {(response, rubric.description): run_verifier(rubric.verifier, response, rubric.kwargs).passed
             for row in rows for rubric in row.rubrics for response in RESPONSES}
    labels = [(rubric.verifier, truth[response, rubric.description])
              for row in rows for response in RESPONSES for rubric in row.rubrics]
    return tmp_path, truth, labels


def run_audit_cli(folder, server: ChatServer, capsys) -> tuple[dict, str]:
    main(["judge", "audit", "--rows", str(folder / "rows.jsonl"), "--responses", str(folder / "responses.jsonl"),
          "--base-url", server.base_url, "--model", "test-judge", "--json", str(folder / "audit.json"),
          "--timeout-s", "5"])
    return json.loads((folder / "audit.json").read_text()), capsys.readouterr().out


def test_a_judge_that_always_says_yes_agrees_as_often_as_the_verifiers_pass(audit_files, capsys):
    folder, _, labels = audit_files
    with answering_server(lambda response, rubric: "YES", usage=True) as server:
        report, printed = run_audit_cli(folder, server, capsys)
    passes = sum(passed for _, passed in labels)
    assert 0 < passes < len(labels), "the label set holds passes and fails"
    overall = report["overall"]
    assert overall["n"] == len(labels) == report["questions"] and overall["answered"] == len(labels)
    assert overall["accuracy"] == passes / len(labels)
    assert overall["kappa"] == 0 and overall["false_pass"] == 1 and overall["false_fail"] == 0
    assert overall["unknown"] == 0
    for verifier, figures in report["by_verifier"].items():
        own = [passed for name, passed in labels if name == verifier]
        assert figures["n"] == len(own) and figures["accuracy"] == sum(own) / len(own)
        assert figures["kappa"] == (None if all(own) else 0)  # all passing: chance agreement is certain
        assert figures["false_pass"] == (None if all(own) else 1)
        assert figures["false_fail"] == (0 if any(own) else None)
    assert report["judge_cost"]["requests"] == server.requests == len(labels)  # no question repeats
    assert report["judge_cost"]["tokens"] == {"prompt": 10 * server.requests, "completion": server.requests}
    assert report["judge_cost"]["usage_complete"] is True
    assert "overall" in printed and f"tokens: {10 * server.requests} prompt" in printed


def test_a_judge_that_answers_the_truth_agrees_perfectly(audit_files, capsys):
    folder, truth, _ = audit_files
    with answering_server(lambda response, rubric: "YES" if truth[response, rubric] else "NO") as server:
        report, printed = run_audit_cli(folder, server, capsys)
    overall = report["overall"]
    assert overall["accuracy"] == 1 and overall["kappa"] == 1
    assert overall["false_pass"] == 0 and overall["false_fail"] == 0 and overall["unknown"] == 0
    assert all(figures["accuracy"] == 1 and figures["kappa"] in (1, None) for figures in report["by_verifier"].values())
    assert report["judge_cost"]["tokens"] is None and report["judge_cost"]["usage_complete"] is False
    assert "tokens: not reported" in printed


def test_a_judge_that_answers_garbage_is_all_unknown(audit_files, capsys):
    folder, _, labels = audit_files
    with answering_server(lambda response, rubric: "I think it might, perhaps.") as server:
        report, _ = run_audit_cli(folder, server, capsys)
    overall = report["overall"]
    assert overall["n"] == len(labels) and overall["unknown"] == 1 and overall["answered"] == 0
    assert overall["accuracy"] is None and overall["kappa"] is None
    assert overall["false_pass"] is None and overall["false_fail"] is None


def test_kappa_of_a_known_table():
    """Cohen's example: 20 yes-yes, 5 yes-no, 10 no-yes, 15 no-no gives p_o 0.7, p_e 0.5, kappa 0.4."""
    table = Agreement(yes_pass=20, yes_fail=5, no_pass=10, no_fail=15, unknown_pass=3)
    figures = table.figures()
    assert figures["kappa"] == pytest.approx(0.4) and figures["accuracy"] == 0.7
    assert figures["false_pass"] == 5 / 20 and figures["false_fail"] == 10 / 30 and figures["unknown"] == 3 / 53


@pytest.mark.parametrize("line, field", [
    ({"response": "text"}, "id"),
    ({"id": "no-such-row", "response": "text"}, "id"),
    ({"id": "testbed-3-000000", "response": 5}, "response"),
    ({"key": "no-such-row", "response": "text"}, "key"),
])
def test_a_bad_responses_line_is_one_error_naming_file_row_and_field(audit_files, capsys, line, field):
    folder, _, _ = audit_files
    lines = (folder / "responses.jsonl").read_text().splitlines()
    (folder / "responses.jsonl").write_text("\n".join([lines[0], json.dumps(line), *lines[1:]]) + "\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["judge", "audit", "--rows", str(folder / "rows.jsonl"), "--responses", str(folder / "responses.jsonl"),
              "--base-url", "http://127.0.0.1:9/v1", "--model", "unused"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error == error.splitlines()[0], "one line"
    assert f"{folder / 'responses.jsonl'}, row 2, field '{field}'" in error


def test_a_bad_json_line_names_file_and_row(audit_files, capsys):
    folder, _, _ = audit_files
    with (folder / "responses.jsonl").open("a") as responses:
        responses.write("{not json\n")
    with pytest.raises(SystemExit):
        main(["judge", "audit", "--rows", str(folder / "rows.jsonl"), "--responses", str(folder / "responses.jsonl"),
              "--base-url", "http://127.0.0.1:9/v1", "--model", "unused"])
    assert f"{folder / 'responses.jsonl'}, row {len(RESPONSES) * 6 + 1}, field '<row>': invalid JSON" in \
        capsys.readouterr().err


@pytest.mark.parametrize("judge_options, message", [
    ([], "name one judge"),
    (["--base-url", "http://127.0.0.1:9/v1", "--local", "embedded:smollm2-135m-instruct"], "name one judge"),
    (["--base-url", "http://127.0.0.1:9/v1"], "needs both --base-url and --model"),
])
def test_the_judge_is_a_server_or_a_local_model(audit_files, capsys, judge_options, message):
    folder, _, _ = audit_files
    with pytest.raises(SystemExit) as exit_info:
        main(["judge", "audit", "--rows", str(folder / "rows.jsonl"), "--responses", str(folder / "responses.jsonl"),
              *judge_options])
    assert message in str(exit_info.value)


def test_two_rows_with_one_id_are_refused(tmp_path, capsys):
    rows = generate_rows(1, seed=3) * 2
    write_prompt_rows(rows, tmp_path / "rows.jsonl")
    write_jsonl([{"id": rows[0].id, "response": "text"}], tmp_path / "responses.jsonl")
    with pytest.raises(SystemExit):
        main(["judge", "audit", "--rows", str(tmp_path / "rows.jsonl"),
              "--responses", str(tmp_path / "responses.jsonl"),
              "--base-url", "http://127.0.0.1:9/v1", "--model", "unused"])
    assert f"{tmp_path / 'rows.jsonl'}, row 2, field 'id'" in capsys.readouterr().err


def test_rows_without_verifiers_leave_nothing_to_audit(tmp_path, capsys):
    write_jsonl([{"id": "a", "prompt": "Write a poem.", "rubrics": [{"description": "It rhymes."}]}],
                tmp_path / "rows.jsonl")
    write_jsonl([{"id": "a", "response": "Roses are red."}], tmp_path / "responses.jsonl")
    with pytest.raises(SystemExit) as exit_info:
        main(["judge", "audit", "--rows", str(tmp_path / "rows.jsonl"),
              "--responses", str(tmp_path / "responses.jsonl"),
              "--base-url", "http://127.0.0.1:9/v1", "--model", "unused"])
    assert "nothing to audit" in str(exit_info.value)


def test_a_local_judge_audits_responses_it_sampled_from_a_policy(tiny_model_dir, yes_judge_dir, tmp_path, capsys):
    """--policy samples the responses into --responses, --local judges them in this process; the local judge
    always says YES, so its figures are known as the server's are."""
    rows = generate_rows(3, seed=5)
    write_prompt_rows(rows, tmp_path / "rows.jsonl")
    arguments = ["judge", "audit", "--rows", str(tmp_path / "rows.jsonl"),
                 "--responses", str(tmp_path / "sampled.jsonl"),
                 "--policy", str(tiny_model_dir), "--samples", "2", "--max-new-tokens", "8",
                 "--local", str(yes_judge_dir), "--local-batch-size", "4", "--json", str(tmp_path / "audit.json")]
    main(arguments)
    report = json.loads((tmp_path / "audit.json").read_text())
    sampled = [json.loads(line) for line in (tmp_path / "sampled.jsonl").read_text().splitlines()]
    assert len(sampled) == 6 and report["responses"] == 6
    by_id = {row.id: row for row in rows}
    verdicts = [run_verifier(rubric.verifier, line["response"], rubric.kwargs).passed
                for line in sampled for rubric in by_id[line["key"]].rubrics]
    decided = [passed for passed in verdicts if passed is not None]
    assert report["questions"] == len(decided) and report["undecided"] == len(verdicts) - len(decided)
    overall = report["overall"]
    assert overall["n"] == len(decided) == report["judge_cost"]["requests"] and overall["unknown"] == 0
    assert overall["accuracy"] == sum(decided) / len(decided)
    assert overall["kappa"] == (None if all(decided) else 0) and overall["false_fail"] == (0 if any(decided) else None)
    assert overall["false_pass"] == (None if all(decided) else 1)
    assert report["judge_cost"]["tokens"]["completion"] == 4 * len(decided)  # Y, E, S and the end of turn
    assert report["judge"] == {"local_model": str(yes_judge_dir)}
    main(arguments)  # a rerun keeps the sampled responses and judges them again
    assert [json.loads(line) for line in (tmp_path / "sampled.jsonl").read_text().splitlines()] == sampled
