"""The models that write rubrics: a server that speaks the OpenAI chat-completions protocol, reached through the
judge's client (its transport's concurrency, retries and deadlines, plus a cache of readable replies), or a local
Hugging Face causal LM in this process. Both answer a batch of conversations with one reply text each (None where
no reply came); which reply is readable is the caller's business (`rubrics2tokens.rubrics.replies`).
"""

from __future__ import annotations

from typing import Protocol

import torch

from rubrics2tokens.judge import JudgeConfig, LLMJudge
from rubrics2tokens.models.loading import load_policy
from rubrics2tokens.rubrics.reply_cache import ReplyCache, reply_key

Conversation = list[dict[str, str]]


class Generator(Protocol):
    name: str
    """What wrote the rubrics, as kept in the output's settings: ``server:<model>`` or ``local:<model>``."""

    def ask(self, conversations: list[Conversation], attempt: int) -> list[str | None]:
        """One reply per conversation; ``attempt`` counts the asks of the same conversations (0 first)."""
        ...

    def keep(self, conversation: Conversation, reply: str) -> None:
        """Called for each reply that was readable (a cache may keep it)."""
        ...

    def close(self) -> None:
        ...


class ServerGenerator:
    """A model behind an OpenAI-compatible server. A first ask is answered from the reply cache when it holds the
    conversation; an ask again (after an unreadable reply) always goes to the server."""

    def __init__(self, config: JudgeConfig, cache_path: str | None = None):
        self.name = f"server:{config.model}"
        self._model = config.model
        self._client = LLMJudge(config)
        self._cache = ReplyCache(cache_path) if cache_path else None

    def ask(self, conversations: list[Conversation], attempt: int) -> list[str | None]:
        cached = [self._cached(conversation) if attempt == 0 else None for conversation in conversations]
        to_ask = [conversation for conversation, reply in zip(conversations, cached) if reply is None]
        answers = iter(self._client.chat_batch(to_ask, self._client.config.max_tokens) if to_ask else [])
        return [reply if reply is not None else next(answers) for reply in cached]

    def keep(self, conversation: Conversation, reply: str) -> None:
        if self._cache is not None:
            self._cache.put(reply_key(self._model, conversation), reply)

    def _cached(self, conversation: Conversation) -> str | None:
        return None if self._cache is None else self._cache.get(reply_key(self._model, conversation))

    def close(self) -> None:
        self._client.close()
        if self._cache is not None:
            self._cache.close()


class LocalGenerator:
    """A local causal LM: every conversation through its chat template, generated in left-padded batches with
    sampling (``temperature`` 0: greedy), seeded per attempt so that a rerun writes the same rubrics."""

    def __init__(self, model_name: str, max_new_tokens: int = 512, batch_size: int = 8, temperature: float = 0.7,
                 seed: int = 0):
        self.name = f"local:{model_name}"
        self.model, self.tokenizer = load_policy(model_name)
        self.model.eval()
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.temperature, self.seed = temperature, seed

    def ask(self, conversations: list[Conversation], attempt: int) -> list[str | None]:
        torch.manual_seed(self.seed + attempt)
        replies: list[str | None] = []
        for start in range(0, len(conversations), self.batch_size):
            replies += self._generate(conversations[start:start + self.batch_size])
        return replies

    def _generate(self, conversations: list[Conversation]) -> list[str]:
        texts = [self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
                 for conversation in conversations]
        # The chat template already holds every special token the model expects.
        inputs = self.tokenizer(texts, return_tensors="pt", padding=True, padding_side="left",
                                add_special_tokens=False).to(self.model.device)
        sampling = ({"do_sample": True, "temperature": self.temperature} if self.temperature > 0
                    else {"do_sample": False})
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens,
                                         pad_token_id=self.tokenizer.pad_token_id, **sampling)
        return self.tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    def keep(self, conversation: Conversation, reply: str) -> None:
        pass  # a local model is asked again at no cost but time

    def close(self) -> None:
        pass
