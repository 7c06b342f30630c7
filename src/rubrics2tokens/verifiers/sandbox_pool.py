"""Trainer side of the dataset-rule sandbox: `RuleSandbox`, a pool of worker processes spoken to with one JSON
line per request and per reply (the worker is `sandbox_worker`); a worker that stops answering is replaced."""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from rubrics2tokens.verifiers.sandbox_worker import REPLY_LIMIT_BYTES, RuleOutcome

logger = logging.getLogger(__name__)

WORKER_START_TIMEOUT_S = 30.0
WORKER_REPLY_MARGIN_S = 5.0
"""Extra time the trainer gives a worker beyond the rule's own limit before replacing the worker."""


@dataclass(frozen=True)
class SandboxLimits:
    """Per-check limits and the number of worker processes."""

    timeout_s: float = 2.0
    memory_mb: int = 512
    workers: int = 2

    def __post_init__(self):
        if self.timeout_s <= 0 or self.memory_mb < 64 or self.workers < 1:
            raise ValueError(f"invalid sandbox limits {self}: timeout_s > 0, memory_mb >= 64, workers >= 1")


class RuleSandbox:
    """A pool of worker processes that run rules; safe to call from several threads."""

    def __init__(self, limits: SandboxLimits = SandboxLimits()):
        self.limits = limits
        self._idle: queue.SimpleQueue[_Worker | None] = queue.SimpleQueue()
        for _ in range(limits.workers):
            self._idle.put(None)  # a slot whose worker starts on first use
        self._workers: set[_Worker] = set()
        atexit.register(self.close)

    def run(self, code: str, function: str, args: tuple[Any, ...]) -> RuleOutcome:
        """Call ``function(*args)`` defined by ``code`` in a fresh child process; never raises."""
        if not isinstance(code, str) or not isinstance(function, str):
            return RuleOutcome(None, "the rule's code and function name must be strings")
        worker = self._idle.get()
        request = {"code": code, "function": function, "args": list(args),
                   "timeout_s": self.limits.timeout_s, "memory_mb": self.limits.memory_mb}
        try:
            worker = self._ready(worker)
            reply = worker.ask(request, self.limits.timeout_s + WORKER_REPLY_MARGIN_S)
        except (OSError, ValueError) as error:
            logger.warning("rule sandbox worker failed: %s", error)
            reply = None
        if reply is None:  # the worker itself misbehaved: replace it
            self._discard(worker)
            self._idle.put(None)
            return RuleOutcome(None, "the sandbox worker did not answer")
        self._idle.put(worker)
        return RuleOutcome(reply.get("passed"), str(reply.get("reason", "")))

    def close(self) -> None:
        for worker in list(self._workers):
            self._discard(worker)

    def _ready(self, worker: _Worker | None) -> _Worker:
        """The slot's worker, or a new one where it has none or its worker died."""
        if worker is not None and worker.alive():
            return worker
        self._discard(worker)
        worker = _Worker()
        self._workers.add(worker)
        return worker

    def _discard(self, worker: _Worker | None) -> None:
        if worker is not None:
            worker.kill()
            self._workers.discard(worker)


class _Worker:
    """One worker process, spoken to with one JSON line per request and per reply."""

    _reported_network = False

    def __init__(self):
        command = "from rubrics2tokens.verifiers.sandbox_worker import serve_worker; serve_worker()"
        # -I: ignore PYTHON* variables, user site-packages and the current directory; env={}: no
        # credentials or proxies reach the rules.
        self.process = subprocess.Popen([sys.executable, "-I", "-c", command], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={},
                                        cwd=tempfile.gettempdir(), start_new_session=True)
        hello = self._read_reply(time.monotonic() + WORKER_START_TIMEOUT_S)
        if hello is None or not hello.get("ready"):
            self.kill()
            raise OSError("the rule sandbox worker did not start")
        self._report_network_isolation(bool(hello.get("network_namespace")))

    def alive(self) -> bool:
        return self.process.poll() is None

    def ask(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        self.process.stdin.flush()
        return self._read_reply(time.monotonic() + timeout_s)

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            stream.close()

    def _read_reply(self, deadline: float) -> dict[str, Any] | None:
        line = _read_line(self.process.stdout.fileno(), deadline)
        try:
            return json.loads(line) if line else None
        except ValueError:
            return None

    @classmethod
    def _report_network_isolation(cls, in_namespace: bool) -> None:
        if cls._reported_network:
            return
        cls._reported_network = True
        if in_namespace:
            logger.info("dataset rules run in an empty network namespace")
        else:
            logger.warning("could not give dataset rules an empty network namespace (unshare refused); "
                           "network access is blocked only by Python-level patches")


def _read_line(fd: int, deadline: float) -> bytes | None:
    """Read up to a newline from ``fd`` before ``deadline``; ``None`` on timeout, EOF or an overlong line."""
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or len(data) > REPLY_LIMIT_BYTES or not select.select([fd], [], [], remaining)[0]:
            return None
        chunk = os.read(fd, REPLY_LIMIT_BYTES)
        if not chunk:
            return None
        data += chunk
    return data
