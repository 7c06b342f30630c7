"""`rtt study`: the study file is checked before anything trains, and a real tiny-model study killed in the
middle of its second run resumes that run without repeating the first."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from rubrics2tokens.config import ConfigError, load_run_config
from rubrics2tokens.study import load_study
from rubrics2tokens.study.runner import ATTEMPTS, FINISHED, _append, _attempt_records, run_state, run_wall_s
from rubrics2tokens.study.spec import PlannedRun, write_run_configs
from tests_paths import REPO

TINY_STUDY = """
output_dir: {out}
seeds: [0]
base:
  model: {{name_or_path: {model}}}
  data: {{source: testbed, testbed: {{num_prompts: 16, seed: 1}}}}
  training:
    max_steps: {steps}
    per_device_train_batch_size: 4
    num_generations: 4
    max_completion_length: 12
    learning_rate: 1.0e-4
    logging_steps: 1
    save_steps: 1
    report_to: []
    relevance_source: oracle
variants:
  grpo: [training.relevance_source=none]
  rtt: [training.token_partition=signed]
"""


def rtt_study(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rubrics2tokens.cli.main", "study", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def write_study(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def test_runs_are_planned_seed_by_seed_with_the_study_owning_seed_and_folder(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "base.yaml").write_text("data: {source: file, path: ../rows.jsonl}\n")
    study = load_study(write_study(tmp_path, """
output_dir: out
seeds: [3]
base: configs/base.yaml
variants:
  a: [training.learning_rate=1e-6]
  b: {overrides: [training.beta=0.04], seeds: [0, 1, 2]}
"""))
    assert [run.name for run in study.runs] == ["a/seed3", "b/seed0", "b/seed1", "b/seed2"]
    assert study.runs[1].folder == Path("out/b/seed0")
    assert study.runs[1].overrides == ("training.beta=0.04", "training.seed=0", "training.output_dir=out/b/seed0")
    assert study.base["data"]["path"] == str(tmp_path / "rows.jsonl"), "relative to the base config's own file"
    assert load_study(study.path, output_dir=tmp_path / "elsewhere").runs[0].folder == tmp_path / "elsewhere/a/seed3"


@pytest.mark.parametrize("text, message", [
    ("output_dir: o\nbase: {}\nvariants: {a: []}\nsteps: 3\n", "unknown key(s) ['steps']"),
    ("output_dir: o\nbase: {}\n", "'variants' is required"),
    ("output_dir: o\nbase: {}\nvariants: {a: [training.seed=3]}\n", "the study sets training.seed"),
    ("output_dir: o\nbase: {}\nvariants: {a/b: []}\n", "must be a folder name"),
    ("output_dir: o\nbase: {}\nvariants: {a: {overrides: [], seed: [1]}}\n", "unknown key(s) ['seed']"),
    ("output_dir: o\nbase: {}\nseeds: [1, 1]\nvariants: {a: []}\n", "seeds repeat"),
    ("output_dir: o\nbase: {}\nvariants: {a: [training.learning_rate]}\n", "'section.key=value' strings"),
])
def test_a_malformed_study_file_is_one_clear_error(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_study(write_study(tmp_path, text))
    assert message in str(error.value) and "study.yaml" in str(error.value)


def test_every_run_config_is_checked_before_anything_trains(tmp_path):
    study = load_study(write_study(tmp_path, f"""
output_dir: {tmp_path / 'out'}
base: {{training: {{max_steps: 2}}}}
variants:
  fine: [training.relevance_source=none]
  typo: [training.relevance_sorce=none]
