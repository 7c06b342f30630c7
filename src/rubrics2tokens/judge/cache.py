"""A persistent on-disk cache of judge verdicts (sqlite3 in WAL mode, safe to share between processes).

The key is a SHA-256 of (judge model, instruction, response, rubric), so a different judge model never
reuses another's verdicts. Only definite verdicts (YES/NO) are stored: an unknown verdict may be a
transient fault and must be asked again next time.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable, Mapping

from rubrics2tokens.judge.prompt import JudgeQuestion

# Writers from other processes (one per trainer rank) may hold the lock for a moment.
_BUSY_TIMEOUT_S = 30.0


def cache_key(model: str, question: JudgeQuestion) -> str:
    fields = [model, question.instruction, question.response, question.rubric]
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode("utf-8")).hexdigest()


def _switch_to_wal(connection: sqlite3.Connection) -> None:
    """Put the file in WAL mode. On a fresh file this fails at once with "database is locked" (sqlite calls
    no busy handler here) when another process opens the file at the same moment, as every rank of a
    multi-process run does at its start (18 of 300 opens in 150 two-process starts failed): retry it."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class VerdictCache:
    """``lookup(keys) -> {key: verdict}`` for the keys it knows; ``store({key: verdict})``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection used from whichever thread calls; the lock serializes those calls.
        self._connection = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._connection:
            _switch_to_wal(self._connection)
            self._connection.execute(
                "CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, passed INTEGER NOT NULL)")

    def lookup(self, keys: Iterable[str]) -> dict[str, bool]:
        found = {}
        with self._lock:
            for key in set(keys):
                row = self._connection.execute("SELECT passed FROM verdicts WHERE key = ?", (key,)).fetchone()
                if row is not None:
                    found[key] = bool(row[0])
        return found

    def store(self, verdicts: Mapping[str, bool]) -> None:
        with self._lock, self._connection:
            self._connection.executemany("INSERT OR REPLACE INTO verdicts (key, passed) VALUES (?, ?)",
                                         [(key, int(passed)) for key, passed in verdicts.items()])

    def close(self) -> None:
        with self._lock:
            self._connection.close()
