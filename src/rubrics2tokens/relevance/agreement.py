"""Credit agreement: how close a relevance source's token credit is to the oracle's, before any RL run.

Both sources' token advantages ``A`` ``(B, T)`` (`advantages.token_advantages`, as the trainer computes them
with `rtt_token_advantages`) are taken on the same responses, verdicts and partition; the oracle's are those
of the verifiers' own spans (blame for a fail, credit for a pass: docs/token-credit.md). On each response:

- **Token part.** A constant added to every token of a response is a response-level advantage
  (sum_t c grad log p(y_t) = c grad log p(y)), not token credit. So both advantages are read as deviations
  from one level per response: their mean over the response's **background**, the tokens of the mask that
  the oracle flags under no known verdict (`token_part`; a row that flags every token counts as flagging
  none, `oracle_token_sets`). A response without a background token (its text all flagged by one failed
  rubric, its stop token by another) has no level to measure from: it is left out of every figure (the
  mean over its tokens would turn the less blamed of its blamed tokens into "positive credit").
  The background is where the oracle gives no token-specific credit, so the oracle's own token part is
  exactly 0 there under both partitions (``intra_sample`` gives every background token the same value, the
  average of its rows' z-scores of a weight 0; ``signed`` gives it 0) and nonzero only on its spans; credit
  a source puts on the background reads as credit on tokens no verifier named. The mean over all tokens (a
  Pearson correlation) would not isolate this: under ``intra_sample`` it leaves the oracle's background
  nonzero, and even the oracle would put "negative credit" off its spans on a response whose rubrics all
  pass (the z-score pushes down every token a pass does not credit).
- **Cosine**: cos(token part of the source, token part of the oracle) over the mask's tokens, for the
  responses where the oracle gives token credit (its token part is not ~0); 0 where the source gives none
  there. 1 = the same credit up to a positive scale and a response-level shift; -1 = the opposite.
  ``raw_cosine`` is the same without removing the level (NaN where the oracle's advantage is ~0).
- **Shares**: of the source's negative token credit, sum max(-x, 0) over the mask (x its token part), the
  share on **oracle-blamed** tokens (flagged by the oracle under a failed rubric, the stop of a response that
  stopped too early included); of its positive credit, sum max(x, 0), the share on **oracle-credited** tokens
  (flagged under a passed rubric). Pooled over responses (`summarize_agreement`): mass on those tokens over
  all mass. The oracle's own shares are 1 under both partitions: relative to the background, a token it
  blames only gets a negative value and one it credits only a positive one.

Pure torch, no I/O.
"""

from __future__ import annotations

import math

import torch


