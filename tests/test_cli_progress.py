"""What `rtt train` prints: one progress bar and one compact line per logged step (plus a line per held-out
evaluation), no per-step metric dict, none of the known-harmless library messages; --quiet and --verbose."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from rubrics2tokens.trainer.progress import duration

RUN = """
model: {{name_or_path: {model}}}
data: {{source: testbed, testbed: {{num_prompts: 8, seed: 1}}}}
eval: {{num_prompts: 2, samples: 2, every: 2}}
training:
  output_dir: {output}
  max_steps: {steps}
  per_device_train_batch_size: 4
  num_generations: 4
  max_completion_length: 8
  learning_rate: 1.0e-4
  logging_steps: 1
  save_steps: 1
  relevance_source: oracle
  rollout_backend: static
  overlong_penalty_tokens: 2
  seed: 0
"""


def train(config, *flags: str) -> str:
    result = subprocess.run([sys.executable, "-m", "rubrics2tokens.cli.main", "train", str(config), *flags],
                            capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def normal_run(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("progress")
    config = folder / "run.yaml"
    config.write_text(RUN.format(model=tiny_model_dir, output=folder / "out", steps=2))
    return config, folder / "out", train(config, "training.keep_checkpoints=true")  # kept: a test resumes it


def test_one_line_per_step_and_per_evaluation_and_no_metric_dicts(normal_run):
    config, output, printed = normal_run
    step_lines = re.findall(r"^step (\d)/2  reward [\d.-]+ = rubrics [\d.]+ \+ length penalty [\d.-]+  "
                            r"all-pass [\d.]+  entropy [\d.]+  length \d+  "
                            r"truncated [\d.]+  step [\d.]+s(?:  ETA \w+)?$", printed, re.MULTILINE)
    assert step_lines == ["1", "2"]
    assert re.findall(r"^held-out @ step (\d)  all-pass", printed, re.MULTILINE) == ["0", "2"]
    assert "{'loss'" not in printed and "'reward':" not in printed, "transformers' per-step dict is gone"
    assert "gradient_checkpointing" not in printed and "FutureWarning" not in printed
    assert "experimental" not in printed and "matplotlib" not in printed and "fontManager" not in printed
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert sum("rtt/token_adv/mean" in record for record in records) == 2, "metrics.jsonl keeps every metric"


def test_a_resume_says_nothing_about_the_tied_lm_head(normal_run):
    config, output, _ = normal_run
    config.write_text(config.read_text().replace("max_steps: 2", "max_steps: 3"))
    printed = train(config, "--resume")
    assert re.findall(r"^step (\d)/3", printed, re.MULTILINE) == ["3"]
    assert "missing keys" not in printed


def test_quiet_prints_no_step_lines_and_verbose_every_metric(tiny_model_dir, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(RUN.format(model=tiny_model_dir, output=tmp_path / "quiet", steps=1))
    quiet = train(config, "--quiet")
    assert not re.search(r"^step 1/1", quiet, re.MULTILINE) and "held-out @" not in quiet
    assert "INFO" not in quiet
    config.write_text(RUN.format(model=tiny_model_dir, output=tmp_path / "verbose", steps=1))
    verbose = train(config, "--verbose")
    assert re.search(r"^step 1/1", verbose, re.MULTILINE) and "rtt/token_adv/mean=" in verbose


def test_durations_read_like_durations():
    assert [duration(s) for s in (4.4, 65, 3600 * 2 + 7 * 60 + 3)] == ["4s", "1m05s", "2h07m"]


def test_rows_without_a_known_verdict_do_not_dump_their_kwargs(tiny_model_dir, tmp_path):
    """Rubrics that no verifier checks (mode 'verifiers'): every reward is None, which TRL reports by printing the
    whole row; the run counts them in rubrics/known_frac and scoring/unverifiable instead."""
    rows = [{"id": f"p{i}", "prompt": f"Say something about rain {i}.", "rubrics": ["It is about rain."]}
            for i in range(2)]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = tmp_path / "run.yaml"
    config.write_text(RUN.format(model=tiny_model_dir, output=tmp_path / "out", steps=1)
                      .replace("data: {source: testbed, testbed: {num_prompts: 8, seed: 1}}",
                               "data: {source: file, path: rows.jsonl}")
                      .replace("eval: {num_prompts: 2, samples: 2, every: 2}", "eval: {source: none}"))
    printed = train(config)
    assert "All reward functions returned None" not in printed and "'rubrics_json'" not in printed
    (record,) = [record for record in map(json.loads, (tmp_path / "out" / "metrics.jsonl").read_text().splitlines())
                 if "rubrics/known_frac" in record]
    assert record["rubrics/known_frac"] == 0 and record["scoring/unverifiable"] == 4


def test_a_finished_run_writes_its_own_model_card_and_says_what_to_do_next(normal_run, tiny_model_dir):
    """issue 19: the demo's card was TRL's ("fine-tuned version of [None]", "trained with GRPO")."""
    config, output, printed = normal_run
    for card in (output / "README.md", output / "final" / "README.md"):
        text = card.read_text()
        assert f"base_model: {tiny_model_dir}" in text and "[None]" not in text
        assert "RTT-GRPO" in text and "relevance source 'oracle'" in text and "overlong penalty" in text
        assert "held-out: 2 prompts never trained on" in text and "overlong_penalty_tokens: 2" in text
    assert "next: rtt report" in printed and "rtt study configs/study_testbed.yaml" in printed


def test_a_finished_run_keeps_no_checkpoint_beside_final(tiny_model_dir, tmp_path):
    """issue 19: the demo left checkpoint-10 (1.6 GB) beside final/ (0.5 GB) after it finished."""
    config = tmp_path / "run.yaml"
    config.write_text(RUN.format(model=tiny_model_dir, output=tmp_path / "out", steps=1))
    train(config, "training.relevance_source=none")
    assert (tmp_path / "out" / "final" / "model.safetensors").exists()
    assert not list((tmp_path / "out").glob("checkpoint-*"))
    assert "plain GRPO" in (tmp_path / "out" / "final" / "README.md").read_text()