"""))
    with pytest.raises(ConfigError) as error:
        write_run_configs(study, started=set())
    assert "variant 'typo'" in str(error.value) and "relevance_sorce" in str(error.value)
    assert "did you mean 'relevance_source'" in str(error.value)


def test_a_started_run_keeps_its_config(tmp_path):
    path = write_study(tmp_path, f"output_dir: {tmp_path / 'out'}\nbase: {{}}\nvariants: {{a: [training.beta=0.1]}}\n")
    study = load_study(path)
    write_run_configs(study, started=set())
    assert load_run_config(study.runs[0].config_path).training.beta == 0.1
    path.write_text(path.read_text().replace("0.1", "0.2"))
    with pytest.raises(ConfigError, match="trained with another config"):
        write_run_configs(load_study(path), started={study.runs[0].folder})


def test_the_shipped_testbed_study_checks(tmp_path):
    result = rtt_study(str(REPO / "configs" / "study_testbed.yaml"), "--out", str(tmp_path / "study"), "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    study = load_study(REPO / "configs" / "study_testbed.yaml", tmp_path / "study")
    configs = {run.name: load_run_config(run.config_path) for run in study.runs}
    sources = {name.split("/")[0]: config.training.relevance_source for name, config in configs.items()}
    assert sources["grpo-aon"] == sources["grpo-csr"] == "none"
    assert {"oracle", "model", "random"} <= set(sources.values())
    assert sum(name.startswith("grpo-csr/") for name in configs) >= 3
    assert max(sum(name.startswith(variant + "/") for name in configs)
               for variant in sources if sources[variant] != "none") >= 3, "3 seeds of the best RTT candidate"
    testbed = next(iter(configs.values())).data.testbed
    assert testbed.min_rubrics == testbed.max_rubrics == 4 and len(testbed.families) == 6
    assert all(config.model.name_or_path == "embedded:smollm2-135m-instruct" for config in configs.values())


def running_commands(needle: str) -> list[str]:
    """Command lines of live processes that mention ``needle``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if needle in command:
            found.append(command)
    return found


def logged_steps(folder: Path) -> list[int]:
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [record["step"] for record in records if "rubrics/satisfaction" in record]


