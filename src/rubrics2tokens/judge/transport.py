"""How the judge's requests travel: `ChatTransport` sends chat-completions requests with at most
``max_concurrency`` in flight, retries timeouts, refused connections, 429 and 5xx with capped exponential
backoff (honouring Retry-After), and bounds every batch by a deadline, so it always ends. Its core is asyncio
on a private event loop thread, so callers may or may not be inside an event loop themselves."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any, Coroutine

from rubrics2tokens.judge.config import JudgeConfig
from rubrics2tokens.judge.http_client import HttpReply, post_json, retry_after_s, truncate, usage_tokens
from rubrics2tokens.judge.stats import JudgeStats

logger = logging.getLogger(__name__)

# If the loop thread itself stalls, the caller still returns this long after the batch deadline.
DEADLINE_GRACE_S = 5.0


class ChatTransport:
    """Chat-completions requests to ``{base_url}/chat/completions``, counted in the judge's `JudgeStats`
    (calls, retries, failures, latencies). `close` it when done."""

    def __init__(self, config: JudgeConfig, stats: JudgeStats):
        self.config = config
        self._url = config.base_url.rstrip("/") + "/chat/completions"
        api_key = os.environ.get(config.api_key_env)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._stats = stats
        self._loop_thread: _LoopThread | None = None
        self._semaphore: asyncio.Semaphore | None = None

    def ask_all(self, conversations: list[list[dict[str, str]]], max_tokens: int) -> list[HttpReply | None]:
        """The server's reply to each conversation (``None`` where none came), asked concurrently."""
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
        last_error: TransientError | None = None
        for attempt in range(self.config.max_retries + 1):
            if last_error is not None:
                self._stats.add("retries")
                # Sleeping outside the semaphore: a question waiting to retry holds no request slot.
                await asyncio.sleep(self._backoff_s(attempt - 1, last_error.retry_after_s))
            try:
                async with self._semaphore:
                    return await self._post(payload)
            except TransientError as error:
                logger.debug("judge request %d failed: %s", attempt + 1, error)
                last_error = error
            except PermanentError as error:
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
            # a request that hung counts in the latency percentiles with the time it held a slot: leaving it
            # out made p99 read 0.013 s while requests hung for seconds
            self._stats.record_latency(time.perf_counter() - start)
            raise TransientError(f"no reply within {self.config.timeout_s}s") from None
        except (OSError, EOFError, ValueError) as error:  # refused, reset, TLS, malformed HTTP
            raise TransientError(f"{type(error).__name__}: {error}") from None
        self._stats.record_latency(time.perf_counter() - start)
        if reply.status == 429 or reply.status >= 500:
            raise TransientError(f"HTTP {reply.status}", retry_after_s=retry_after_s(reply.headers))
        if not 200 <= reply.status < 300:
            raise PermanentError(f"HTTP {reply.status}: {truncate(reply.text)}")
        self._stats.record_usage(usage_tokens(reply.body))
        return reply

    def _backoff_s(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(retry_after_s, self.config.backoff_max_s)
        delay_s = min(self.config.backoff_base_s * 2 ** attempt, self.config.backoff_max_s)
        # Jitter keeps the questions of a batch that failed together from retrying in lockstep.
        return delay_s * random.uniform(0.5, 1.0)

    def close(self) -> None:
        if self._loop_thread is not None:
            self._loop_thread.close()
            self._loop_thread = None


class TransientError(Exception):
    """A fault worth retrying: timeout, connection error, HTTP 429 or 5xx."""

    def __init__(self, reason: str, retry_after_s: float | None = None):
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class PermanentError(Exception):
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
