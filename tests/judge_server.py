"""A fault-injecting chat-completions server on 127.0.0.1 for the judge tests.

What it does with a request is scripted by the rubric text of the question (the ``<rubric>`` block of
the judge's user message):

    PASS in the rubric     answer YES, otherwise NO
    [slow]                 reply after ``slow_s``
    [hang]                 reply after ``hang_s`` (set it above the client's timeout)
    [429] [500] [400]      answer with that HTTP status (429 carries ``Retry-After: retry_after``)
    [maybe] [empty]        reply text "Maybe?" or "" instead of YES/NO
    [bold]                 reply text "**Yes.**" / "**No.**"
    [badjson]              a body that is not JSON

A request with the relevance annotator's system prompt gets an annotation instead of a word: JSON with
the verdict above and, as quotes, every ``"..."`` of the rubric text, plus a quote that is in no response
when the rubric has ``[nomatch]``, in a markdown code fence with ``[fence]`` (``[maybe]``: "Maybe?").

A marker ``[faultxN]`` applies only to the first N requests for that question, so ``[500x2]`` means
"two 500s, then an answer". The server records the requests it saw, the most it handled at once and
the Authorization headers. It is a `chat_server.ChatServer`: a thread on an ephemeral port that stops (hung
replies included) when its ``with`` block ends.
"""

from __future__ import annotations

import json
import re
import socket
from collections import Counter
from email.message import Message

import pytest

from chat_server import ChatServer, Reply, completion
from rubrics2tokens.judge import JudgeConfig
from rubrics2tokens.relevance.annotator import SYSTEM_PROMPT as ANNOTATOR_PROMPT

RUBRIC_BLOCK = re.compile(r"<rubric>\n(.*)\n</rubric>", re.DOTALL)
FAULT_MARKER = re.compile(r"\[([a-z]+|\d{3})(?:x(\d+))?\]")


class JudgeServer(ChatServer):
    """The scripted server; use it as a context manager (or through the ``fault_server`` fixture)."""

    def __init__(self, slow_s: float = 0.2, hang_s: float = 3.0, retry_after: str = "0.1"):
        super().__init__(self.script)
        self.slow_s, self.hang_s, self.retry_after = slow_s, hang_s, retry_after
        self.authorization: list[str | None] = []
        self._attempts: Counter[str] = Counter()

    def script(self, request: dict, headers: Message) -> Reply:
        """The reply to one request, scripted by the rubric of its question."""
        rubric = RUBRIC_BLOCK.search(request["messages"][-1]["content"]).group(1)
        with self._lock:
            self.authorization.append(headers.get("Authorization"))
            self._attempts[rubric] += 1
            attempt = self._attempts[rubric]
        faults = {name for name, count in FAULT_MARKER.findall(rubric) if not count or attempt <= int(count)}
        delay_s = self.hang_s if "hang" in faults else self.slow_s if "slow" in faults else 0.0
        for status in (500, 429, 400):
            if str(status) in faults:
                extra = {"Retry-After": self.retry_after} if status == 429 else {}
                return Reply(b'{"error": "injected"}', status, extra, delay_s)
        if "badjson" in faults:
            return Reply(b'{"choices": [ not json', delay_s=delay_s)
        annotating = request["messages"][0]["content"] == ANNOTATOR_PROMPT
        reply = _annotation_text(rubric, faults) if annotating else _reply_text(rubric, faults)
        return Reply(completion(reply), delay_s=delay_s)


def _reply_text(rubric: str, faults: set[str]) -> str:
    if "maybe" in faults:
        return "Maybe?"
    if "empty" in faults:
        return ""
    passed = "PASS" in rubric
    if "bold" in faults:
        return "**Yes.**" if passed else "**No.**"
    return "YES" if passed else "NO"


def _annotation_text(rubric: str, faults: set[str]) -> str:
    if "maybe" in faults:
        return "Maybe?"
    quotes = re.findall(r'"([^"]*)"', rubric) + (["words that no response has"] if "nomatch" in faults else [])
    text = json.dumps({"verdict": "YES" if "PASS" in rubric else "NO", "quotes": quotes})
    return f"```json\n{text}\n```" if "fence" in faults else text


def unused_port() -> int:
    """A local port with nothing listening (connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fast_config(base_url: str, **overrides: object) -> JudgeConfig:
    """A judge config with timeouts and backoffs short enough for tests."""
    settings: dict = dict(base_url=base_url, model="test-judge", timeout_s=0.5, max_retries=2,
                          backoff_base_s=0.01, backoff_max_s=0.05, max_concurrency=8)
    return JudgeConfig(**{**settings, **overrides})


@pytest.fixture
def fault_server():
    with JudgeServer() as server:
        yield server
