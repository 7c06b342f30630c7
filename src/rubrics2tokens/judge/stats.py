"""`JudgeStats`: the judges' counters and recent request latencies, under stable ``judge/...`` names."""

from __future__ import annotations

import math
import threading
from collections import deque

LATENCY_WINDOW = 10_000  # latency percentiles describe the most recent requests


class JudgeStats:
    """Thread-safe counters and recent request latencies. The counters are cumulative for the process; the
    trainer logs their increase per scored batch, summed over processes (`COUNTER_METRICS`).

    judge/questions:  verdicts asked for (cache hits included)
    judge/cache_hits: verdicts answered from the on-disk cache
    judge/calls:      requests sent (or model generate calls), retries included
    judge/retries:    requests repeated after a transient fault
    judge/unknown:    replies that were neither YES nor NO
    judge/failures:   questions left without a reply (retries exhausted, HTTP error, batch deadline)
    judge/prompt_tokens, judge/completion_tokens: tokens the judge read and wrote, as the server's ``usage``
                      reports them (a local judge counts its own)
    judge/replies_without_usage: replies whose server reported no ``usage``, so the token counts miss them
    judge/latency_p{50,90,99}_s: seconds per request that got a reply or timed out (0 before the first one)
    """

    COUNTERS = ("questions", "cache_hits", "calls", "retries", "unknown", "failures", "prompt_tokens",
                "completion_tokens", "replies_without_usage")
    PERCENTILES = (50, 90, 99)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.COUNTERS, 0)
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)

    def add(self, counter: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[counter] += amount

    def record_usage(self, tokens: tuple[int, int] | None) -> None:
        """Count one reply's (prompt, completion) tokens; ``None``: its server reported none."""
        with self._lock:
            if tokens is None:
                self._counts["replies_without_usage"] += 1
            else:
                self._counts["prompt_tokens"] += tokens[0]
                self._counts["completion_tokens"] += tokens[1]

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


COUNTER_METRICS = tuple(f"judge/{name}" for name in JudgeStats.COUNTERS)
"""The metric names of `JudgeStats` that are counters (the rest are gauges: the latency percentiles)."""
