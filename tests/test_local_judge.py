"""A local Hugging Face model as the run's judge (``scoring.judge.local_model``): configured, checked, and training
end to end without a server, in modes 'judge' and 'hybrid'."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rubrics2tokens.config import ConfigError, load_run_config
from rubrics2tokens.data.schema import write_jsonl
from rubrics2tokens.data.synthetic import generate_rows
from rubrics2tokens.judge import JudgeConfig, JudgeQuestion, LocalHFJudge
from rubrics2tokens.scoring.router import build_judge

LOCAL_JUDGE_RUN = """
model: {{name_or_path: {model}}}
data: {{source: file, path: {rows}}}
scoring:
  mode: {mode}
  judge: {{local_model: {judge}, local_batch_size: 4}}
eval: {{source: none}}
training:
  output_dir: {output}
  max_steps: {steps}
  per_device_train_batch_size: 4
  num_generations: 4
  max_completion_length: 12
  logging_steps: 1
  save_steps: 10
  relevance_source: none
  seed: 0
"""


def write_config(tmp_path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("server_key", ["base_url: http://127.0.0.1:8000/v1", "model: served", "cache_path: c.sqlite"])
def test_a_local_judge_and_a_server_judge_in_one_config_are_refused(tmp_path, server_key):
    path = write_config(tmp_path, f"scoring:\n  mode: judge\n  judge:\n    local_model: some/model\n    {server_key}\n")
    key = f"scoring.judge.{server_key.split(':')[0]}"
    with pytest.raises(ConfigError, match=rf"run\.yaml: {key} is set, but scoring\.judge\.local_model names a local"):
        load_run_config(path)


def test_the_override_that_adds_a_second_judge_is_blamed(tmp_path):
    path = write_config(tmp_path, "scoring:\n  mode: judge\n  judge: {base_url: 'http://h/v1', model: m}\n")
    with pytest.raises(ConfigError, match="command-line override 'scoring.judge.local_model=some/model'"):
        load_run_config(path, ["scoring.judge.local_model=some/model"])


def test_a_local_judge_needs_no_server_model(tmp_path):
    config = load_run_config(write_config(tmp_path, "scoring:\n  mode: hybrid\n  judge: {local_model: some/model}\n"))
    assert config.scoring.judge.local_model == "some/model" and config.scoring.judge.local_batch_size == 8


def test_a_judge_mode_without_any_judge_says_both_ways(tmp_path):
    with pytest.raises(ConfigError, match="scoring.judge.local_model for a local judge"):
        load_run_config(write_config(tmp_path, "scoring: {mode: judge}\n"))


def test_local_batch_size_is_checked(tmp_path):
    with pytest.raises(ConfigError, match="scoring.judge.local_batch_size must be >= 1"):
        load_run_config(write_config(tmp_path, "scoring:\n  judge: {local_batch_size: 0}\n"))


def test_build_judge_loads_the_local_model_and_counts_its_tokens(tiny_model_dir):
    judge = build_judge(JudgeConfig(local_model=str(tiny_model_dir), local_batch_size=2, max_tokens=3), device="cpu")
    assert isinstance(judge, LocalHFJudge) and judge.max_new_tokens == 3
    verdicts = judge.judge_batch([JudgeQuestion("Write.", f"Answer {i}.", "It is short.") for i in range(3)])
    stats = judge.stats()
    assert len(verdicts) == 3 and stats["judge/calls"] == 3
    assert stats["judge/prompt_tokens"] > 0 and 0 < stats["judge/completion_tokens"] <= 3 * 3
    assert stats["judge/replies_without_usage"] == 0


def train(tmp_path, tiny_model_dir, judge_dir, mode: str, steps: int) -> list[dict]:
    """``rtt train`` of the tiny policy, judged by ``judge_dir``, on testbed rows that also carry a rubric no
    verifier decides; the logged steps."""
    rows = [row.to_json() for row in generate_rows(8, seed=2)]
    for row in rows:
        row["rubrics"].append({"description": "The response is polite.", "weight": 1.0})
        row["ground_truth"]["instruction_id_list"].append(None)
        row["ground_truth"]["kwargs"].append({})
    write_jsonl(rows, tmp_path / "rows.jsonl")
    output = tmp_path / mode
    config = write_config(tmp_path, LOCAL_JUDGE_RUN.format(model=tiny_model_dir, judge=judge_dir, mode=mode,
                                                           rows=tmp_path / "rows.jsonl", output=output, steps=steps))
    result = subprocess.run([sys.executable, "-m", "rubrics2tokens.cli.main", "train", str(config)],
                            capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    return [record for record in records if "judge/questions" in record]


def test_judge_mode_trains_offline_with_a_local_judge(tiny_model_dir, yes_judge_dir, tmp_path):
    steps = train(tmp_path, tiny_model_dir, yes_judge_dir, "judge", steps=2)
    assert [record["step"] for record in steps] == [1, 2]
    for record in steps:
        # every rubric of the step's 4 completions goes to the judge: 4 x (2+ testbed rubrics + the judge-only one)
        assert record["judge/questions"] >= 4 * 3 and record["judge/unknown"] == 0
        assert record["rubrics/known_frac"] == 1.0 and record["rubrics/satisfaction"] == 1.0  # the judge says YES
        assert record["judge/prompt_tokens"] > 0


def test_hybrid_mode_sends_only_the_unverifiable_rubrics_to_the_local_judge(tiny_model_dir, yes_judge_dir, tmp_path):
    steps = train(tmp_path, tiny_model_dir, yes_judge_dir, "hybrid", steps=1)
    assert len(steps) == 1
    assert steps[0]["judge/questions"] == 4, "one judge-only rubric on each of the step's 4 completions"
    assert steps[0]["rubrics/known_frac"] == 1.0 and steps[0]["rubrics/pass/judge"] == 1.0
    assert any(key.startswith("rubrics/pass/testbed/") for key in steps[0]), "the verifiers decided the rest"
