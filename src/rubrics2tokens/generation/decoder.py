"""A lean batched decoder on a preallocated (static) KV cache.

Why not ``model.generate``: on a GPU, transformers' generate is bound by per-step bookkeeping for a
small policy (about 43 ms per decode step for SmolLM2 on an H100 at any batch size, while reading the
weights takes about 0.1 ms). This loop does one forward per step and the sampling of
`sampling.next_tokens`, on a cache allocated once, so its shapes never change: the property a
CUDA-graph replay needs (not built yet). On a 2-core CPU, where the model's arithmetic dominates, it
runs at generate's speed (`bench/rollout.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import StaticCache

from rubrics2tokens.generation.sampling import SamplingParams, next_tokens


class StaticCacheDecoder:
    """Samples completions for left-padded prompts.

    Args:
        model: a causal LM (any transformers decoder that accepts a ``StaticCache``).
        pad_token_id: written after a sequence has finished.
        eos_token_ids: tokens that end a sequence (kept as its last token, as TRL expects).
        batch_size: most sequences decoded together (the cache is sized for them); None = all at once.
    """

    def __init__(self, model: torch.nn.Module, pad_token_id: int, eos_token_ids: Sequence[int],
                 batch_size: int | None = None):
        self.model = model
        self.pad_token_id = pad_token_id
        self.eos_token_ids = torch.tensor(list(eos_token_ids))
        self.batch_size = batch_size

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, params: SamplingParams,
                 generator: torch.Generator | None = None) -> list[list[int]]:
        """One completion per prompt: its tokens up to and including the first EOS (or
        ``max_new_tokens`` tokens when none comes)."""
        size = self.batch_size or len(prompts) or 1
        completions: list[list[int]] = []
        for start in range(0, len(prompts), size):
            completions.extend(self._generate_batch(prompts[start:start + size], max_new_tokens, params, generator))
        return completions

    def _generate_batch(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, params: SamplingParams,
                        generator: torch.Generator | None) -> list[list[int]]:
        device = next(self.model.parameters()).device
        batch, prompt_length = len(prompts), max(map(len, prompts))
        total_length = prompt_length + max_new_tokens
        input_ids = torch.full((batch, prompt_length), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((batch, total_length), dtype=torch.long)  # grows as tokens are written
        for row, ids in enumerate(prompts):
            input_ids[row, prompt_length - len(ids):] = torch.tensor(list(ids))
            attention[row, prompt_length - len(ids):prompt_length] = 1
        input_ids, attention = input_ids.to(device), attention.to(device)
        eos = self.eos_token_ids.to(device)

        seen = None
        if params.repetition_penalty != 1.0:
            vocab = self.model.get_output_embeddings().weight.shape[0]
            seen = torch.zeros((batch, vocab), dtype=torch.bool, device=device)
            seen.scatter_(1, input_ids, attention[:, :prompt_length].bool())

        cache = StaticCache(config=self.model.config, max_cache_len=total_length)
        positions = (attention[:, :prompt_length].cumsum(-1) - 1).clamp(min=0)  # left padding shifts positions
        logits = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                            cache=cache, cache_position=torch.arange(prompt_length, device=device),
                            use_cache=True, logits_to_keep=1).logits[:, -1]
        next_position = attention.sum(-1, keepdim=True)  # (B, 1)
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        generated = torch.full((batch, max_new_tokens), self.pad_token_id, dtype=torch.long, device=device)
        for step in range(max_new_tokens):
            tokens = next_tokens(logits, params, seen, generator).where(~finished, self.pad_token_id)
            generated[:, step] = tokens
            finished |= torch.isin(tokens, eos)
            if bool(finished.all()) or step == max_new_tokens - 1:
                break
            if seen is not None:
                seen[torch.arange(batch, device=device), tokens] = True
            attention[:, prompt_length + step] = 1
            logits = self.model(input_ids=tokens[:, None], attention_mask=attention, position_ids=next_position,
                                cache=cache,
                                cache_position=torch.tensor([prompt_length + step], device=device),
                                use_cache=True).logits[:, -1]
            next_position = next_position + 1
        return [_until_eos(row, eos) for row in generated.tolist()]


def _until_eos(tokens: list[int], eos: torch.Tensor) -> list[int]:
    stops = set(eos.tolist())
    for index, token in enumerate(tokens):
        if token in stops:
            return tokens[: index + 1]
    return tokens
