"""Data the package ships so that a machine without internet has everything its checkers and benchmarks need.

- The benchmark test sets `rtt eval` reads when no ``--data`` is given (`benchmark_file`), and the official IFEval
  reference verdicts that show our IFEval checkers reproduce the official ones (`ifeval_reference_file`).
- The English NLTK data of the IFEval/IFBench checkers (`nltk_data_dir`), as one zip that is unpacked once into
  the cache: NLTK reads plain folders, and `if-verifiable` looks for them at import.

Each file's source and licence are in ``README.md`` beside this module.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = HERE / "benchmarks"
BENCHMARK_FILES = {
    "ifeval": BENCHMARKS / "ifeval" / "input_data.jsonl.gz",
    "ifbench": BENCHMARKS / "ifbench" / "IFBench_test.jsonl.gz",
    "muldimif": BENCHMARKS / "muldimif" / "test.json.gz",
}
"""Benchmark name -> its shipped test set, byte for byte the public release (gzip-compressed)."""
NLTK_ARCHIVE = HERE / "nltk_data_en.zip"


def cache_dir() -> Path:
    """Where the package keeps what it derives from shipped files: ``$RTT_CACHE`` or ``~/.cache/rubrics2tokens``."""
    return Path(os.environ.get("RTT_CACHE", Path.home() / ".cache" / "rubrics2tokens"))


def benchmark_file(benchmark: str) -> Path:
    """The shipped test set of ``ifeval``, ``ifbench`` or ``muldimif``."""
    if benchmark not in BENCHMARK_FILES:
        raise ValueError(f"no shipped test set for {benchmark!r}; shipped: {', '.join(BENCHMARK_FILES)}")
    return BENCHMARK_FILES[benchmark]


def ifeval_reference_file(mode: str) -> Path:
    """The official IFEval verdicts (``strict`` or ``loose``) on one published set of responses."""
    if mode not in ("strict", "loose"):
        raise ValueError(f"mode must be 'strict' or 'loose', got {mode!r}")
    return BENCHMARKS / "ifeval" / "reference" / f"eval_results_{mode}.jsonl.gz"


@functools.cache
def nltk_data_dir() -> Path:
    """The shipped NLTK data as a folder NLTK can read, unpacked on first use (an `OSError` if it cannot be).

    The folder is named after the archive's digest, so a package upgrade that changes the data unpacks anew.
    Several processes may start at once (a distributed run): each unpacks into its own temporary folder and
    renames it into place; a process that loses the race drops its copy.
    """
    digest = hashlib.sha256(NLTK_ARCHIVE.read_bytes()).hexdigest()[:12]
    target = cache_dir() / "nltk_data" / f"en-{digest}"
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=target.parent))
        with zipfile.ZipFile(NLTK_ARCHIVE) as archive:
            archive.extractall(partial)
        try:
            partial.rename(target)
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
            if not target.is_dir():
                raise
    return target
