"""An on-disk cache of a generator server's readable replies (sqlite), so that writing rubrics again for the same
prompts with the same model (into another output file, or after changing the extraction rules) asks nothing twice.

The key is a SHA-256 of (model, conversation). Only replies that were read successfully are stored: an unreadable
one is asked again next time, as the judge's cache keeps only definite verdicts.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path


def reply_key(model: str, messages: list[dict[str, str]]) -> str:
    return hashlib.sha256(json.dumps([model, messages], ensure_ascii=False).encode("utf-8")).hexdigest()


class ReplyCache:
    """``get(key)`` -> the stored reply or None; ``put(key, reply)``. `close` it when done."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(path)
        with self._connection:
            self._connection.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL)")

    def get(self, key: str) -> str | None:
        row = self._connection.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, key: str, reply: str) -> None:
        with self._connection:
            self._connection.execute("INSERT OR REPLACE INTO replies (key, reply) VALUES (?, ?)", (key, reply))

    def close(self) -> None:
        self._connection.close()
