"""A dataset-rule worker process: reads one JSON request line, forks a fresh child that confines itself
(`sandbox_confinement`) and runs the rule, waits for it at most the rule's time limit, writes one JSON reply
line. The child's reply is not trusted either."""

from __future__ import annotations

import json
import os
import select
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from rubrics2tokens.verifiers.sandbox_confinement import confine

REPLY_LIMIT_BYTES = 64 * 1024
"""The most a child may write back; a longer reply is treated as a broken rule."""

PREIMPORTED_MODULES = ("re", "json", "string", "math", "collections", "itertools", "functools",
                       "unicodedata", "datetime", "random", "statistics", "textwrap", "difflib")
"""Modules rules commonly use, imported once by each worker so a check does not pay for them."""

@dataclass(frozen=True)
class RuleOutcome:
    """What one check gave: ``passed`` is ``None`` when it gave no usable verdict, and ``reason`` says why."""

    passed: bool | None
    reason: str = ""



def serve_worker() -> None:
    """Main loop of a worker process: one request line in, one fresh child per request, one reply line out."""
    requests, replies = _take_protocol_streams()
    in_namespace = _enter_empty_network_namespace()
    for name in PREIMPORTED_MODULES:
        __import__(name)
    replies.write(json.dumps({"ready": True, "network_namespace": in_namespace}) + "\n")
    replies.flush()
    for line in requests:
        outcome = _run_in_child(json.loads(line))
        replies.write(json.dumps({"passed": outcome.passed, "reason": outcome.reason}) + "\n")
        replies.flush()


def _take_protocol_streams():
    """Keep private copies of stdin/stdout for the protocol and point fds 0-2 at /dev/null.

    Whatever a rule prints then goes nowhere instead of corrupting the replies.
    """
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    return requests, replies


def _enter_empty_network_namespace() -> bool:
    """Move this worker (and so every child) into a new network namespace; ``False`` where not permitted."""
    import ctypes

    clone_newnet, clone_newuser = 0x40000000, 0x10000000
    libc = ctypes.CDLL(None, use_errno=True)
    # root may create a network namespace directly; anyone else needs a user namespace around it
    flags = clone_newnet if os.geteuid() == 0 else clone_newnet | clone_newuser
    return libc.unshare(flags) == 0


def _run_in_child(request: dict[str, Any]) -> RuleOutcome:
    """Fork a child that runs the rule confined to a fresh temporary directory; wait for it, at most the limit."""
    workdir = tempfile.mkdtemp(prefix="rtt-rule-")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns from here
        os.close(read_fd)
        _child_main(request, write_fd, workdir)
    os.close(write_fd)
    try:
        reply = _read_all(read_fd, time.monotonic() + request["timeout_s"])
        return _outcome_from_child(reply, _stop(pid), request["timeout_s"])
    finally:
        os.close(read_fd)
        _remove_tree(workdir)


def _read_all(fd: int, deadline: float) -> bytes | None:
    """Everything the child writes until it closes the pipe; ``None`` if that takes past ``deadline``."""
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return None
        chunk = os.read(fd, REPLY_LIMIT_BYTES)
        if not chunk or len(data) > REPLY_LIMIT_BYTES:
            return data
        data += chunk


def _stop(pid: int) -> int:
    """Kill the child if it still runs (a timeout), collect it, and return its wait status.

    Killing before collecting is safe: until waitpid, the pid stays ours even when the child has exited.
    """
    os.kill(pid, 9)
    return os.waitpid(pid, 0)[1]


def _outcome_from_child(reply: bytes | None, status: int, timeout_s: float) -> RuleOutcome:
    if reply is None:
        return RuleOutcome(None, f"timed out after {timeout_s:g} s")
    try:
        decoded = json.loads(reply)
        if isinstance(decoded["passed"], bool) or decoded["passed"] is None:  # the child is not trusted either
            return RuleOutcome(decoded["passed"], str(decoded["reason"])[:500])
    except (ValueError, KeyError, TypeError):
        pass
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) != 9:
        return RuleOutcome(None, f"the rule's process was killed by signal {os.WTERMSIG(status)}")
    return RuleOutcome(None, "the rule's process ended without a valid reply")


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _child_main(request: dict[str, Any], result_fd: int, workdir: str) -> None:
    try:
        confine(workdir, result_fd, request["memory_mb"], request["timeout_s"])
        outcome = _call_rule(request["code"], request["function"], request["args"])
    except MemoryError:
        outcome = RuleOutcome(None, f"memory limit of {request['memory_mb']} MB exceeded")
    except BaseException as error:  # anything the rule does wrong is reported, never raised
        outcome = RuleOutcome(None, f"{type(error).__name__}: {error}")
    try:
        os.write(result_fd, json.dumps({"passed": outcome.passed, "reason": outcome.reason[:500]}).encode())
    finally:
        os._exit(0)


def _call_rule(code: str, function: str, args: list[Any]) -> RuleOutcome:
    import re

    namespace: dict[str, Any] = {"__name__": "dataset_rule", "re": re}  # the authors' rules may use re unimported
    exec(compile(code, "<dataset rule>", "exec"), namespace)
    rule = namespace.get(function)
    if not callable(rule):
        return RuleOutcome(None, f"the code defines no function {function!r}")
    result = rule(*args)
    if not isinstance(result, bool):
        return RuleOutcome(None, f"the rule returned {type(result).__name__}, not bool")
    return RuleOutcome(result)
