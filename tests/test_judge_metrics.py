"""Honest judge diagnostics: timeouts inside the latency percentiles, a body that is not JSON named as such,
per-step (not cumulative) counters in a real run, and a "judge unreachable?" warning when most of a step's
judge verdicts are unknown."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

from judge_server import fast_config, fault_server  # noqa: F401  (fault_server is a fixture)
from rubrics2tokens.judge import JudgeQuestion, LLMJudge


def ask(config, rubric: str):
    with LLMJudge(config) as judge:
        verdicts = judge.judge_batch([JudgeQuestion("Write a haiku.", "Rain taps the window", rubric)])
        return verdicts, judge.stats()


def test_a_request_that_timed_out_counts_in_the_latency_percentiles(fault_server):
    verdicts, stats = ask(fast_config(fault_server.base_url, timeout_s=0.2, max_retries=1), "PASS [hang]")
    assert verdicts == [None] and stats["judge/calls"] == 2
    assert stats["judge/latency_p50_s"] >= 0.2 and stats["judge/latency_p99_s"] >= 0.2


def test_a_body_that_is_not_json_is_named_as_such(fault_server, caplog):
    with caplog.at_level(logging.WARNING):
        verdicts, stats = ask(fast_config(fault_server.base_url), "PASS [badjson]")
    assert verdicts == [None] and stats["judge/unknown"] == 1
    assert "not a chat-completions JSON body" in caplog.text and "neither YES nor NO" not in caplog.text


RUN = """
model: {{name_or_path: {model}}}
data: {{source: file, path: rows.jsonl}}
scoring: {{mode: judge, judge: {{base_url: "{url}", model: scripted, max_retries: 0, backoff_base_s: 0.01}}}}
eval: {{source: none}}
training:
  output_dir: {output}
  max_steps: 2
  per_device_train_batch_size: 4
  num_generations: 4
  max_completion_length: 6
  logging_steps: 1
  save_strategy: "no"
  relevance_source: uniform
  seed: 0
"""


def test_a_run_logs_judge_counters_per_step_and_warns_when_the_judge_fails(fault_server, tiny_model_dir, tmp_path):
    rows = [{"id": f"p{i}", "prompt": f"Say something about rain {i}.",
             "rubrics": [{"description": "PASS it is about rain", "weight": 3}, {"description": "it is short"},
                         {"description": "[400] it rhymes"}, {"description": "[400] it scans"}]}
            for i in range(2)]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = tmp_path / "run.yaml"
    output = tmp_path / "out"
    config.write_text(RUN.format(model=tiny_model_dir, url=fault_server.base_url, output=output))
    result = subprocess.run([sys.executable, "-m", "rubrics2tokens.cli.main", "train", str(config)],
                            capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    steps = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    steps = [record for record in steps if "judge/questions" in record]
    # 4 responses x 4 judged rubrics a step; a running total would read 16, 32
    assert [record["judge/questions"] for record in steps] == [16, 16]
    assert [record["judge/failures"] for record in steps] == [8, 8]  # the [400] rubrics, never retried
    assert result.stderr.count("judge unreachable? step") == 2
    assert "8 of 16 judge verdicts are unknown (8 without a reply, 0 unreadable)" in result.stderr
    # weighted as the csr reward: a pass of weight 3 and a fail of weight 1 (the unweighted mean is 0.5)
    assert [record["rubrics/satisfaction"] for record in steps] == [0.75, 0.75]
