"""A judge that sees all of a prompt's rubrics at once (AdvancedIF's protocol) and answers in JSON.

AdvancedIF's reference judge reads the conversation, the response and every rubric in one request and
answers JSON holding a verdict per rubric and an overall ``SATISFIED_ALL`` flag, the benchmark's headline.
Its prompt is not public here, so this one is ours (`SYSTEM_PROMPT`, `USER_TEMPLATE`); the messages are::

    system: SYSTEM_PROMPT
    user:   USER_TEMPLATE filled with the conversation, the response and the numbered rubrics

The reply is read as strictly as the YES/NO questions of `rubrics2tokens.judge.prompt`: it must be one JSON
object (a markdown code fence around it and a closed ``<think>...</think>`` block before it are allowed), and a
verdict is a JSON boolean or the word YES or NO. ``SATISFIED_ALL`` is taken as the judge gives it, not derived
from the per-rubric verdicts; a reply without a readable flag has an unknown flag (``None``), never a guessed
one, and the per-rubric verdicts are all unknown unless the reply gives exactly one readable entry per rubric.

The replies come from any `ChatClient`: `LLMJudge.chat_batch` (a server, with the judge's concurrency,
retries and counters) or `LocalChat` (a local Hugging Face model).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import torch

from rubrics2tokens.judge.http_client import truncate

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You are a strict grader of instruction following. You are given a conversation between a user and an "
    "assistant (with the system prompt the assistant was given, if any), the assistant's final response to the "
    "last user turn, and a numbered list of rubrics an expert wrote for that conversation. For each rubric, "
    "decide whether the final response satisfies it, reading it in the context of the whole conversation: "
    "instructions of the system prompt and of earlier turns still bind the response. A rubric that is only "
    "partly satisfied is not satisfied. Then decide whether the response satisfies every rubric.\n"
    "Reply with one JSON object and nothing else, with one entry per rubric in the order given:\n"
    '{"rubrics": [{"id": 1, "reason": "<one short sentence>", "satisfied": true or false}, ...], '
    '"SATISFIED_ALL": true or false}'
)

USER_TEMPLATE = (
    "<conversation>\n{conversation}\n</conversation>\n\n"
    "<response>\n{response}\n</response>\n\n"
    "<rubrics>\n{rubrics}\n</rubrics>\n\n"
    "Does the response satisfy each rubric, and all of them? Reply with the JSON object."
)

# A reply may wrap its JSON in a markdown code fence, after a reasoning model's closed thinking block.
_THINKING = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)
_WORDS = {"YES": True, "NO": False, "TRUE": True, "FALSE": False}


@dataclass(frozen=True)
class RubricSetQuestion:
    """All rubrics of one prompt about one response; ``conversation`` is the conversation as one text."""

    conversation: str
    response: str
    rubrics: tuple[str, ...]


@dataclass(frozen=True)
class RubricSetVerdict:
    """The judge's reading of one response: its overall flag and its verdict per rubric (None: unknown)."""

    satisfied_all: bool | None
    rubric_verdicts: tuple[bool | None, ...]
    reply: str | None
    """The judge's reply text as it came (None: no reply), kept so an unknown flag can be looked into."""


class ChatClient(Protocol):
    """What the protocol needs from a judge client: `LLMJudge` and `LocalChat` have it."""

    def chat_batch(self, conversations: Sequence[list[dict[str, str]]], max_tokens: int) -> list[str | None]:
        ...


def build_messages(question: RubricSetQuestion) -> list[dict[str, str]]:
    """The chat messages asking about ``question`` (the same for every judge backend)."""
    rubrics = "\n".join(f"{number}. {rubric}" for number, rubric in enumerate(question.rubrics, start=1))
    user = USER_TEMPLATE.format(conversation=question.conversation, response=question.response, rubrics=rubrics)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_reply(reply: str | None, num_rubrics: int) -> RubricSetVerdict:
    """The flag and per-rubric verdicts a reply carries; whatever it does not carry readably is None."""
    record = _json_object(reply)
    if record is None:
        return RubricSetVerdict(None, (None,) * num_rubrics, reply)
    return RubricSetVerdict(_boolean(record.get("SATISFIED_ALL")), _rubric_verdicts(record, num_rubrics), reply)


def _json_object(reply: str | None) -> dict[str, Any] | None:
    if reply is None:
        return None
    text = _THINKING.sub("", reply, count=1)
    fenced = _FENCE.match(text)
    try:
        record = json.loads(fenced.group(1) if fenced else text)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    return _WORDS.get(value.strip().upper()) if isinstance(value, str) else None


def _rubric_verdicts(record: dict[str, Any], num_rubrics: int) -> tuple[bool | None, ...]:
    entries = record.get("rubrics")
    # an entry too many or too few leaves no way to tell which verdict belongs to which rubric
    if not isinstance(entries, list) or len(entries) != num_rubrics:
        return (None,) * num_rubrics
    return tuple(_boolean(entry.get("satisfied")) if isinstance(entry, dict) else None for entry in entries)


def judge_rubric_sets(client: ChatClient, questions: Sequence[RubricSetQuestion],
                      max_tokens: int) -> list[RubricSetVerdict]:
    """One verdict per question, the requests sent together (`ChatClient.chat_batch`)."""
    replies = client.chat_batch([build_messages(question) for question in questions], max_tokens)
    verdicts = [parse_reply(reply, len(question.rubrics)) for question, reply in zip(questions, replies)]
    for verdict in verdicts:
        if verdict.reply is not None and verdict.satisfied_all is None:
            logger.warning("rubric-set judge reply carries no readable SATISFIED_ALL; the flag is unknown: %r",
                           truncate(verdict.reply))
    return verdicts


class LocalChat:
    """A local Hugging Face causal LM answering free-form conversations through its chat template, greedily, in
    left-padded batches: `LLMJudge.chat_batch` without a server. The tokenizer needs a pad token."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 8):
        if tokenizer.pad_token is None:
            raise ValueError("LocalChat needs tokenizer.pad_token (e.g. tokenizer.pad_token = tokenizer.eos_token)")
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size

    def chat_batch(self, conversations: Sequence[list[dict[str, str]]], max_tokens: int) -> list[str | None]:
        replies: list[str | None] = []
        for start in range(0, len(conversations), self.batch_size):
            replies.extend(self._chat_chunk(conversations[start:start + self.batch_size], max_tokens))
        return replies

    def _chat_chunk(self, conversations: Sequence[list[dict[str, str]]], max_tokens: int) -> list[str]:
        texts = [self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
                 for messages in conversations]
        # the chat template already holds every special token the model expects
        inputs = self.tokenizer(texts, return_tensors="pt", padding=True, padding_side="left",
                                add_special_tokens=False).to(self.model.device)
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False,
                                         pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
