"""Next-token sampling with exactly the semantics of transformers' ``generate``.

The order is transformers': repetition penalty, then temperature, top-k, top-p and min-p; each
filter keeps at least one token; top_k 0, top_p 1 and min_p None disable their filter. Greedy
decoding (``do_sample=False``) takes the argmax of the raw logits, as transformers does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class SamplingParams:
    do_sample: bool = True
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float | None = None
    repetition_penalty: float = 1.0

    @classmethod
    def from_generation_config(cls, config: Any) -> "SamplingParams":
        """Read a transformers ``GenerationConfig`` (as TRL builds it from GRPOConfig)."""
        return cls(do_sample=bool(config.do_sample), temperature=float(config.temperature or 1.0),
                   top_k=int(config.top_k or 0), top_p=float(config.top_p if config.top_p is not None else 1.0),
                   min_p=config.min_p, repetition_penalty=float(config.repetition_penalty or 1.0))


def process_logits(logits: torch.Tensor, params: SamplingParams, seen: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, V)`` float32 logits -> scores where filtered-out tokens are -inf: what `next_tokens` draws from.

    ``seen`` ``(B, V)`` bool marks the tokens already in each sequence (prompt and generated), for the
    repetition penalty.
    """
    scores = _scaled(logits, params, seen)
    if not params.do_sample:
        return scores
    filtered, token_ids = _filtered(scores, params)
    return filtered if token_ids is None else torch.full_like(scores, -torch.inf).scatter_(-1, token_ids, filtered)


def next_tokens(logits: torch.Tensor, params: SamplingParams, seen: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """``(B, V)`` logits -> ``(B,)`` token ids: argmax when greedy, else a draw from the filtered softmax."""
    scores = _scaled(logits, params, seen)
    if not params.do_sample:
        return scores.argmax(dim=-1)
    filtered, token_ids = _filtered(scores, params)
    drawn = _draw(filtered.softmax(dim=-1), generator)
    return drawn if token_ids is None else token_ids.gather(-1, drawn[:, None])[:, 0]


def _scaled(logits: torch.Tensor, params: SamplingParams, seen: torch.Tensor | None) -> torch.Tensor:
    """Float32 logits after the repetition penalty and, when sampling, the temperature."""
    scores = logits.float()
    if params.repetition_penalty != 1.0 and seen is not None:
        penalized = torch.where(scores < 0, scores * params.repetition_penalty, scores / params.repetition_penalty)
        scores = torch.where(seen, penalized, scores)
    if params.do_sample and params.temperature != 1.0:
        scores = scores / params.temperature
    return scores


def _filtered(scores: torch.Tensor, params: SamplingParams) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Top-k, top-p and min-p on ``(B, V)`` scaled scores: ``(B, N)`` scores (-inf where filtered out) and the
    ``(B, N)`` token ids of their columns, or None when the columns are the whole vocabulary.

    With top-k on, only the top-k survivors are kept (ties at the k-th score included, as transformers keeps
    them): every other token is already out, and sorting and drawing over the whole vocabulary cost a CPU
    decode step about as much as the model's forward.
    """
    token_ids = None
    if 0 < params.top_k < scores.shape[-1]:
        kth_best = torch.topk(scores, params.top_k, dim=-1).values[..., -1:]
        survivors = int((scores >= kth_best).sum(dim=-1).max())
        scores, token_ids = torch.topk(scores, survivors, dim=-1)
        scores = scores.masked_fill(scores < kth_best, -torch.inf)
    return _top_p_and_min_p(scores, params), token_ids


def _top_p_and_min_p(scores: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """The top-p, then min-p filter on ``(B, N)`` scores (any N columns holding every token still in)."""
    if params.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, dim=-1)  # ascending, as transformers
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cumulative <= 1 - params.top_p
        drop_sorted[..., -1] = False  # keep at least the best token
        scores = scores.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), -torch.inf)
    if params.min_p is not None:
        probabilities = scores.softmax(dim=-1)
        threshold = params.min_p * probabilities.amax(dim=-1, keepdim=True)
        drop = probabilities < threshold
        drop.scatter_(-1, probabilities.argmax(dim=-1, keepdim=True), False)
        scores = scores.masked_fill(drop, -torch.inf)
    return scores


def _draw(probabilities: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``(B, N)`` -> ``(B,)``: column j with probability p_j, by inverting the cumulative sum at a uniform draw.
    On a CPU this costs a fraction of `torch.multinomial` over a vocabulary; a column of probability 0 adds
    nothing to the sum, so it is never drawn."""
    cumulative = probabilities.cumsum(dim=-1)
    uniform = torch.rand((probabilities.shape[0], 1), generator=generator, device=probabilities.device)
    drawn = torch.searchsorted(cumulative, uniform * cumulative[:, -1:], right=True)[:, 0]
    return drawn.clamp(max=probabilities.shape[-1] - 1)
