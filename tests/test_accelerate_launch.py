"""The shipped accelerate launch files start real multi-process runs of a paper config, at toy size on the CPU.

`accelerate launch --config_file configs/accelerate/<file> --num_processes 2` trains Qwen3-4B's paper config for
two steps with the policy swapped for the tiny local model, on one HIR sample row with two sandboxed dataset
rules and one judge rubric, against the fault-injecting judge server (tests/judge_server.py), which answers
the run's first question with an HTTP 500.

What runs here: DDP (ddp.yaml; on CPUs torch's gloo backend), DeepSpeed ZeRO-2 and ZeRO-3 (DeepSpeed's CPU
accelerator). What cannot: FSDP, which accelerate enables only on GPUs (on a CPU it silently falls back to
DDP, so a run here would prove nothing about fsdp.yaml), and the multi-node file; those two are parsed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType

from judge_server import JudgeServer, unused_port
from tests_paths import REPO

LAUNCH_FILES = REPO / "configs" / "accelerate"
PAPER_CONFIG = REPO / "configs" / "paper" / "qwen3-4b-instruct-2507.yaml"
SAMPLE = REPO / "data" / "samples" / "hir_sample.jsonl"


JUDGED_ROW = "hir-sample-08"  # type4: two '[rule]' items (sandboxed dataset code) and one '[llm]' item (the judge)
STEPS, COMPLETIONS_PER_STEP = 2, 4


@pytest.fixture(scope="module")
def judged_rows(tmp_path_factory) -> Path:
    """That row as a dataset folder for data.source 'hub'; its judge rubric carries the server's [500x1] marker:
    an HTTP 500 for the first question about it, then answers."""
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    (row,) = [row for row in rows if row["id"] == JUDGED_ROW]
    checkers = row["ground_truth"]["checker"]
    assert [checker.split()[0] for checker in checkers] == ["[rule]", "[rule]", "[llm]"]
    row["rubrics"][2]["description"] += " [500x1]"
    folder = tmp_path_factory.mktemp("judged-rows")
    (folder / "train.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    return folder


def launch_paper_config(launch_file: str, tiny_model_dir: Path, tiny_relevance_dir: Path, data: Path,
                        output: Path, steps: int = STEPS, resume: bool = False) -> dict:
    """The paper config on two processes, a checkpoint every 2 steps; returns the judge server's request count,
    the number of verdicts in the judge's cache and the run's per-step log records."""
    with JudgeServer() as server:
        # 2 completions per process and 4 per prompt: one process alone could not form a group (TRL refuses a
        # generation batch that num_generations does not divide), so the run proves both processes take part.
        toy_size = [f"model.name_or_path={tiny_model_dir}", f"data.path={data}", f"training.output_dir={output}",
                    f"training.max_steps={steps}", "training.save_steps=2", "training.per_device_train_batch_size=2",
                    "training.gradient_accumulation_steps=1", f"training.num_generations={COMPLETIONS_PER_STEP}",
                    "training.max_completion_length=16", "training.use_vllm=false",
                    f"training.relevance_model={tiny_relevance_dir}",  # relevance_source stays 'model'
                    f"scoring.judge.base_url={server.base_url}", f"scoring.judge.cache_path={output / 'judge.sqlite'}",
                    "scoring.judge.backoff_base_s=0.05",
                    "training.keep_checkpoints=true"]  # the tests read the checkpoints of finished runs
        result = subprocess.run(
            [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(LAUNCH_FILES / launch_file),
             "--num_processes", "2", "--main_process_port", str(unused_port()),
             "-m", "rubrics2tokens.cli.main", "train", str(PAPER_CONFIG), *toy_size, *(["--resume"] if resume else [])],
            capture_output=True, text=True, timeout=600,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
        requests = server.requests
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    with closing(sqlite3.connect(output / "judge.sqlite")) as cache:
        (cached,) = cache.execute("SELECT COUNT(*) FROM verdicts").fetchone()
    return {"judge_requests": requests, "cached_verdicts": cached,
            "steps": [record for record in records if "rubrics/satisfaction" in record]}


def check_two_judged_steps(run: dict) -> None:
    assert [record["step"] for record in run["steps"]] == [1, 2]
    # One judge question per completion, from both processes into one cache. Only definite verdicts are cached:
    # all of them there means the question that got the 500 was asked again and answered.
    assert run["cached_verdicts"] == STEPS * COMPLETIONS_PER_STEP
    assert run["judge_requests"] == STEPS * COMPLETIONS_PER_STEP + 1, "one injected 500, one retry"
    assert all(record["rubrics/known_frac"] == 1.0 for record in run["steps"])


def test_ddp_launch_file_trains_on_two_processes_and_resumes(tiny_model_dir, tiny_relevance_dir, judged_rows, tmp_path):
    run = launch_paper_config("ddp.yaml", tiny_model_dir, tiny_relevance_dir, judged_rows, tmp_path / "ddp")
    check_two_judged_steps(run)
    checkpoint = tmp_path / "ddp" / "checkpoint-2"
    assert (checkpoint / "optimizer.pt").is_file(), "DDP: one whole optimizer state"
    assert {path.name for path in checkpoint.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}

    resumed = launch_paper_config("ddp.yaml", tiny_model_dir, tiny_relevance_dir, judged_rows, tmp_path / "ddp",
                                  steps=STEPS + 1, resume=True)
    assert [record["step"] for record in resumed["steps"]] == [1, 2, 3], "both processes resumed at step 2"


@pytest.mark.parametrize("launch_file", ["zero2.yaml", "zero3.yaml"])
def test_deepspeed_launch_files_shard_the_optimizer_over_two_processes(launch_file, tiny_model_dir, tiny_relevance_dir,
                                                                       judged_rows, tmp_path):
    # ZeRO-3 also checks that the relevance model loads whole: partitioned by zero.Init, its first forward failed
    run = launch_paper_config(launch_file, tiny_model_dir, tiny_relevance_dir, judged_rows, tmp_path / "ds")
    check_two_judged_steps(run)
    shards = sorted(path.name for path in (tmp_path / "ds" / "checkpoint-2" / "global_step2").glob("*optim_states.pt"))
    assert len(shards) == 2 and "rank_0" in shards[0] and "rank_1" in shards[1], shards


def test_every_launch_file_is_a_valid_accelerate_config():
    expected = {"ddp.yaml": DistributedType.MULTI_GPU, "zero2.yaml": DistributedType.DEEPSPEED,
                "zero3.yaml": DistributedType.DEEPSPEED, "fsdp.yaml": DistributedType.FSDP,
                "multinode-zero3.yaml": DistributedType.DEEPSPEED}
    assert {path.name for path in LAUNCH_FILES.glob("*.yaml")} == set(expected), "a launch file this test misses"
    for name, distributed_type in expected.items():
        config = load_config_from_file(str(LAUNCH_FILES / name))
        assert config.distributed_type == distributed_type, name
        assert config.mixed_precision == "bf16" and not config.use_cpu, name
        if distributed_type == DistributedType.DEEPSPEED:
            assert config.deepspeed_config["zero_stage"] == int(name.split("zero")[1][0]), name
    fsdp = load_config_from_file(str(LAUNCH_FILES / "fsdp.yaml")).fsdp_config
    assert fsdp["fsdp_version"] == 2 and not fsdp["fsdp_activation_checkpointing"]
    multinode = load_config_from_file(str(LAUNCH_FILES / "multinode-zero3.yaml"))
    assert multinode.num_machines == 4 and multinode.num_processes == 32
    assert multinode.deepspeed_config["deepspeed_multinode_launcher"] == "standard"