def test_the_shipped_intra_study_checks_and_trains_a_chosen_variant_alone(tmp_path):
    """configs/study_intra.yaml: every variant intra_sample in the pilot's regime, the seeds the issue asks for;
    --variants plans only the named variants' runs."""
    out = tmp_path / "study"
    result = rtt_study(str(REPO / "configs" / "study_intra.yaml"), "--out", str(out), "--dry-run",
                       "--variants", "grpo-csr", "random-intra")
    assert result.returncode == 0, result.stderr[-3000:]
    planned = [line.split()[0] for line in result.stdout.splitlines() if "/seed" in line.split()[0]]
    assert planned == [f"{variant}/seed{seed}" for seed in range(5) for variant in ("grpo-csr", "random-intra")]
    assert not (out / "oracle-intra").exists()
    result = rtt_study(str(REPO / "configs" / "study_intra.yaml"), "--out", str(out), "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    study = load_study(REPO / "configs" / "study_intra.yaml", out)
    configs = {run.name: load_run_config(run.config_path) for run in study.runs}
    seeds = {variant: sum(name.startswith(variant + "/") for name in configs)
             for variant in {name.split("/")[0] for name in configs}}
    assert seeds["grpo-csr"] == seeds["oracle-intra"] == seeds["random-intra"] == seeds["decoder-intra"] == 5
    assert min(seeds.values()) >= 3
    rtt = [config.training for name, config in configs.items() if not name.startswith("grpo-csr/")]
    assert {training.token_partition for training in rtt} == {"intra_sample"}
    assert {(training.token_advantage_coef, training.stop_credit) for training in rtt} == {(0.2, False)}, "round 8"
    assert all(config.data.testbed.quality_rubrics and config.eval.num_prompts >= 64 and config.eval.samples == 2
               for config in configs.values())
    assert "pilot never saw" in (REPO / "configs" / "study_intra.yaml").read_text()
    pilot = load_study(REPO / "configs" / "pilot_intra.yaml", tmp_path / "pilot")
    study_config = next(iter(configs.values()))
    assert pilot.base["eval"]["seed"] != study_config.eval.seed
    assert pilot.base["data"]["testbed"]["seed"] != study_config.data.testbed.seed
    assert not {run.seed for run in pilot.runs} & {run.seed for run in study.runs}
    unknown = rtt_study(str(REPO / "configs" / "study_intra.yaml"), "--out", str(out), "--variants", "grpo")
    assert unknown.returncode != 0 and "--variants: grpo not in" in unknown.stderr


def test_a_killed_study_resumes_its_second_run_without_repeating_the_first(tiny_model_dir, tmp_path):
    out = tmp_path / "study"
    path = write_study(tmp_path, TINY_STUDY.format(out=out, model=tiny_model_dir, steps=4))
    first, second = out / "grpo" / "seed0", out / "rtt" / "seed0"
    study = subprocess.Popen([sys.executable, "-m", "rubrics2tokens.cli.main", "study", str(path)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.time() + 400
        while not (second / "checkpoint-2" / "trainer_state.json").exists():
            assert study.poll() is None and time.time() < deadline, "the study ended before its second run's 2nd step"
            time.sleep(0.2)
        study.send_signal(signal.SIGKILL)  # the study only: its training child must die with it
        study.wait()
        deadline = time.time() + 30
        while running_commands(str(second / "study_run.yaml")):
            assert time.time() < deadline, "the second run's training outlived the killed study"
            time.sleep(0.2)
    finally:
        os.killpg(study.pid, signal.SIGKILL) if study.poll() is None else None
    assert (first / "finished.json").is_file() and not (second / "finished.json").exists()
    (second / "checkpoint-99").mkdir()  # a save the kill cut short: no trainer_state.json yet
    (second / "checkpoint-99" / "model.safetensors").write_bytes(b"partial")
    first_metrics = (first / "metrics.jsonl").read_bytes()
    first_model = (first / "final" / "model.safetensors").stat().st_mtime_ns

    resumed = rtt_study(str(path))
    assert resumed.returncode == 0, resumed.stderr[-3000:] + resumed.stdout[-3000:]
    assert "(1 finished, 1 to run, 1 at a time)" in resumed.stdout
    assert "[rtt/seed0] resuming from checkpoint-" in resumed.stdout and "[grpo/seed0]" not in resumed.stdout
    assert "from checkpoint-99" not in resumed.stdout
    assert "checkpoint-99: an incomplete checkpoint" in (second / "train.log").read_text()
    assert not (second / "checkpoint-99").exists()
    assert (first / "metrics.jsonl").read_bytes() == first_metrics, "the finished run was not touched"
    assert (first / "final" / "model.safetensors").stat().st_mtime_ns == first_model
    assert len((first / "attempts.jsonl").read_text().splitlines()) == 2, "one start, one end"
    attempts = [json.loads(line) for line in (second / "attempts.jsonl").read_text().splitlines()]
    assert [(a["event"], a.get("resumed"), a.get("returncode")) for a in attempts] == [
        ("start", False, None), ("end", None, None), ("start", True, None), ("end", None, 0)]
    assert attempts[1]["wall_s"] > 0 and "killed" in attempts[1]["note"], "the killed attempt's time is kept"
    assert logged_steps(second) == [1, 2, 3, 4], "no step lost, none repeated"
    assert not list(out.glob("*/seed0/checkpoint-*")), "a finished run's checkpoints are deleted"
    assert yaml.safe_load((second / "study_run.yaml").read_text())["training"]["token_partition"] == "signed"
    assert json.loads((second / "finished.json").read_text())["wall_s"] == pytest.approx(
        attempts[1]["wall_s"] + attempts[3]["wall_s"], abs=0.2)
    report = json.loads((out / "report" / "report.json").read_text())
    assert {run["variant"] for run in report["runs"]} == {"grpo", "rtt"}
    assert "held-out outcome" in resumed.stdout and (out / "report" / "report.html").is_file()

    again = rtt_study(str(path))
    assert again.returncode == 0 and "(2 finished, 0 to run" in again.stdout
    assert len((second / "attempts.jsonl").read_text().splitlines()) == 4, "nothing finished runs again"


def test_jobs_train_runs_side_by_side(tiny_model_dir, tmp_path):
    out = tmp_path / "study"
    path = write_study(tmp_path, TINY_STUDY.format(out=out, model=tiny_model_dir, steps=2))
    result = rtt_study(str(path), "--jobs", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    ends = []
    for variant in ("grpo", "rtt"):
        _, end = [json.loads(line) for line in (out / variant / "seed0" / "attempts.jsonl").read_text().splitlines()]
        assert end["returncode"] == 0 and logged_steps(out / variant / "seed0") == [1, 2]
        ends.append(end)
    starts = sorted(datetime.fromisoformat(end["started_at"]).timestamp() for end in ends)
    assert starts[1] - starts[0] < min(end["wall_s"] for end in ends), "the second run started before the first ended"


def test_one_study_at_a_time_trains_in_a_folder(tmp_path):
    import fcntl

    out = tmp_path / "study"
    path = write_study(tmp_path, f"output_dir: {out}\nbase: {{}}\nvariants: {{a: []}}\n")
    out.mkdir()
    with (out / ".study.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = rtt_study(str(path))
    assert result.returncode == 1 and "another rtt study is training in" in result.stderr
    assert not (out / "a" / "seed0" / "attempts.jsonl").exists()



def killed_while_writing(setup: str, write: str, max_file_bytes: int) -> None:
    """Run `setup`, then `write`, in a fresh Python that may then write files up to `max_file_bytes` only: the
    write that goes past it kills the process (SIGXFSZ, which Python ignores unless told), as a kill in the
    middle of a write would, and leaves the bytes before it."""
    limit = ("import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_DFL); "
             f"resource.setrlimit(resource.RLIMIT_FSIZE, ({max_file_bytes}, {max_file_bytes}))")
    child = subprocess.run([sys.executable, "-c", "\n".join([setup, limit, write])], capture_output=True, text=True,
                           timeout=120, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert child.returncode == -signal.SIGXFSZ, child.stderr[-2000:]


def test_a_kill_while_finished_json_is_written_leaves_the_run_to_resume(tmp_path):
    """issue 20 defect 9: study records written atomically. A study killed while writing a run's finished.json
    leaves no truncated file (`rtt report` would fail on it, a resumed study would skip the run as finished): the
    run still counts as interrupted, so the resumed study finishes it."""
    run = PlannedRun("a", 0, tmp_path / "a" / "seed0", ())
    (run.folder / "final").mkdir(parents=True)
    (run.folder / "checkpoint-4").mkdir()  # a finished run's checkpoints go only after finished.json is written
    killed_while_writing("from pathlib import Path\n"
                         "from rubrics2tokens.study.runner import _mark_finished\n"
                         "from rubrics2tokens.study.spec import PlannedRun\n"
                         f"run = PlannedRun('a', 0, Path({str(run.folder)!r}), ())",
                         "_mark_finished(run, 12.5, keep_checkpoints=False)", max_file_bytes=20)
    finished = run.folder / FINISHED
    assert not finished.exists() or json.loads(finished.read_text())["wall_s"] == 12.5, "no half-written record"
    assert run_state(run) == "interrupted"


def test_a_cut_last_line_of_attempts_jsonl_is_skipped_with_one_warning(tmp_path, caplog):
    """issue 20 defect 9: study records written atomically. A study killed while appending to attempts.jsonl
    leaves a cut last line: the resumed study reads the complete records, warns once, and its next record starts
    on a line of its own."""
    path = tmp_path / ATTEMPTS
    _append(path, {"event": "start", "started_at": "2026-01-01T00:00:00.000+00:00", "resumed": False})
    _append(path, {"event": "end", "started_at": "2026-01-01T00:00:00.000+00:00", "returncode": 1, "wall_s": 3.0})
    killed_while_writing("from pathlib import Path\n"
                         "from rubrics2tokens.study.runner import _append",
                         f"_append(Path({str(path)!r}), {{'event': 'start', "
                         "'started_at': '2026-01-02T00:00:00.000+00:00', 'resumed': True})",
                         max_file_bytes=path.stat().st_size + 15)
    assert not path.read_text().endswith("\n"), "the kill cut the last line"

    with caplog.at_level(logging.WARNING, logger="rubrics2tokens.study.runner"):
        assert run_wall_s(tmp_path) == 3.0
    assert len([record for record in caplog.records if ATTEMPTS in record.getMessage()]) == 1

    _append(path, {"event": "start", "started_at": "2026-01-03T00:00:00.000+00:00", "resumed": True})
    assert [record["started_at"][:10] for record in _attempt_records(tmp_path)] == [
        "2026-01-01", "2026-01-01", "2026-01-03"]


def test_the_floor_study_is_the_first_regime_with_the_floor_a_longer_limit_and_new_prompts(tmp_path):
    """configs/study_floor.yaml (docs/study.md: the first regime failed on its prompts; pilot rounds 9, 10, 12)."""
    configs = {}
    for name in ("study_intra", "study_floor"):
        result = rtt_study(str(REPO / "configs" / f"{name}.yaml"), "--out", str(tmp_path / name), "--dry-run")
        assert result.returncode == 0, result.stderr[-3000:]
        study = load_study(REPO / "configs" / f"{name}.yaml", tmp_path / name)
        configs[name] = {run.name: load_run_config(run.config_path) for run in study.runs}
    first, floor = configs["study_intra"], configs["study_floor"]
    assert set(first) == set(floor), "the same variants and seeds"
    for run, config in floor.items():
        testbed, before = config.data.testbed, first[run].data.testbed
        assert testbed.quality_rubrics == [*before.quality_rubrics, "length_floor"]
        assert testbed.seed not in (before.seed, 100) and config.eval.seed not in (first[run].eval.seed, 2000)
        train, train_before = config.training, first[run].training
        assert (train.learning_rate, train.max_steps, train.token_partition, train.relevance_source) == (
            train_before.learning_rate, train_before.max_steps, train_before.token_partition,
            train_before.relevance_source)
        assert (train_before.max_completion_length, train.max_completion_length) == (128, 192), "round 12"
        if not run.startswith("grpo-csr/"):
            assert (train.token_advantage_coef, train.stop_credit) == (0.1, False), "round 10"
