"""Judges: ask a model whether a response satisfies a rubric, one YES/NO question per rubric.

`LLMJudge` speaks the OpenAI chat-completions protocol (``POST {base_url}/chat/completions``) to any
compatible server (vLLM, SGLang, OpenAI...); `LLMJudge.chat_batch` sends free-form conversations the same
way (the relevance annotator's). Its core is asyncio on a private event loop thread, so the
synchronous `LLMJudge.judge_batch` works with or without an event loop running in the caller, and a
batch's questions are in flight together (at most ``max_concurrency`` at once). The HTTP client is a
small stdlib one (no extra dependency): HTTP/1.1, one connection per request.

Faults never turn into failed rubrics (method.md §6 and §8): timeouts, refused connections, 429 and
5xx are retried with capped exponential backoff; what is still unanswered after the retries, a reply
that is neither YES nor NO, and any other HTTP error give an unknown verdict (``None``), counted in
`stats` and logged. Every batch has a deadline derived from the timeouts and retries, so it always ends.

`LocalHFJudge` asks the same question to a local Hugging Face model through its chat template.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import os
import random
import ssl
import threading
import time
import urllib.parse
from collections import deque
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass, field
from typing import Any, Coroutine, Mapping, Protocol, Sequence

import torch

from rubrics2tokens.judge.cache import VerdictCache, cache_key
from rubrics2tokens.judge.prompt import JudgeQuestion, build_messages, parse_verdict

logger = logging.getLogger(__name__)

LOGGED_REPLY_CHARS = 200
LATENCY_WINDOW = 10_000  # latency percentiles describe the most recent requests
# If the loop thread itself stalls, the caller still returns this long after the batch deadline.
DEADLINE_GRACE_S = 5.0


@dataclass
class JudgeConfig:
    """How to reach the judge model and how hard to try."""

    base_url: str = field(default="http://127.0.0.1:8000/v1", metadata={
        "help": "Root of the OpenAI-compatible API; requests go to {base_url}/chat/completions."})
    model: str = field(default="", metadata={"help": "Model name sent in each request (the served model's name)."})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={
        "help": "Environment variable holding the API key, sent as 'Authorization: Bearer <key>'. "
                "When it is not set no Authorization header is sent (local vLLM/SGLang servers need none)."})
    max_concurrency: int = field(default=16, metadata={"help": "Most requests in flight at once."})
    timeout_s: float = field(default=60.0, metadata={
        "help": "Limit for one request (connect, send, whole reply); past it the request is retried."})
    max_retries: int = field(default=4, metadata={
        "help": "Retries of one question after a timeout, connection error, HTTP 429 or 5xx; then unknown."})
    backoff_base_s: float = field(default=1.0, metadata={
        "help": "Wait before the first retry; it doubles with each retry (randomly shortened by up to half)."})
    backoff_max_s: float = field(default=30.0, metadata={
        "help": "Longest wait between retries, also the cap on a server's Retry-After."})
    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature of the judge (0: greedy)."})
    max_tokens: int = field(default=8, metadata={"help": "Reply length limit; the expected reply is one word."})
    cache_path: str | None = field(default=None, metadata={
        "help": "sqlite file caching YES/NO verdicts across runs (None: no cache). Unknowns are never cached."})
    batch_timeout_s: float | None = field(default=None, metadata={
        "help": "Upper bound on one batch; questions still open then are unknown. None: the worst case of "
                "timeouts x retries x waves of max_concurrency requests."})

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        for name in ("timeout_s", "backoff_base_s", "backoff_max_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    def batch_deadline_s(self, num_questions: int) -> float:
        """How long a batch of ``num_questions`` may take before its open questions become unknown."""
        worst_question = (self.max_retries + 1) * self.timeout_s + self.max_retries * self.backoff_max_s
        worst_batch = math.ceil(num_questions / self.max_concurrency) * worst_question
        return worst_batch if self.batch_timeout_s is None else min(worst_batch, self.batch_timeout_s)


class Judge(Protocol):
    """What `RoutingScorer` needs from a judge. A judge may also say ``remote = True`` (answering waits on
    the network), so the scorer asks it from a background thread while the code verifiers work."""

    def judge_batch(self, questions: Sequence[JudgeQuestion]) -> list[bool | None]:
        """One verdict per question: True (YES), False (NO) or None (unknown)."""
        ...

    def stats(self) -> dict[str, float]:
        """Counters under stable ``judge/...`` names, for the trainer's logs."""
        ...


