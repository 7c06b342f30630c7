"""Run dataset-supplied Python rules (HIR-16K type4 ``[rule]`` checkers) outside the trainer, under limits.

A rule is Python source from the data that defines ``check_following(instruction, response) -> bool``
(the HIR-16K / VerIF convention; the RTT authors call it with the row's ``prompt`` and the response, in
a namespace that already holds ``re``). It is registered as the verifier ``dataset_rule`` with kwargs
``{"code": ..., "function": "check_following", "instruction": <prompt>}``.

It is untrusted code (method.md §6), so:

* Nothing runs unless the user opts in with ``allow_dataset_code(True)``. Until then every
  ``dataset_rule`` verdict is unknown and a one-time warning names the switch.
* Each check runs in its own process: a small pool of worker processes (started with ``python -I``
  and an empty environment) each forks a fresh child per check, so one rule cannot change what the
  next one sees. A worker that stops answering is killed and replaced.
* The child gets: a wall-time limit (killed on expiry; ``RLIMIT_CPU`` as a backstop), a memory
  limit (``RLIMIT_AS``), a file-size limit, no core dumps, no new processes (``RLIMIT_NPROC``),
  only its result pipe among the inherited file descriptors, and a fresh empty temporary directory
  as its working directory, deleted afterwards.
* Network: where the kernel allows it, each worker moves into a new, empty network namespace
  (``unshare``), which takes every interface but a down loopback away at the OS level. In every case
  the child also refuses, in Python, to import or construct sockets (``socket``, ``ssl``, ``ctypes``,
  ``subprocess``, ``multiprocessing``... cannot be imported).
* Files: ``open``, ``io.open`` and the path functions of ``os`` refuse any path outside the temporary
  directory; process-spawning and signal functions of ``os`` are refused.
* A crash, timeout, memory error, exception, missing function, syntax error or non-``bool`` result is
  ``Verdict.unknown()``, logged with the reason, never a fail.

Limits of this protection, stated plainly: the file, socket and import restrictions are Python-level
patches, and a determined attacker who knows CPython internals can get around them (e.g. through
objects reachable from ``object.__subclasses__()``, or ``_io.FileIO`` directly); running as root, the
process limit does not apply and the resource limits can be raised again. The OS-level parts (separate
process, resource limits, closed descriptors, empty environment, and the network namespace when it is
available) hold against such tricks, but they are not a security boundary either. For data you do
not trust, run training inside a container or VM without network access and without credentials.

The pieces: this module is the user's switch and the ``dataset_rule`` verifier; `sandbox_pool` the
trainer side (`RuleSandbox`, its worker processes); `sandbox_worker` a worker process and the child it
forks per check; `sandbox_confinement` what a child gives up before the rule runs.
"""

from __future__ import annotations

import logging
import threading

from rubrics2tokens.verifiers.base import Verdict
from rubrics2tokens.verifiers.registry import DATASET_RULE_ID, VERIFIERS, register_verifier
from rubrics2tokens.verifiers.sandbox_pool import RuleSandbox, SandboxLimits
# the pieces' names stay importable from here, where they lived before the split
from rubrics2tokens.verifiers.sandbox_confinement import (BLOCKED_MODULES, FILE_SIZE_LIMIT_BYTES,  # noqa: F401
                                                          PATH_OS_FUNCTIONS, REFUSED_OS_FUNCTIONS)
from rubrics2tokens.verifiers.sandbox_worker import (PREIMPORTED_MODULES, REPLY_LIMIT_BYTES,  # noqa: F401
                                                     RuleOutcome, serve_worker)

logger = logging.getLogger(__name__)

DEFAULT_FUNCTION = "check_following"


# ---------------------------------------------------------------- the user's switch


_allowed = False
_limits = SandboxLimits()
_default_sandbox: RuleSandbox | None = None
_warned_disallowed = False
_state_lock = threading.Lock()


def allow_dataset_code(allowed: bool = True, limits: SandboxLimits | None = None) -> None:
    """Let (or stop) ``dataset_rule`` verifiers run dataset code, optionally with other limits."""
    global _allowed, _limits, _default_sandbox
    with _state_lock:
        _allowed = bool(allowed)
        new_limits = limits or _limits
        if _default_sandbox is not None and (new_limits != _limits or not _allowed):
            _default_sandbox.close()
            _default_sandbox = None
        _limits = new_limits


def dataset_code_allowed() -> bool:
    return _allowed


def default_sandbox() -> RuleSandbox:
    """The shared sandbox the ``dataset_rule`` verifier uses, started on first use."""
    global _default_sandbox
    with _state_lock:
        if _default_sandbox is None:
            _default_sandbox = RuleSandbox(_limits)
        return _default_sandbox


def check_dataset_rule(response: str, *, code: str, function: str = DEFAULT_FUNCTION,
                       instruction: str = "") -> Verdict:
    """The ``dataset_rule`` verifier: run ``function(instruction, response)`` from ``code`` in the sandbox."""
    if not _allowed:
        _warn_disallowed_once()
        return Verdict.unknown()
    outcome = default_sandbox().run(code, function, (instruction, response))
    if outcome.passed is None:
        logger.warning("dataset rule %r gave no verdict (%s); verdict is unknown", function, outcome.reason)
        return Verdict.unknown()
    return Verdict(passed=outcome.passed, spans=None)


def register_dataset_rule_verifier() -> None:
    """Register ``dataset_rule`` (idempotent; the registry calls this on first use of the id)."""
    if DATASET_RULE_ID not in VERIFIERS:
        register_verifier(DATASET_RULE_ID, check_dataset_rule)


def _warn_disallowed_once() -> None:
    global _warned_disallowed
    if not _warned_disallowed:
        _warned_disallowed = True
        logger.warning("the data holds Python rules (verifier %r) but running dataset code is not allowed, so "
                       "their verdicts are unknown; allow it with "
                       "rubrics2tokens.verifiers.sandbox.allow_dataset_code(True) if you trust the data",
                       DATASET_RULE_ID)
