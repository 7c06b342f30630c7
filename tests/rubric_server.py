"""A scripted rubric-generator server on 127.0.0.1 (OpenAI chat completions), for `rtt rubrics generate` tests.

What it answers is scripted by markers in the prompt text of the request (the ``<prompt>`` block):

    (none)         a readable reply: a judge rubric and a no-comma rubric with its verifier
    [badxN]        an unreadable reply to the first N requests for that prompt, then a readable one
    [never]        an unreadable reply every time
    [wrongargs]    a readable reply whose verifiers have arguments their checkers cannot use
    [slow]         the reply after ``slow_s``

It counts the requests per prompt (``asked``); it is a `chat_server.ChatServer`, stopping when its ``with`` block
ends.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from email.message import Message

from chat_server import ChatServer, Reply, completion

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


class RubricServer(ChatServer):
    def __init__(self, slow_s: float = 0.3):
        super().__init__(self.script)
        self.slow_s = slow_s
        self.asked: Counter[str] = Counter()

    def script(self, request: dict, headers: Message) -> Reply:
        """The reply to one request, scripted by the markers of its prompt."""
        prompt = PROMPT_BLOCK.search(request["messages"][-1]["content"]).group(1)
        with self._lock:
            self.asked[prompt] += 1
            attempt = self.asked[prompt]
        delay_s = self.slow_s if "[slow]" in prompt else 0.0
        bad = BAD_TIMES.search(prompt)
        if "[never]" in prompt or (bad and attempt <= int(bad.group(1))):
            return Reply(completion(UNREADABLE), delay_s=delay_s)
        items = WRONG_ARGUMENTS if "[wrongargs]" in prompt else [JUDGED, NO_COMMA]
        return Reply(completion("```json\n" + json.dumps({"rubrics": items}) + "\n```"), delay_s=delay_s)
