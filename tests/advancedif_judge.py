"""A scripted judge server on 127.0.0.1 for the AdvancedIF tests, answering both judge protocols.

A rubric is satisfied when its text has ``PASS`` and the response does not have ``FAIL-ALL``. The per-rubric
question (`rubrics2tokens.judge.prompt`) is answered YES or NO accordingly, or ``Maybe?`` when the rubric has
``[maybe]``. The all-rubrics question (`rubrics2tokens.judge.rubric_set`) is answered with its JSON: one entry per
rubric and ``SATISFIED_ALL`` true when every rubric is satisfied, except that a rubric with ``[flagpass]`` makes the
flag true regardless (a judge whose flag disagrees with its own verdicts), and one with ``[noflag]`` leaves the
flag out. The server keeps every request's messages (``conversations``).
"""

from __future__ import annotations

import json
import re
from email.message import Message

from chat_server import ChatServer, Reply, completion
from rubrics2tokens.judge.rubric_set import SYSTEM_PROMPT as RUBRIC_SET_PROMPT

RUBRIC = re.compile(r"<rubric>\n(.*)\n</rubric>", re.DOTALL)
RUBRICS = re.compile(r"<rubrics>\n(.*)\n</rubrics>", re.DOTALL)
RESPONSE = re.compile(r"<response>\n(.*?)\n</response>", re.DOTALL)
NUMBERED = re.compile(r"^\d+\. ", re.MULTILINE)


def satisfied(rubric: str, response: str) -> bool:
    return "PASS" in rubric and "FAIL-ALL" not in response


def per_rubric_reply(user: str) -> str:
    rubric, response = RUBRIC.search(user).group(1), RESPONSE.search(user).group(1)
    if "[maybe]" in rubric:
        return "Maybe?"
    return "YES" if satisfied(rubric, response) else "NO"


def rubric_set_reply(user: str) -> str:
    rubrics = NUMBERED.split(RUBRICS.search(user).group(1))[1:]
    response = RESPONSE.search(user).group(1)
    verdicts = [satisfied(rubric, response) for rubric in rubrics]
    reply: dict = {"rubrics": [{"id": number, "reason": "scripted", "satisfied": verdict}
                               for number, verdict in enumerate(verdicts, start=1)]}
    if not any("[noflag]" in rubric for rubric in rubrics):
        reply["SATISFIED_ALL"] = all(verdicts) or any("[flagpass]" in rubric for rubric in rubrics)
    return json.dumps(reply)


class AdvancedIFJudgeServer(ChatServer):
    """The scripted server, as a context manager; ``base_url`` is its OpenAI-compatible root."""

    def __init__(self) -> None:
        super().__init__(self.script)
        self.conversations: list[list[dict[str, str]]] = []

    def script(self, request: dict, headers: Message) -> Reply:
        messages = request["messages"]
        with self._lock:
            self.conversations.append(messages)
        user = messages[-1]["content"]
        return Reply(completion(rubric_set_reply(user) if messages[0]["content"] == RUBRIC_SET_PROMPT
                                else per_rubric_reply(user)))
