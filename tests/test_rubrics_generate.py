"""`rtt rubrics generate` end to end: against a scripted generator server on 127.0.0.1, with a local model, killed
and rerun, and its output read by `rtt train`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rubric_server import UNREADABLE, RubricServer
from rubrics2tokens.cli.main import main
from rubrics2tokens.data.row_formats import load_prompt_rows
from tests_paths import read_rows

PROMPTS = {
    "poem": "Write a poem about the sea.",
    "haiku": "Write a haiku about rain. [badx1]",
    "story": "Tell a story about a fox. [never]",
    "note": "Write a note to a neighbour without any commas. [wrongargs]",
    "limerick": "Write a limerick. Do not use any commas.",
}


def write_prompts(path: Path, prompts: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps({"id": key, "prompt": text}) + "\n" for key, text in prompts.items()))
    return path


def generate(prompts: Path, out: Path, *options: str) -> None:
    main(["rubrics", "generate", "--prompts", str(prompts), "--out", str(out), *options])


def rubrics_of(out: Path) -> dict[str, list[tuple]]:
    return {row.id: [(rubric.description, rubric.weight, rubric.verifier, rubric.kwargs) for rubric in row.rubrics]
            for row in load_prompt_rows(out)}


def test_server_replies_become_rows_bad_ones_are_asked_again_then_listed(tmp_path, capsys):
    prompts, out = write_prompts(tmp_path / "prompts.jsonl", PROMPTS), tmp_path / "rows.jsonl"
    with RubricServer() as server:
        generate(prompts, out, "--base-url", server.base_url, "--model", "gen", "--rubrics-per-prompt", "3",
                 "--attempts", "3")
    assert dict(server.asked) == {PROMPTS["poem"]: 1, PROMPTS["haiku"]: 2, PROMPTS["story"]: 3,
                                     PROMPTS["note"]: 1, PROMPTS["limerick"]: 1}

    judged = ("The response answers what the prompt asks.", 3.0, None, {})
    no_comma = ("The response contains no commas.", 5.0, "ifeval:punctuation:no_comma", {})
    extracted_no_comma = ("The response contains no commas.", 1.0, "ifeval:punctuation:no_comma", {})
    rows = rubrics_of(out)
    assert set(rows) == {"poem", "haiku", "note", "limerick"}  # the story never got a readable reply
    assert rows["poem"] == rows["haiku"] == [judged, no_comma]
    # the extraction's rubric comes first; the model's same verifier is not written twice
    assert rows["limerick"] == [extracted_no_comma, judged]
    # arguments its checker cannot use: the model's rubrics go to the judge, the attachments are listed
    assert rows["note"] == [extracted_no_comma, ("The response has about 300 words.", 2.0, None, {}),
                            ("The response has exclamation marks.", 1.0, None, {})]
    rejected = read_rows(tmp_path / "rows.rejected.jsonl")
    assert [(record["id"], record["verifier"]) for record in rejected] == [
        ("note", "ifeval:length_constraints:number_words"), ("note", "ifeval:keywords:letter_frequency")]
    assert "drawn at random" in rejected[1]["problem"]

    [failed] = read_rows(tmp_path / "rows.failed.jsonl")
    assert failed["id"] == "story" and failed["replies"] == [UNREADABLE] * 3
    assert "no readable reply in 3 attempts" in failed["problem"]
    printed = capsys.readouterr().out
    assert "wrote 4 rows" in printed and "1 prompts got no rubrics" in printed and "2 verifier attachments" in printed

    with RubricServer() as server:  # a rerun: every prompt is done (or listed as failed), nothing is asked
        generate(prompts, out, "--base-url", server.base_url, "--model", "gen", "--rubrics-per-prompt", "3",
                 "--attempts", "3")
    assert sum(server.asked.values()) == 0
    assert len(read_rows(out)) == 4 and len(read_rows(tmp_path / "rows.rejected.jsonl")) == 2


def test_the_cache_answers_readable_replies_again_but_not_unreadable_ones(tmp_path):
    prompts = write_prompts(tmp_path / "prompts.jsonl", {key: PROMPTS[key] for key in ("poem", "haiku", "story")})
    options = ["--model", "gen", "--attempts", "2", "--cache", str(tmp_path / "replies.sqlite")]
    with RubricServer() as server:
        generate(prompts, tmp_path / "first.jsonl", "--base-url", server.base_url, *options)
        first = dict(server.asked)
        generate(prompts, tmp_path / "second.jsonl", "--base-url", server.base_url, *options)
    assert first == {PROMPTS["poem"]: 1, PROMPTS["haiku"]: 2, PROMPTS["story"]: 2}
    assert dict(server.asked) == {**first, PROMPTS["story"]: 4}  # only the never-readable one asked again
    assert (tmp_path / "first.jsonl").read_text() == (tmp_path / "second.jsonl").read_text()


def test_a_killed_run_continues_without_losing_or_repeating_a_prompt(tmp_path):
    prompts = write_prompts(tmp_path / "prompts.jsonl",
                            {f"p{number}": f"Write line {number} of a poem. [slow]" for number in range(6)})
    out = tmp_path / "rows.jsonl"
    with RubricServer(slow_s=0.5) as server:
        command = [sys.executable, "-m", "rubrics2tokens.cli.main", "rubrics", "generate", "--prompts", str(prompts),
                   "--out", str(out), "--base-url", server.base_url, "--model", "gen", "--concurrency", "1"]
        process = subprocess.Popen(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while (not out.is_file() or out.read_text().count("\n") < 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        written_before_kill = out.read_text()
        done_before_kill = [row["id"] for row in read_rows(out)]
        assert 2 <= len(done_before_kill) < 6, "the kill came before the run ended"
        with open(out, "a") as rows:  # what a kill in the middle of writing a row leaves
            rows.write('{"id": "p5", "messages": [{"role": "us')
        asked_before_rerun = dict(server.asked)
        generate(prompts, out, "--base-url", server.base_url, "--model", "gen")

    rows = read_rows(out)
    assert sorted(row["id"] for row in rows) == [f"p{number}" for number in range(6)]
    assert out.read_text().startswith(written_before_kill), "the rows written before the kill are kept as they were"
    for prompt_id in done_before_kill:  # a prompt done before the kill is not asked again
        prompt = f"Write line {prompt_id[1:]} of a poem. [slow]"
        assert server.asked[prompt] == asked_before_rerun[prompt] == 1


def test_a_local_model_whose_replies_cannot_be_read_guesses_no_row(tmp_path, tiny_model_dir, capsys):
    prompts = write_prompts(tmp_path / "prompts.jsonl", {"a": "Write a poem. Do not use any commas.",
                                                         "b": "Tell a joke."})
    out = tmp_path / "rows.jsonl"
    generate(prompts, out, "--local", str(tiny_model_dir), "--attempts", "2", "--max-new-tokens", "12")
    assert not out.exists(), "no row from replies that cannot be read, not even the extracted rubrics alone"
    failed = read_rows(tmp_path / "rows.failed.jsonl")
    assert [record["id"] for record in failed] == ["a", "b"]
    assert all(len(record["replies"]) == 2 and "no readable reply in 2 attempts" in record["problem"]
               for record in failed)
    assert "2 prompts got no rubrics" in capsys.readouterr().out


def test_rtt_train_trains_on_the_extracted_rows(tmp_path, tiny_model_dir):
    prompts = write_prompts(tmp_path / "prompts.jsonl", {
        "a": "Write a short note to a friend. Do not use any commas.",
        "b": "Write a riddle in all lowercase letters with at least 20 words.",
        "c": "Describe a cat. Wrap your entire response in double quotation marks.",
        "d": "Tell me about your day.",  # states no constraint: no row without a generator
    })
    out = tmp_path / "rows.jsonl"
    generate(prompts, out)
    assert [row["id"] for row in read_rows(out)] == ["a", "b", "c"]
    assert [record["id"] for record in read_rows(tmp_path / "rows.failed.jsonl")] == ["d"]

    config = tmp_path / "run.yaml"
    config.write_text(f"model: {{name_or_path: {tiny_model_dir}}}\n"
                      f"data: {{source: file, path: {out}}}\n"
                      "eval: {source: none}\n"
                      f"training: {{output_dir: {tmp_path / 'run'}, max_steps: 1, per_device_train_batch_size: 4, "
                      "num_generations: 4, max_completion_length: 8, logging_steps: 1, save_steps: 10, "
                      "report_to: [tensorboard], relevance_source: oracle, seed: 0}\n")
    result = subprocess.run([sys.executable, "-m", "rubrics2tokens.cli.main", "train", str(config)],
                            capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    families = {key for record in records for key in record if key.startswith("rubrics/pass/")}
    assert families and all("ifeval" in family for family in families), families


def test_a_rerun_with_other_settings_is_refused(tmp_path, capsys):
    prompts = write_prompts(tmp_path / "prompts.jsonl", {"limerick": PROMPTS["limerick"]})
    out = tmp_path / "rows.jsonl"
    generate(prompts, out)
    kept = out.read_text()
    with RubricServer() as server, pytest.raises(SystemExit) as exit_info:
        generate(prompts, out, "--base-url", server.base_url, "--model", "gen")
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith(f"rtt: error: {out} was written with generator=None")
    assert out.read_text() == kept


@pytest.mark.parametrize("options, message", [
    (["--base-url", "http://127.0.0.1:1/v1"], "--base-url and --model go together"),
    (["--no-extraction"], "--no-extraction needs a generator"),
    (["--base-url", "http://127.0.0.1:1/v1", "--model", "m", "--local", "x"], "name one generator"),
    (["--rubrics-per-prompt", "0", "--local", "x"], "must be at least 1"),
])
def test_contradicting_options_are_one_line(tmp_path, options, message):
    prompts = write_prompts(tmp_path / "prompts.jsonl", {"a": "Hi."})
    with pytest.raises(SystemExit, match=message):
        generate(prompts, tmp_path / "rows.jsonl", *options)


def test_prompt_files_need_unique_ids_and_accept_messages(tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "x", "prompt": "Hi, no commas."}\n{"id": "x", "prompt": "Bye."}\n')
    with pytest.raises(SystemExit) as stopped:
        generate(prompts, tmp_path / "rows.jsonl")
    assert stopped.value.code == 2 and "row 2, field 'id'" in capsys.readouterr().err

    prompts.write_text('{"messages": [{"role": "system", "content": "Be brief."}, '
                       '{"role": "user", "content": "Describe rain without any commas."}]}\n')
    generate(prompts, tmp_path / "chat.jsonl")
    [row] = load_prompt_rows(tmp_path / "chat.jsonl")
    assert row.id == "row-1" and row.messages[0]["role"] == "system"
    assert [rubric.verifier for rubric in row.rubrics] == ["ifeval:punctuation:no_comma"]
