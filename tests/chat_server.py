"""An OpenAI chat-completions server on 127.0.0.1, the one the scripted test servers are built on.

`ChatServer` runs in a thread on an ephemeral port and answers every POST with what its ``reply`` callback
returns for the request (the decoded JSON body and the HTTP headers): a `Reply`, whose ``body`` is a dict (sent
as JSON; `completion` builds a chat-completions one) or raw bytes, with a status, extra headers and a delay. A
delayed reply waits on the server's stop event, so hung replies end when the ``with`` block does. The server
counts the requests it saw and the most it handled at once.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Reply:
    body: dict | bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def completion(text: str, usage: tuple[int, int] | None = None) -> dict:
    """A chat-completions body whose one choice says ``text``; ``usage``: (prompt tokens, completion tokens)."""
    body: dict = {"id": "test", "object": "chat.completion", "model": "test-judge",
                  "choices": [{"index": 0, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": text}}]}
    if usage is not None:
        body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    return body


class ChatServer:
    """The server, as a context manager; ``base_url`` is its OpenAI-compatible root."""

    def __init__(self, reply: Callable[[dict, Message], Reply]):
        self.reply = reply
        self.requests = 0
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._http = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._http.chat = self  # type: ignore[attr-defined]  # how a handler finds its server
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.base_url = f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()  # wakes delayed replies
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def answer(self, request: dict, headers: Message) -> Reply:
        """The reply to one request, after its delay; counts the request and the requests in flight."""
        with self._lock:
            self.requests += 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            reply = self.reply(request, headers)
            self._stopping.wait(reply.delay_s)
            return reply
        finally:
            with self._lock:
                self._in_flight -= 1


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog (5) drops connections of a concurrent batch, stalling them ~1 s


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = self.server.chat.answer(request, self.headers)  # type: ignore[attr-defined]
        body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            for name, value in {"Content-Type": "application/json", **reply.headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on a slow reply, or was killed

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output quiet
