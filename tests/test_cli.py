"""`rtt` end to end: tiny-model runs that get killed and resumed, and two real steps of the default policy."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rubrics2tokens.checkpoints import checkpoints
from rubrics2tokens.cli.main import build_parser, main
from tests_paths import REPO

TINY_RUN = """
model: {{name_or_path: {model}}}
data: {{source: testbed, testbed: {{num_prompts: 16, seed: 1}}}}
training:
  output_dir: {output}
  max_steps: {steps}
  per_device_train_batch_size: 4
  num_generations: 4
  max_completion_length: 12
  learning_rate: 1.0e-4
  logging_steps: 1
  save_steps: 1
  report_to: [tensorboard]
  relevance_source: oracle
  seed: 0
"""


def rtt(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rubrics2tokens.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def logged_steps(output: Path) -> list[int]:
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    return [record["step"] for record in records if "rubrics/satisfaction" in record]


def test_a_killed_run_resumes_without_losing_a_completed_step(tiny_model_dir, tmp_path):
    output = tmp_path / "run"
    config = tmp_path / "run.yaml"
    config.write_text(TINY_RUN.format(model=tiny_model_dir, output=output, steps=6))
    process = subprocess.Popen([sys.executable, "-m", "rubrics2tokens.cli.main", "train", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.time() + 300
    while not (output / "checkpoint-3" / "trainer_state.json").exists():
        assert process.poll() is None and time.time() < deadline, "the run ended before its third checkpoint"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # The kill may land during a save; make sure one was cut short: the Trainer writes trainer_state.json last.
    cut_short = checkpoints(output)[-1]
    (cut_short / "trainer_state.json").unlink(missing_ok=True)

    refused = rtt("train", str(config))
    assert refused.returncode != 0 and "--resume" in refused.stderr + refused.stdout

    resumed = rtt("train", str(config), "training.keep_checkpoints=true", "--resume")  # checkpoint-6 is read below
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{cut_short.name}: an incomplete checkpoint" in resumed.stderr
    assert "held-out: 16 prompts never trained on" in resumed.stdout and "step 6" in resumed.stdout
    assert {path.name for path in (output / "heldout").iterdir()} == {"step_000000.jsonl", "step_000006.jsonl"}, \
        "before the first step and after the last: no evaluation again where the run resumed"
    assert logged_steps(output) == [1, 2, 3, 4, 5, 6]
    state = json.loads((output / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    assert (output / "final" / "model.safetensors").exists()
    assert list(output.glob("runs/*/events.out.tfevents.*")) or list(output.glob("**/events.out.tfevents.*"))

    # A run that trained to its last step but exited before it was marked done (a study retries it): resuming
    # trains nothing (Transformers' loop would train a 7th step) and leaves its log and evaluations as they were.
    heldout_before = (output / "heldout" / "step_000006.jsonl").read_text()
    shutil.rmtree(output / "final")
    again = rtt("train", str(config), "training.keep_checkpoints=true", "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "checkpoint-6 is the run's last step" in again.stderr and "step 6" in again.stdout
    assert ((output / "final" / "model.safetensors").read_bytes()
            == (output / "checkpoint-6" / "model.safetensors").read_bytes())
    assert not (output / "final" / "optimizer.pt").exists() and (output / "final" / "tokenizer_config.json").exists()
    assert logged_steps(output) == [1, 2, 3, 4, 5, 6]
    assert {path.name for path in (output / "heldout").iterdir()} == {"step_000000.jsonl", "step_000006.jsonl"}
    assert (output / "heldout" / "step_000006.jsonl").read_text() == heldout_before


def test_a_report_that_fails_does_not_fail_a_finished_run(tiny_model_dir, tmp_path):
    output = tmp_path / "run"
    output.mkdir()
    (output / "report").write_text("a file where the report's folder goes")
    config = tmp_path / "run.yaml"
    config.write_text(TINY_RUN.format(model=tiny_model_dir, output=output, steps=1))
    result = rtt("train", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the report could not be written (FileExistsError" in result.stderr
    assert f"rtt report {output}" in result.stderr and (output / "final" / "model.safetensors").exists()


def test_cli_errors_are_one_clear_line(tmp_path):
    result = rtt("train", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2 and "config file not found" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {source: file, path: rows.jsonl}\n")
    (tmp_path / "rows.jsonl").write_text('{"id": 1, "prompt": "x", "rubrics": []}\n')
    result = rtt("train", str(bad))
    assert result.returncode == 2
    assert "rows.jsonl, row 1, field 'rubrics'" in result.stderr
    assert "Traceback" not in result.stderr


def test_data_testbed_command_writes_loadable_rows(tmp_path):
    result = rtt("data", "testbed", "--out", str(tmp_path / "t.jsonl"), "--num-prompts", "5", "--seed", "2")
    assert result.returncode == 0, result.stderr
    from rubrics2tokens.data.row_formats import load_prompt_rows
    assert len(load_prompt_rows(tmp_path / "t.jsonl")) == 5


@pytest.mark.slow
def test_two_real_rtt_steps_with_the_default_policy(tmp_path):
    """SmolLM2-135M-Instruct (embedded), the demo config shrunk to two short steps."""
    result = rtt("train", str(REPO / "configs" / "demo.yaml"), f"training.output_dir={tmp_path / 'demo'}",
                 "training.max_steps=2", "training.max_completion_length=24", "training.save_steps=10",
                 "eval.num_prompts=2")
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "demo" / "metrics.jsonl").read_text().splitlines()]
    steps = [record for record in records if "rubrics/satisfaction" in record]
    assert [record["step"] for record in steps] == [1, 2]
    for record in steps:
        assert record["rubrics/known_frac"] == 1.0
        assert "rtt/token_adv/abs_mean" in record and "entropy" in record
        assert "completions/mean_length" in record and "completions/clipped_ratio" in record
    assert any(record["rtt/token_adv/abs_mean"] > 0 for record in steps), "the oracle token term gave no signal"
    heldout = [record for record in records if "heldout/satisfaction" in record]
    assert [record["step"] for record in heldout] == [0, 2]
    assert all("heldout/entropy" in record and "heldout/truncated_frac" in record for record in heldout)
    assert "held-out: 2 prompts never trained on, 2 samples each" in result.stdout


def test_hir_sample_trains_with_hybrid_scoring_against_a_judge_server(tiny_model_dir, tmp_path):
    """configs/hir_hybrid.yaml: IFEval/IFBench/MulDimIF verifiers, sandboxed dataset rules and the judge."""
    from judge_server import JudgeServer

    output = tmp_path / "hir"
    with JudgeServer() as server:
        result = subprocess.run(
            [sys.executable, "-m", "rubrics2tokens.cli.main", "train", str(REPO / "configs" / "hir_hybrid.yaml"),
             f"model.name_or_path={tiny_model_dir}", f"training.output_dir={output}", "training.max_steps=2",
             "training.max_completion_length=16", "training.save_steps=10",
             f"scoring.judge.base_url={server.base_url}", f"scoring.judge.cache_path={tmp_path / 'cache.sqlite'}"],
            capture_output=True, text=True, timeout=600,
            env={**os.environ, "HF_HUB_OFFLINE": "1"})
        judged = server.requests
    assert result.returncode == 0, result.stderr[-3000:]
    assert judged > 0, "the judge server answered the rubrics no verifier covers"
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    steps = [record for record in records if "rubrics/satisfaction" in record]
    assert len(steps) == 2
    assert all(record["rubrics/known_frac"] == 1.0 for record in steps), "every rubric got a verdict"
    assert steps[-1]["judge/calls"] > 0, "the judge counters reach the training log (they are cumulative)"
    families = {key for record in steps for key in record if key.startswith("rubrics/pass/")}
    assert "rubrics/pass/judge" in families and any("/ifeval/" in key or "/ifbench/" in key for key in families)


def every_parser(parser: argparse.ArgumentParser, name: str = "rtt"):
    """(command name, parser) of `rtt` and of every subcommand under it."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, subparser in action.choices.items():
                yield from every_parser(subparser, f"{name} {command}")


def test_every_option_of_every_command_says_what_it_does_and_its_default():
    walked = 0
    for name, parser in every_parser(build_parser()):
        assert not parser.allow_abbrev, f"{name} completes abbreviated options (--resum would be --resume)"
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            if isinstance(action, argparse._SubParsersAction):
                described = {choice.dest for choice in action._choices_actions if (choice.help or "").strip()}
                assert described == set(action.choices), f"{name}: a subcommand without help"
                continue
            shown = parser._get_formatter()._expand_help(action)  # the help text exactly as --help prints it
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert (action.help or "").strip(), f"{label} has no help"
            if action.default not in (None, False, argparse.SUPPRESS):
                assert f"(default: {action.default})" in shown, f"{label}: its help does not show its default"
            walked += 1
    assert walked >= 60  # every command's options, not a parser that lost its subcommands


def test_version_is_the_installed_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"rtt {importlib.metadata.version('rubrics2tokens')}\n"
