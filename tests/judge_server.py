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
the Authorization headers. It runs in a thread, on an ephemeral port, and stops (hung replies
included) when its ``with`` block ends.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections import Counter
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from rubrics2tokens.judge import JudgeConfig
from rubrics2tokens.relevance.annotator import SYSTEM_PROMPT as ANNOTATOR_PROMPT

RUBRIC_BLOCK = re.compile(r"<rubric>\n(.*)\n</rubric>", re.DOTALL)
FAULT_MARKER = re.compile(r"\[([a-z]+|\d{3})(?:x(\d+))?\]")


class JudgeServer:
    """The scripted server; use it as a context manager (or through the ``fault_server`` fixture)."""

    def __init__(self, slow_s: float = 0.2, hang_s: float = 3.0, retry_after: str = "0.1"):
        self.slow_s, self.hang_s, self.retry_after = slow_s, hang_s, retry_after
        self.requests = 0
        self.max_in_flight = 0
        self.authorization: list[str | None] = []
        self._in_flight = 0
        self._attempts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._http = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._http.script = self  # type: ignore[attr-defined]  # how a handler finds its server's script
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.base_url = f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def __enter__(self) -> "JudgeServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()  # wakes hung replies
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def handle(self, rubric: str, authorization: str | None,
               annotating: bool = False) -> tuple[int, dict[str, str], bytes, float]:
        """(status, headers, body, delay in seconds) for one request about ``rubric``."""
        with self._lock:
            self.requests += 1
            self.authorization.append(authorization)
            self._attempts[rubric] += 1
            attempt = self._attempts[rubric]
        faults = {name for name, count in FAULT_MARKER.findall(rubric) if not count or attempt <= int(count)}
        delay_s = self.hang_s if "hang" in faults else self.slow_s if "slow" in faults else 0.0
        for status in (500, 429, 400):
            if str(status) in faults:
                headers = {"Retry-After": self.retry_after} if status == 429 else {}
                return status, headers, b'{"error": "injected"}', delay_s
        if "badjson" in faults:
            return 200, {}, b'{"choices": [ not json', delay_s
        reply = _annotation_text(rubric, faults) if annotating else _reply_text(rubric, faults)
        return 200, {}, json.dumps(_completion(reply)).encode(), delay_s

    def wait(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        """Counts a request as in flight, for ``max_in_flight``."""
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1


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


def _completion(text: str) -> dict:
    return {"id": "test", "object": "chat.completion", "model": "test-judge",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog (5) drops connections of a concurrent batch, stalling them ~1 s


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        script: JudgeServer = self.server.script  # type: ignore[attr-defined]
        with script.in_flight():
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            rubric = RUBRIC_BLOCK.search(request["messages"][-1]["content"]).group(1)
            annotating = request["messages"][0]["content"] == ANNOTATOR_PROMPT
            status, headers, body, delay_s = script.handle(rubric, self.headers.get("Authorization"), annotating)
            script.wait(delay_s)
            try:
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up on a slow reply

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output quiet


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
