"""Judges: ask a model whether a response satisfies a rubric, one YES/NO question per rubric.

`LLMJudge` speaks the OpenAI chat-completions protocol (``POST {base_url}/chat/completions``) to any
compatible server (vLLM, SGLang, OpenAI...); `LLMJudge.chat_batch` sends free-form conversations the same
way (the relevance annotator's). This module is the question/answer logic (the cache, repeated
questions asked once, strict YES/NO reading); the requests travel through `transport.ChatTransport`
(concurrency, retries, deadlines, on a private event loop thread, so the synchronous
`LLMJudge.judge_batch` works with or without an event loop running in the caller) over the stdlib
HTTP/1.1 client of `http_client`. Its settings are `config.JudgeConfig`, its counters `stats.JudgeStats`.

Faults never turn into failed rubrics (method.md §6 and §8): timeouts, refused connections, 429 and
5xx are retried with capped exponential backoff; what is still unanswered after the retries, a reply
that is neither YES nor NO, and any other HTTP error give an unknown verdict (``None``), counted in
`stats` and logged. Every batch has a deadline derived from the timeouts and retries, so it always ends.

`LocalHFJudge` asks the same question to a local Hugging Face model through its chat template.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol, Sequence

import torch

from rubrics2tokens.judge.cache import VerdictCache, cache_key
from rubrics2tokens.judge.config import JudgeConfig
from rubrics2tokens.judge.http_client import HttpReply, chat_content, truncate
from rubrics2tokens.judge.prompt import JudgeQuestion, build_messages, parse_verdict
from rubrics2tokens.judge.stats import JudgeStats
from rubrics2tokens.judge.transport import ChatTransport

logger = logging.getLogger(__name__)


class Judge(Protocol):
    """What `RoutingScorer` needs from a judge. A judge may also say ``remote = True`` (answering waits on
    the network), so the scorer asks it from a background thread while the code verifiers work."""

    def judge_batch(self, questions: Sequence[JudgeQuestion]) -> list[bool | None]:
        """One verdict per question: True (YES), False (NO) or None (unknown)."""
        ...

    def stats(self) -> dict[str, float]:
        """Counters under stable ``judge/...`` names, for the trainer's logs."""
        ...


class LLMJudge:
    """A judge behind an OpenAI-compatible chat-completions API. Use it as a context manager, or `close` it."""

    remote = True  # answering waits on the network: the scorer overlaps it with the code verifiers

    def __init__(self, config: JudgeConfig):
        if not config.model:
            raise ValueError("JudgeConfig.model is empty: name the judge model the server serves")
        self.config = config
        self._cache = VerdictCache(config.cache_path) if config.cache_path else None
        self._stats = JudgeStats()
        self._transport = ChatTransport(config, self._stats)

    def judge_batch(self, questions: Sequence[JudgeQuestion]) -> list[bool | None]:
        """Verdicts for all questions, asked concurrently; cached ones are not asked again, and a
        question repeated within the batch is asked once."""
        keys = [cache_key(self.config.model, question) for question in questions]
        self._stats.add("questions", len(keys))
        verdicts: dict[str, bool | None] = dict(self._cache.lookup(keys)) if self._cache else {}
        self._stats.add("cache_hits", sum(key in verdicts for key in keys))
        to_ask = {key: question for key, question in zip(keys, questions) if key not in verdicts}
        if to_ask:
            replies = self._transport.ask_all([build_messages(question) for question in to_ask.values()], self.config.max_tokens)
            answers = {key: None if reply is None else self._read_verdict(reply) for key, reply in zip(to_ask, replies)}
            if self._cache:
                self._cache.store({key: passed for key, passed in answers.items() if passed is not None})
            verdicts.update(answers)
        return [verdicts[key] for key in keys]

    def chat_batch(self, conversations: Sequence[list[dict[str, str]]], max_tokens: int) -> list[str | None]:
        """The assistant's reply text to each conversation, asked concurrently with the same retries,
        timeouts and counters as verdicts but neither parsed nor cached (the relevance annotator's
        questions are not YES/NO). ``None`` where no reply came or its body is not a chat completion."""
        self._stats.add("questions", len(conversations))
        texts = []
        for reply in self._transport.ask_all(list(conversations), max_tokens):
            text = None if reply is None else chat_content(reply.body)
            if reply is not None and text is None:
                self._stats.add("unknown")
                logger.warning("judge reply is not a chat completion: %r", truncate(reply.text))
            texts.append(text)
        return texts

    def stats(self) -> dict[str, float]:
        return self._stats.as_dict()

    def close(self) -> None:
        self._transport.close()
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def __enter__(self) -> "LLMJudge":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _read_verdict(self, reply: HttpReply) -> bool | None:
        content = chat_content(reply.body)
        verdict = parse_verdict(content)
        if verdict is None:
            self._stats.add("unknown")
        if content is None:  # not what an OpenAI-compatible server answers: the URL is likely wrong
            logger.warning("judge reply is not a chat-completions JSON body (is scoring.judge.base_url an "
                           "OpenAI-compatible /v1 endpoint?); verdict is unknown: %r", truncate(reply.text))
        elif verdict is None:
            logger.warning("judge reply is neither YES nor NO; verdict is unknown: %r", truncate(content))
        return verdict


class LocalHFJudge:
    """A local Hugging Face causal LM as judge: the same question through the tokenizer's chat template,
    a short greedy generation, and the same strict YES/NO reading as `LLMJudge` (anything else is unknown).
    The tokenizer needs a pad token (questions are generated in left-padded batches)."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 8, max_new_tokens: int = 4):
        if tokenizer.pad_token is None:
            raise ValueError("LocalHFJudge needs tokenizer.pad_token (e.g. tokenizer.pad_token = tokenizer.eos_token)")
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self._stats = JudgeStats()

    def judge_batch(self, questions: Sequence[JudgeQuestion]) -> list[bool | None]:
        self._stats.add("questions", len(questions))
        verdicts: list[bool | None] = []
        for start in range(0, len(questions), self.batch_size):
            verdicts.extend(self._judge_chunk(questions[start:start + self.batch_size]))
        return verdicts

    def stats(self) -> dict[str, float]:
        return self._stats.as_dict()

    def _judge_chunk(self, questions: Sequence[JudgeQuestion]) -> list[bool | None]:
        texts = [self.tokenizer.apply_chat_template(build_messages(question), tokenize=False,
                                                    add_generation_prompt=True) for question in questions]
        # The chat template already holds every special token the model expects.
        inputs = self.tokenizer(texts, return_tensors="pt", padding=True, padding_side="left",
                                add_special_tokens=False).to(self.model.device)
        start = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                         pad_token_id=self.tokenizer.pad_token_id)
        self._stats.record_latency(time.perf_counter() - start)
        self._stats.add("calls", len(questions))
        generated = output[:, inputs["input_ids"].shape[1]:]
        # padding is neither read nor written: count the attended prompt tokens and the generated non-pad ones
        self._stats.record_usage((int(inputs["attention_mask"].sum()),
                                  int((generated != self.tokenizer.pad_token_id).sum())))
        replies = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
        verdicts = [parse_verdict(reply) for reply in replies]
        for reply, verdict in zip(replies, verdicts):
            if verdict is None:
                self._stats.add("unknown")
                logger.warning("local judge reply is neither YES nor NO; verdict is unknown: %r", truncate(reply))
        return verdicts
