"""Run a study's runs as `rtt train` subprocesses, one after another or ``jobs`` at once, resumably.

A run's folder tells its state: ``finished.json`` (written here once `rtt train` exited 0 and left
``final/``) means done, and the run is skipped; a ``checkpoint-*`` folder means interrupted, and the run
continues with ``--resume`` (which passes over a checkpoint whose save a kill cut short); anything else
starts fresh. So after a kill the same command runs only what is not finished, and nothing finished is
repeated. Every attempt appends its wall time and exit
code to ``attempts.jsonl`` (one line as it starts, one as it ends) and its output to ``train.log`` in
the run's folder. A finished run's checkpoints are deleted unless kept (its model is in ``final/``).

A kill can come in the middle of a write: ``finished.json`` is written whole or not at all (a temporary
file, then a rename), and a cut last line of ``attempts.jsonl`` is skipped when read (with a warning) and
cut off before the next line is appended.

A child dies with the study (Linux: ``PR_SET_PDEATHSIG``): a killed study leaves no orphan run that would
race the resumed one in the same folder; and one study at a time trains in a folder (a lock file).
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from rubrics2tokens.checkpoints import checkpoints, last_complete_checkpoint
from rubrics2tokens.study.spec import PlannedRun, Study, write_run_configs

FINISHED = "finished.json"
ATTEMPTS = "attempts.jsonl"
LOG = "train.log"
LOCK = ".study.lock"  # held by the study training in a folder
POLL_S = 0.5
STOP_GRACE_S = 30.0  # how long a run may take to stop after SIGTERM before it is killed

Echo = Callable[[str], None]

logger = logging.getLogger(__name__)


def is_finished(folder: Path) -> bool:
    return (folder / FINISHED).is_file() and (folder / "final").is_dir()


class StudyBusyError(RuntimeError):
    """Another `rtt study` is training in the same folder."""


@contextmanager
def study_lock(output_dir: Path) -> Iterator[None]:
    """Hold the study folder for this process (released when it exits, however it exits)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with (output_dir / LOCK).open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StudyBusyError(f"another rtt study is training in {output_dir}; wait for it or stop it "
                                 "(its runs resume when you rerun the command)") from None
        yield


def run_state(run: PlannedRun) -> str:
    """'finished', 'interrupted' (a checkpoint, `rtt train --resume` continues) or 'new'."""
    if is_finished(run.folder):
        return "finished"
    return "interrupted" if checkpoints(run.folder) else "new"


def train_command(run: PlannedRun, resume: bool) -> list[str]:
    # The run keeps its checkpoints: the study drops them itself once finished.json is written, so a kill in
    # between leaves a run that is finished or resumable, never one that must train again (`_mark_finished`).
    return [sys.executable, "-m", "rubrics2tokens.cli.main", "train", str(run.config_path),
            "training.keep_checkpoints=true", *(["--resume"] if resume else [])]


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the study process dies (Linux only; elsewhere a no-op)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except OSError:
        pass


def _child_env(jobs: int) -> dict[str, str]:
    """Runs side by side share the cores: unless the user chose, each gets its share of torch threads."""
    env = dict(os.environ)
    if jobs > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env


