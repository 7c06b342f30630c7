"""`JudgeConfig`: where the judge model is served and how hard to try (timeouts, retries, concurrency, cache), or
which local Hugging Face model judges in-process instead."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


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
    local_model: str | None = field(default=None, metadata={
        "help": "A local Hugging Face model that judges in the training process instead of a server: a Hub id, a "
                "folder, or embedded:smollm2-135m-instruct (works offline). It gets the same question, decodes "
                "greedily up to max_tokens and is read as strictly; base_url, model and cache_path must then be "
                "left out, and the other settings above (timeouts, retries, concurrency) do not apply."})
    local_batch_size: int = field(default=8, metadata={
        "help": "Questions the local judge (local_model) answers in one batched generation."})

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.local_batch_size < 1:
            raise ValueError(f"local_batch_size must be >= 1, got {self.local_batch_size}")
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