def oracle_token_sets(verdicts: torch.Tensor, oracle_weights: torch.Tensor, mask: torch.Tensor,
                      threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """The tokens the oracle blames and credits.

    Args:
        verdicts: ``(B, K)`` 1.0 pass, 0.0 fail, NaN unknown or padding.
        oracle_weights: ``(B, K, T)`` the oracle's relevance (NaN rows: no spans known).
        mask: ``(B, T)`` the tokens compared (1 or True).
        threshold: a token is flagged above it (the trainer's ``relevance_threshold``).

    Returns:
        ``blamed``, ``credited``: ``(B, T)`` bool, the mask's tokens flagged under some failed (passed) rubric
        whose row does not flag every token of the mask: such a row (a failed title on a one-line response)
        gives every token the same credit (``signed``) or none (``intra_sample``: std 0), a response-level
        part. A token can be both.
    """
    valid = mask.bool()[:, None, :]
    flagged = (oracle_weights > threshold) & valid  # NaN > threshold is False
    flagged &= ~(flagged | ~valid).all(dim=2, keepdim=True)  # rows that flag the whole response name no token
    blamed = (flagged & (verdicts == 0)[:, :, None]).any(dim=1)
    credited = (flagged & (verdicts == 1)[:, :, None]).any(dim=1)
    return blamed, credited


def token_part(advantages: torch.Tensor, mask: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` advantages minus each response's level: their mean over the response's ``background``
    tokens of ``mask`` (``(B, T)`` bool each); 0 off the mask. A response without a background token has no
    level and comes back as it is (`credit_agreement` leaves it out)."""
    valid = mask.bool()
    values = advantages.double().where(valid, 0)
    base = background.bool() & valid
    level = (values * base).sum(dim=1, keepdim=True) / base.sum(dim=1, keepdim=True).clamp(min=1)
    return (values - level).where(valid, 0)


def credit_agreement(source: torch.Tensor, oracle: torch.Tensor, blamed: torch.Tensor, credited: torch.Tensor,
                     mask: torch.Tensor, eps: float = 1e-6) -> dict[str, torch.Tensor]:
    """Per-response agreement of a source's token advantages with the oracle's (see the module docstring).

    Args:
        source, oracle: ``(B, T)`` token advantages of the source and of the oracle, same responses, verdicts
            and partition.
        blamed, credited: ``(B, T)`` bool, from `oracle_token_sets`.
        mask: ``(B, T)`` the tokens compared: those that may carry credit under either source (the oracle's
            credit mask, which adds a blamed stop token to the others').
        eps: a token part whose norm is at most ``eps`` counts as no token credit.

    Returns:
        ``(B,)`` float64 tensors: ``cosine`` and ``raw_cosine`` (NaN where the oracle gives no token credit
        or the response has no background token), ``negative``, ``negative_on_blamed``, ``positive``,
        ``positive_on_credited`` (the source's credit masses over the mask and on those tokens; 0 on a
        response without a background token).
    """
    if source.shape != oracle.shape or source.dim() != 2 or any(
            x.shape != source.shape for x in (blamed, credited, mask)):
        raise ValueError(f"expected source, oracle, blamed, credited and mask all (B, T), got "
                         f"{[tuple(x.shape) for x in (source, oracle, blamed, credited, mask)]}")
    valid = mask.bool()
    background = valid & ~blamed & ~credited
    x, y = token_part(source, valid, background), token_part(oracle, valid, background)
    raw_x, raw_y = (a.double().where(valid, 0) for a in (source, oracle))
    measured = background.any(dim=1)
    negative, positive = ((-x).clamp(min=0) * measured[:, None]), (x.clamp(min=0) * measured[:, None])
    return {
        "cosine": _cosine(x, y, eps).where(measured, math.nan),
        "raw_cosine": _cosine(raw_x, raw_y, eps).where(measured, math.nan),
        "negative": negative.sum(dim=1), "negative_on_blamed": (negative * blamed).sum(dim=1),
        "positive": positive.sum(dim=1), "positive_on_credited": (positive * credited).sum(dim=1),
    }


def summarize_agreement(agreement: dict[str, torch.Tensor]) -> dict[str, float | int]:
    """Pooled figures of `credit_agreement`'s ``(B,)`` results (concatenate batches first): the mean cosine
    and raw cosine over the responses where they are defined, how many those are, and the two shares
    (NaN where the source has no credit of that sign)."""
    defined = ~agreement["cosine"].isnan()

    def ratio(part: str, whole: str) -> float:
        total = agreement[whole].sum().item()
        return agreement[part].sum().item() / total if total > 0 else math.nan

    return {
        "responses": int(defined.sum()),
        "cosine": agreement["cosine"][defined].mean().item() if defined.any() else math.nan,
        "raw_cosine": agreement["raw_cosine"].nanmean().item(),
        "negative_on_blamed": ratio("negative_on_blamed", "negative"),
        "positive_on_credited": ratio("positive_on_credited", "positive"),
    }


def _cosine(x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Row-wise cosine of ``(B, T)`` x and y: NaN where ``|y| <= eps``, else 0 where ``|x| <= eps``."""
    x_norm, y_norm = x.norm(dim=1), y.norm(dim=1)
    cosine = (x * y).sum(dim=1) / (x_norm * y_norm).clamp(min=eps * eps)
    cosine = cosine.where(x_norm > eps, 0.0)
    return cosine.where(y_norm > eps, math.nan)