def _write_whole(path: Path, text: str) -> None:
    """Write ``path`` so that a kill leaves the old file or the new one, never part of it: a temporary file in
    the same folder, flushed to disk, then renamed over it (a rename within a file system is atomic)."""
    temporary = path.with_name(f".{path.name}.partial")
    with temporary.open("w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def _append(path: Path, record: dict) -> None:
    """Append one line to a JSON-lines file. A cut last line (a kill during an earlier append) is cut off
    first, so the new record starts a line of its own instead of continuing the broken one."""
    if path.is_file():
        data = path.read_bytes()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            os.truncate(path, complete)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def _attempt_records(folder: Path) -> list[dict]:
    """The records of ``attempts.jsonl``; a cut last line (the study was killed while appending it) is skipped."""
    path = folder / ATTEMPTS
    if not path.is_file():
        return []
    *lines, cut = path.read_text(encoding="utf-8").split("\n")  # every complete line ends with a newline
    if cut:
        logger.warning("%s: skipping its last line, cut short by a kill while it was written: %r", path, cut)
    return [json.loads(line) for line in lines if line]


def _close_killed_attempts(folder: Path) -> None:
    """An attempt that started but never ended died with its study: its end is the last write to its log."""
    records = _attempt_records(folder)
    ended = {record["started_at"] for record in records if record["event"] == "end"}
    for record in records:
        if record["event"] == "start" and record["started_at"] not in ended:
            last_write = (folder / LOG).stat().st_mtime if (folder / LOG).is_file() else None
            started = datetime.fromisoformat(record["started_at"]).timestamp()
            _append(folder / ATTEMPTS, {"event": "end", "started_at": record["started_at"], "returncode": None,
                                        "wall_s": round(max(0.0, (last_write or started) - started), 1),
                                        "note": "killed; wall time up to the last write to train.log"})


def run_wall_s(folder: Path) -> float:
    """Wall time of a run over all its attempts."""
    return round(sum(record["wall_s"] for record in _attempt_records(folder) if record["event"] == "end"), 1)


class _Attempt:
    """One `rtt train` subprocess of a run, started now. attempts.jsonl gets a line when it starts and one
    when it ends (for an attempt killed with the study, when the next attempt starts)."""

    def __init__(self, run: PlannedRun, resume: bool, jobs: int):
        _close_killed_attempts(run.folder)
        self.run, self.resume = run, resume
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        self.start = time.monotonic()
        self.log = (run.folder / LOG).open("a", encoding="utf-8")
        self.log.write(f"\n==== {self.started_at} {' '.join(train_command(run, resume))}\n")
        self.log.flush()
        _append(run.folder / ATTEMPTS, {"event": "start", "started_at": self.started_at, "resumed": resume})
        self.process = subprocess.Popen(train_command(run, resume), stdout=self.log, stderr=subprocess.STDOUT,
                                        env=_child_env(jobs), preexec_fn=_die_with_parent)

    def record(self, returncode: int) -> float:
        """Append this attempt's end; return the run's wall time over all its attempts."""
        self.log.close()
        _append(self.run.folder / ATTEMPTS, {"event": "end", "started_at": self.started_at, "returncode": returncode,
                                             "wall_s": round(time.monotonic() - self.start, 1)})
        return run_wall_s(self.run.folder)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def _log_tail(folder: Path, lines: int = 15) -> str:
    text = (folder / LOG).read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join("    " + line for line in text[-lines:])


def _mark_finished(run: PlannedRun, wall_s: float, keep_checkpoints: bool) -> None:
    """Write finished.json; then, unless kept, drop the run's checkpoints (a finished run resumes from none;
    with the optimizer state a SmolLM2 checkpoint is 1.6 GB, final/ holds the model)."""
    _write_whole(run.folder / FINISHED, json.dumps({
        "variant": run.variant, "seed": run.seed, "wall_s": wall_s,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}) + "\n")
    if not keep_checkpoints:
        for checkpoint in checkpoints(run.folder):
            shutil.rmtree(checkpoint)


def run_study(study: Study, jobs: int = 1, keep_checkpoints: bool = False, echo: Echo = print) -> list[PlannedRun]:
    """Train every run of ``study`` that is not finished; return the runs that failed (empty: all done)."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    with study_lock(study.output_dir):
        states = {run: run_state(run) for run in study.runs}
        write_run_configs(study, started={run.folder for run, state in states.items() if state != "new"})
        pending = [run for run in study.runs if states[run] != "finished"]
        echo(f"study {study.path}: {len(study.runs)} runs in {study.output_dir}/ ({len(study.runs) - len(pending)} "
             f"finished, {len(pending)} to run, {jobs} at a time)")
        return _train(pending, jobs, keep_checkpoints, echo)


def _train(pending: list[PlannedRun], jobs: int, keep_checkpoints: bool, echo: Echo) -> list[PlannedRun]:
    running: list[_Attempt] = []
    failed: list[PlannedRun] = []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                run = pending.pop(0)
                resume = run_state(run) == "interrupted"
                running.append(_Attempt(run, resume, jobs))
                checkpoint = last_complete_checkpoint(run.folder)
                how = ("starting" if not resume else f"resuming from {checkpoint.name}" if checkpoint
                       else "resuming: no complete checkpoint, starting over")
                echo(f"[{run.name}] {how}; log: {run.folder / LOG}")
            time.sleep(POLL_S)
            for attempt in [attempt for attempt in running if attempt.process.poll() is not None]:
                running.remove(attempt)
                returncode = attempt.process.returncode
                wall_s = attempt.record(returncode)
                run = attempt.run
                if returncode == 0 and (run.folder / "final").is_dir():
                    _mark_finished(run, wall_s, keep_checkpoints)
                    echo(f"[{run.name}] finished ({wall_s:.0f} s of wall time over all its attempts)")
                else:
                    failed.append(run)
                    echo(f"[{run.name}] FAILED (exit {returncode}); last lines of its log:\n"
                         f"{_log_tail(run.folder)}")
    finally:
        for attempt in running:  # interrupted (Ctrl-C, SIGTERM): stop the runs; their checkpoints stay
            attempt.stop()
    return failed
