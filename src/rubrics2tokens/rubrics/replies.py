"""What a generator model is asked for one prompt, and how its reply is read.

The model is asked for K rubric items as one JSON object::

    {"rubrics": [{"description": "The response is written as a limerick.", "weight": 4, "verifier": null},
                 {"description": "The response contains no commas.", "weight": 5,
                  "verifier": "ifeval:punctuation:no_comma", "arguments": {}}]}

A reply is read strictly and never repaired: it must hold that object (alone, in a markdown code fence, or as the
first JSON value after some prose), with 1 to K items, each a non-empty ``description`` and a number ``weight`` >=
0, and a ``verifier`` that is null or an id string with an ``arguments`` object. Anything else is unreadable, and
the caller asks again. A verifier that fails `attachment_problem` does not make the reply unreadable: its rubric
goes to the judge, and the rejected attachment is reported.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from rubrics2tokens.data.schema import Rubric
from rubrics2tokens.rubrics.attach import attachment_problem
from rubrics2tokens.rubrics.catalogue import catalogue_text

SYSTEM_PROMPT = (
    "You write grading rubrics for responses to a user's prompt. Each rubric item is one statement that a good "
    "response makes true, specific to this prompt and checkable by reading the response, with an importance weight "
    "from 1 (nice to have) to 5 (essential). When an item is exactly one of the code-checkable constraints below, "
    "also give that verifier's id and its arguments (numbers as JSON numbers, words exactly as the prompt states "
    "them); for any other item the verifier is null.\n\n"
    "Code-checkable constraints (id, arguments, what it checks):\n" + catalogue_text() + "\n\n"
    "Reply with one JSON object and nothing else, in this form (an example for a prompt asking for a limerick "
    "without commas):\n" + json.dumps({"rubrics": [
        {"description": "The response is a limerick: five lines rhyming AABBA.", "weight": 5, "verifier": None,
         "arguments": {}},
        {"description": "The response contains no commas.", "weight": 5, "verifier": "ifeval:punctuation:no_comma",
         "arguments": {}},
        {"description": "The limerick is funny.", "weight": 3, "verifier": None, "arguments": {}}]})
)

USER_TEMPLATE = ("<prompt>\n{prompt}\n</prompt>\n\n{covered}Write {count} rubric items for this prompt as the JSON "
                 "object.")
COVERED_TEMPLATE = "These rubric items are already written; do not repeat them:\n{items}\n\n"

_FENCE = re.compile(r"```(?:json)?\s*(.*?)\s*```", re.DOTALL)


def conversation_text(messages: Sequence[dict[str, str]]) -> str:
    """The prompt as the model is shown it: the user's text, or every turn with its role for a conversation."""
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n\n".join(f"[{message['role']}]\n{message['content']}" for message in messages)


def build_messages(messages: Sequence[dict[str, str]], covered: Sequence[Rubric], count: int) -> list[dict[str, str]]:
    """The chat asking for ``count`` rubric items for a prompt, told the ones ``covered`` already."""
    items = "\n".join(f"- {rubric.description}" for rubric in covered)
    user = USER_TEMPLATE.format(prompt=conversation_text(messages), count=count,
                                covered=COVERED_TEMPLATE.format(items=items) if covered else "")
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


@dataclass
class ReadReply:
    """A readable reply: its rubrics, and the attachments that failed `attachment_problem` (their rubrics went to
    the judge) as ``{"description", "verifier", "kwargs", "problem"}``."""

    rubrics: list[Rubric]
    rejected: list[dict[str, Any]] = field(default_factory=list)


class UnreadableReply(ValueError):
    """A reply that does not hold the rubric object asked for; the message says what is wrong."""


def read_reply(reply: str | None, most_items: int) -> ReadReply:
    """The rubrics of ``reply``; `UnreadableReply` unless it holds the asked-for object with 1 to ``most_items``."""
    items = _rubric_items(_first_json_object(reply))
    if not 1 <= len(items) <= most_items:
        raise UnreadableReply(f"{len(items)} rubric items, asked for 1 to {most_items}")
    read = ReadReply(rubrics=[])
    for number, item in enumerate(items, start=1):
        description, weight, verifier, kwargs = _fields(item, number)
        problem = None if verifier is None else attachment_problem(verifier, kwargs)
        if problem is not None:
            read.rejected.append({"description": description, "verifier": verifier, "kwargs": kwargs,
                                  "problem": problem})
            verifier, kwargs = None, {}
        read.rubrics.append(Rubric(description=description, verifier=verifier, kwargs=kwargs, weight=weight))
    return read


def _first_json_object(reply: str | None) -> Any:
    if reply is None:
        raise UnreadableReply("no reply")
    fenced = _FENCE.search(reply)
    text = fenced.group(1) if fenced else reply
    start = text.find("{")
    if start < 0:
        raise UnreadableReply("no JSON object in the reply")
    try:
        value, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as error:
        raise UnreadableReply(f"invalid JSON ({error.msg})") from None
    return value


def _rubric_items(value: Any) -> list[Any]:
    if not isinstance(value, dict) or not isinstance(value.get("rubrics"), list):
        raise UnreadableReply('the JSON object has no "rubrics" list')
    return value["rubrics"]


def _fields(item: Any, number: int) -> tuple[str, float, str | None, dict[str, Any]]:
    """(description, weight, verifier, arguments) of one rubric item, or `UnreadableReply`."""
    if not isinstance(item, dict):
        raise UnreadableReply(f"rubric {number} is not an object")
    description, weight = item.get("description"), item.get("weight")
    if not isinstance(description, str) or not description.strip():
        raise UnreadableReply(f"rubric {number} has no description")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
        raise UnreadableReply(f"rubric {number} has no weight (a number >= 0), got {weight!r}")
    verifier, kwargs = item.get("verifier"), item.get("arguments", {})
    if verifier is not None and (not isinstance(verifier, str) or not isinstance(kwargs, dict)):
        raise UnreadableReply(f"rubric {number}: a verifier is an id string with an arguments object")
    return description.strip(), float(weight), verifier, kwargs if verifier is not None else {}
