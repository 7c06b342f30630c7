"""A scripted rubric-generator server on 127.0.0.1 (OpenAI chat completions), for `rtt rubrics generate` tests.

What it answers is scripted by markers in the prompt text of the request (the ``<prompt>`` block):

    (none)         a readable reply: a judge rubric and a no-comma rubric with its verifier
    [badxN]        an unreadable reply to the first N requests for that prompt, then a readable one
    [never]        an unreadable reply every time
    [wrongargs]    a readable reply whose verifiers have arguments their checkers cannot use
    [slow]         the reply after ``slow_s``

It counts the requests per prompt, and stops when its ``with`` block ends (the pattern of `judge_server`).
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROMPT_BLOCK = re.compile(r"<prompt>\n(.*)\n</prompt>", re.DOTALL)
BAD_TIMES = re.compile(r"\[badx(\d+)\]")

JUDGED = {"description": "The response answers what the prompt asks.", "weight": 3, "verifier": None}
NO_COMMA = {"description": "The response contains no commas.", "weight": 5, "verifier": "ifeval:punctuation:no_comma",
            "arguments": {}}
WRONG_ARGUMENTS = [
    {"description": "The response has about 300 words.", "weight": 2,
     "verifier": "ifeval:length_constraints:number_words", "arguments": {"relation": "about", "num_words": 300}},
    {"description": "The response has exclamation marks.", "weight": 1,  # "!" is no letter: its checker draws one
     "verifier": "ifeval:keywords:letter_frequency",
     "arguments": {"letter": "!", "let_relation": "at least", "let_frequency": 3}},
]
UNREADABLE = "Sure! Here are some rubrics: be helpful, be concise."


class RubricServer:
    def __init__(self, slow_s: float = 0.3):
        self.slow_s = slow_s
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._http.daemon_threads = True
        self._http.script = self  # type: ignore[attr-defined]  # how a handler finds its server's script
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.base_url = f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def __enter__(self) -> "RubricServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def reply(self, prompt: str) -> tuple[str, float]:
        """(reply text, delay in seconds) for one request about ``prompt``."""
        with self._lock:
            self.requests[prompt] += 1
            attempt = self.requests[prompt]
        delay_s = self.slow_s if "[slow]" in prompt else 0.0
        bad = BAD_TIMES.search(prompt)
        if "[never]" in prompt or (bad and attempt <= int(bad.group(1))):
            return UNREADABLE, delay_s
        items = WRONG_ARGUMENTS if "[wrongargs]" in prompt else [JUDGED, NO_COMMA]
        return "```json\n" + json.dumps({"rubrics": items}) + "\n```", delay_s

    def wait(self, seconds: float) -> None:
        self._stopping.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        script: RubricServer = self.server.script  # type: ignore[attr-defined]
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = PROMPT_BLOCK.search(request["messages"][-1]["content"]).group(1)
        text, delay_s = script.reply(prompt)
        script.wait(delay_s)
        body = json.dumps({"id": "test", "object": "chat.completion", "model": request["model"],
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": text}}]}).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client was killed while waiting

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output quiet