class JudgeStats:
    """Thread-safe counters and recent request latencies.

    judge/questions:  verdicts asked for (cache hits included)
    judge/cache_hits: verdicts answered from the on-disk cache
    judge/calls:      requests sent (or model generate calls), retries included
    judge/retries:    requests repeated after a transient fault
    judge/unknown:    replies that were neither YES nor NO
    judge/failures:   questions left without a reply (retries exhausted, HTTP error, batch deadline)
    judge/latency_p{50,90,99}_s: seconds per answered request (0 before the first one)
    """

    COUNTERS = ("questions", "cache_hits", "calls", "retries", "unknown", "failures")
    PERCENTILES = (50, 90, 99)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.COUNTERS, 0)
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)

    def add(self, counter: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[counter] += amount

    def record_latency(self, seconds: float) -> None:
        with self._lock:
            self._latencies.append(seconds)

    def as_dict(self) -> dict[str, float]:
        with self._lock:
            stats = {f"judge/{name}": float(count) for name, count in self._counts.items()}
            latencies = sorted(self._latencies)
        for percent in self.PERCENTILES:
            rank = math.ceil(percent / 100 * len(latencies)) - 1  # nearest-rank percentile
            stats[f"judge/latency_p{percent}_s"] = latencies[rank] if latencies else 0.0
        return stats


class LLMJudge:
    """A judge behind an OpenAI-compatible chat-completions API. Use it as a context manager, or `close` it."""

    remote = True  # answering waits on the network: the scorer overlaps it with the code verifiers

    def __init__(self, config: JudgeConfig):
        if not config.model:
            raise ValueError("JudgeConfig.model is empty: name the judge model the server serves")
        self.config = config
        self._url = config.base_url.rstrip("/") + "/chat/completions"
        api_key = os.environ.get(config.api_key_env)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._cache = VerdictCache(config.cache_path) if config.cache_path else None
        self._stats = JudgeStats()
        self._loop_thread: _LoopThread | None = None
        self._semaphore: asyncio.Semaphore | None = None

    def judge_batch(self, questions: Sequence[JudgeQuestion]) -> list[bool | None]:
        """Verdicts for all questions, asked concurrently; cached ones are not asked again, and a
        question repeated within the batch is asked once."""
        keys = [cache_key(self.config.model, question) for question in questions]
        self._stats.add("questions", len(keys))
        verdicts: dict[str, bool | None] = dict(self._cache.lookup(keys)) if self._cache else {}
        self._stats.add("cache_hits", sum(key in verdicts for key in keys))
        to_ask = {key: question for key, question in zip(keys, questions) if key not in verdicts}
        if to_ask:
            replies = self._ask_all([build_messages(question) for question in to_ask.values()], self.config.max_tokens)
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
        for reply in self._ask_all(list(conversations), max_tokens):
            text = None if reply is None else _chat_content(reply.body)
            if reply is not None and text is None:
                self._stats.add("unknown")
                logger.warning("judge reply is not a chat completion: %r", _truncate(reply.text))
            texts.append(text)
        return texts

    def stats(self) -> dict[str, float]:
        return self._stats.as_dict()

    def close(self) -> None:
        if self._loop_thread is not None:
            self._loop_thread.close()
            self._loop_thread = None
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def __enter__(self) -> "LLMJudge":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _ask_all(self, conversations: list[list[dict[str, str]]], max_tokens: int) -> list[HttpReply | None]:
        if self._loop_thread is None:  # started on first use: building a judge starts no thread
            self._loop_thread = _LoopThread()
            self._semaphore = asyncio.Semaphore(self.config.max_concurrency)  # binds to that loop on first use
        deadline_s = self.config.batch_deadline_s(len(conversations))
        try:
            return self._loop_thread.run(self._ask_concurrently(conversations, max_tokens, deadline_s),
                                         deadline_s + DEADLINE_GRACE_S)
        except FutureTimeoutError:
            logger.error("judge batch of %d questions did not return within %.1fs; all are unknown",
                         len(conversations), deadline_s + DEADLINE_GRACE_S)
            self._stats.add("failures", len(conversations))
            return [None] * len(conversations)

    async def _ask_concurrently(self, conversations: list[list[dict[str, str]]], max_tokens: int,
                                deadline_s: float) -> list[HttpReply | None]:
        tasks = [asyncio.create_task(self._ask(messages, max_tokens)) for messages in conversations]
        done, still_open = await asyncio.wait(tasks, timeout=deadline_s)
        for task in still_open:
            task.cancel()
        if still_open:
            logger.warning("judge batch deadline (%.1fs) passed; %d of %d questions are unknown",
                           deadline_s, len(still_open), len(conversations))
            self._stats.add("failures", len(still_open))
        return [task.result() if task in done else None for task in tasks]

    async def _ask(self, messages: list[dict[str, str]], max_tokens: int) -> HttpReply | None:
        """The server's reply to one conversation, or None once retries are exhausted or it refused."""
        payload = {"model": self.config.model, "messages": messages,
                   "temperature": self.config.temperature, "max_tokens": max_tokens}
        last_error: _TransientError | None = None
        for attempt in range(self.config.max_retries + 1):
            if last_error is not None:
                self._stats.add("retries")
                # Sleeping outside the semaphore: a question waiting to retry holds no request slot.
                await asyncio.sleep(self._backoff_s(attempt - 1, last_error.retry_after_s))
            try:
                async with self._semaphore:
                    return await self._post(payload)
            except _TransientError as error:
                logger.debug("judge request %d failed: %s", attempt + 1, error)
                last_error = error
            except _PermanentError as error:
                logger.warning("judge request refused (%s); verdict is unknown", error)
                self._stats.add("failures")
                return None
        logger.warning("judge gave no reply after %d attempts (last: %s); verdict is unknown",
                       self.config.max_retries + 1, last_error)
        self._stats.add("failures")
        return None

    async def _post(self, payload: dict[str, Any]) -> HttpReply:
        start = time.perf_counter()
        self._stats.add("calls")
        try:
            reply = await asyncio.wait_for(post_json(self._url, payload, self._headers), self.config.timeout_s)
        except TimeoutError:
            raise _TransientError(f"no reply within {self.config.timeout_s}s") from None
        except (OSError, EOFError, ValueError) as error:  # refused, reset, TLS, malformed HTTP
            raise _TransientError(f"{type(error).__name__}: {error}") from None
        self._stats.record_latency(time.perf_counter() - start)
        if reply.status == 429 or reply.status >= 500:
            raise _TransientError(f"HTTP {reply.status}", retry_after_s=_retry_after_s(reply.headers))
        if not 200 <= reply.status < 300:
            raise _PermanentError(f"HTTP {reply.status}: {_truncate(reply.text)}")
        return reply

    def _read_verdict(self, reply: HttpReply) -> bool | None:
        content = _chat_content(reply.body)
        verdict = parse_verdict(content)
        if verdict is None:
            self._stats.add("unknown")
            logger.warning("judge reply is neither YES nor NO; verdict is unknown: %r",
                           _truncate(reply.text if content is None else content))
        return verdict

    def _backoff_s(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(retry_after_s, self.config.backoff_max_s)
        delay_s = min(self.config.backoff_base_s * 2 ** attempt, self.config.backoff_max_s)
        # Jitter keeps the questions of a batch that failed together from retrying in lockstep.
        return delay_s * random.uniform(0.5, 1.0)


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
        replies = self.tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        verdicts = [parse_verdict(reply) for reply in replies]
        for reply, verdict in zip(replies, verdicts):
            if verdict is None:
                self._stats.add("unknown")
                logger.warning("local judge reply is neither YES nor NO; verdict is unknown: %r", _truncate(reply))
        return verdicts


class _TransientError(Exception):
    """A fault worth retrying: timeout, connection error, HTTP 429 or 5xx."""

    def __init__(self, reason: str, retry_after_s: float | None = None):
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class _PermanentError(Exception):
    """An HTTP error that repeating the same request will not fix (400, 401, 404...)."""


class _LoopThread:
    """An asyncio event loop in a daemon thread. Coroutines are submitted from the caller's thread, so
    this works whether or not the caller is itself inside a running event loop."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rtt-judge-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout_s: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout_s)
        except FutureTimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


@dataclass
class HttpReply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


async def post_json(url: str, payload: Mapping[str, Any], headers: Mapping[str, str]) -> HttpReply:
    """POST ``payload`` as JSON over HTTP/1.1 on a fresh connection and read the whole reply."""
    parts = urllib.parse.urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or ""
    reader, writer = await asyncio.open_connection(host, parts.port or (443 if secure else 80),
                                                   ssl=_tls_context() if secure else None)
    try:
        body = json.dumps(payload).encode("utf-8")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        head_lines = [f"POST {target or '/'} HTTP/1.1", f"Host: {parts.netloc.rpartition('@')[2]}",
                      "Content-Type: application/json", "Accept: application/json",
                      f"Content-Length: {len(body)}", "Connection: close",
                      *(f"{name}: {value}" for name, value in headers.items())]
        writer.write(("\r\n".join(head_lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        return await _read_reply(reader)
    finally:
        writer.close()


async def _read_reply(reader: asyncio.StreamReader) -> HttpReply:
    protocol, status, *_ = (await reader.readline()).decode("latin-1").split(maxsplit=2) + ["", ""]
    if not protocol.startswith("HTTP/") or not status.isdigit():
        raise ValueError(f"malformed HTTP status line {protocol} {status}")
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked_body(reader)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:  # the server marks the end of the body by closing the connection
        body = await reader.read()
    return HttpReply(status=int(status), headers=headers, body=body)


async def _read_chunked_body(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while size := int((await reader.readline()).split(b";")[0], 16):
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)  # the CRLF after each chunk
    return b"".join(chunks)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _chat_content(body: bytes) -> str | None:
    """The assistant text of a chat-completions reply, or None when the body is not one."""
    try:
        content = json.loads(body)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds; the HTTP-date form is not worth parsing here (backoff applies instead)."""
    try:
        seconds = float(headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _truncate(text: str) -> str:
    return text if len(text) <= LOGGED_REPLY_CHARS else text[:LOGGED_REPLY_CHARS] + "..."
