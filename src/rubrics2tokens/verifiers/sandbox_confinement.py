"""What the child that runs a dataset rule gives up before the rule runs: inherited descriptors, resources
(time, memory, file size, processes, core dumps), dangerous imports, process-spawning ``os`` functions and
any path outside its temporary directory. See `rubrics2tokens.verifiers.sandbox` for what this does and
does not protect against."""

from __future__ import annotations

import os
import sys
from typing import Any

FILE_SIZE_LIMIT_BYTES = 16 * 1024 * 1024

BLOCKED_MODULES = frozenset({
    "socket", "_socket", "ssl", "_ssl", "ctypes", "_ctypes", "subprocess", "_posixsubprocess",
    "multiprocessing", "_multiprocessing", "pty", "resource",
})
"""Top-level modules a rule may not import: network, native calls, new processes, raising limits."""

REFUSED_OS_FUNCTIONS = ("system", "popen", "fork", "forkpty", "kill", "killpg", "posix_spawn",
                        "posix_spawnp", "execv", "execve", "execl", "execle", "execlp", "execlpe",
                        "execvp", "execvpe", "spawnv", "spawnve", "spawnl", "spawnle")

PATH_OS_FUNCTIONS = ("open", "listdir", "scandir", "stat", "lstat", "access", "remove", "unlink", "rmdir",
                     "mkdir", "rename", "replace", "link", "symlink", "readlink", "chdir", "chmod", "chown",
                     "truncate", "utime", "mkfifo")
"""``os`` functions whose path arguments must stay inside the rule's temporary directory."""



def confine(workdir: str, result_fd: int, memory_mb: int, timeout_s: float) -> None:
    """Everything the child gives up before it runs the rule (order matters: limits first, patches last)."""
    _close_inherited_fds(keep=result_fd)
    _set_resource_limits(memory_mb, timeout_s)
    os.chdir(workdir)
    _block_imports(BLOCKED_MODULES)
    _refuse_os_functions(REFUSED_OS_FUNCTIONS)
    _restrict_paths_to(workdir)


def _close_inherited_fds(keep: int) -> None:
    """Close the worker's protocol pipes (and anything else inherited) so a rule cannot forge other replies."""
    os.closerange(3, keep)
    os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))


def _set_resource_limits(memory_mb: int, timeout_s: float) -> None:
    import math
    import resource

    cpu_s = math.ceil(timeout_s) + 1  # backstop: the worker's wall clock kills the child first
    limits = {
        resource.RLIMIT_AS: memory_mb * 1024 * 1024,
        resource.RLIMIT_CPU: cpu_s,
        resource.RLIMIT_FSIZE: FILE_SIZE_LIMIT_BYTES,
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_NPROC: 0,  # no new processes (not enforced for root)
    }
    for kind, value in limits.items():
        resource.setrlimit(kind, (value, value))


class _ImportBlocker:
    """A ``sys.meta_path`` finder that refuses the blocked top-level modules."""

    def __init__(self, blocked: frozenset[str]):
        self.blocked = blocked

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.blocked:
            raise ImportError(f"module {name!r} is not available to dataset rules")
        return None


def _block_imports(blocked: frozenset[str]) -> None:
    for name in list(sys.modules):
        if name.partition(".")[0] in blocked:
            del sys.modules[name]
    sys.meta_path.insert(0, _ImportBlocker(blocked))


def _refused(name: str):
    def refuse(*args, **kwargs):
        raise PermissionError(f"{name} is not available to dataset rules")

    return refuse


def _refuse_os_functions(names: tuple[str, ...]) -> None:
    import posix

    for module in (os, posix):
        for name in names:
            if hasattr(module, name):
                setattr(module, name, _refused(f"os.{name}"))


def _restrict_paths_to(workdir: str) -> None:
    """Make ``open`` and the path functions of ``os`` refuse paths that leave ``workdir``."""
    import builtins
    import io
    import posix

    root = os.path.realpath(workdir)  # computed before the os functions it relies on are wrapped

    def inside(argument: Any) -> bool:
        if not isinstance(argument, (str, bytes, os.PathLike)):
            return True  # a mode, flags, an fd
        path = os.fsdecode(os.fspath(argument))
        # normpath, not realpath: realpath would call the wrapped os functions. No link that leads out
        # can be made (link and symlink check both their paths), so the textual check suffices.
        return os.path.normpath(os.path.join(root, path)).startswith(root + os.sep) \
            or os.path.normpath(os.path.join(root, path)) == root

    def confined(name: str, function):
        def wrapper(*args, **kwargs):
            if not all(inside(argument) for argument in args):
                raise PermissionError(f"{name}: dataset rules may only touch files in their working directory")
            return function(*args, **kwargs)

        return wrapper

    builtins.open = io.open = confined("open", io.open)
    for module in (os, posix):
        for name in PATH_OS_FUNCTIONS:
            if hasattr(module, name):
                setattr(module, name, confined(f"os.{name}", getattr(module, name)))
