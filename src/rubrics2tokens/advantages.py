"""Advantages from rubric verdicts: response-level rewards and token-level credit.

A batch holds B responses laid out as TRL does: B / G prompt groups of G =
``group_size`` contiguous rows (rows 0..G-1 are group 0, and so on). Each
response has K rubric slots and T token positions. The inputs are

- ``verdicts`` ``(B, K)``: 1.0 pass, 0.0 fail, NaN for an unknown verdict or a
  padding slot. NaN slots are left out of every set, mean and softmax below;
  they never count as a fail.
- ``weights`` ``(B, K, T)``: relevance w_{i,k,t} in [0, 1] of token t of
  response i to rubric k.
- ``mask`` ``(B, T)``: 1 for a response token, 0 for padding.

A verdict becomes a sign s_{i,k} = +1 (pass) or -1 (fail), and a token reward
r_{i,k,t} = s_{i,k} * w_{i,k,t}. Each partition below decides over which set
of rewards a z-score is taken (``PARTITIONS``); every z-score uses the
population std, and a set whose values are all equal gets z = 0.

The functions are pure, vectorized torch: no loops over groups, rubrics or
tokens, and no I/O.
"""

from collections.abc import Callable

import torch

PARTITIONS = ("intra_sample", "inter_sample", "group_pooled", "rubric_softmax", "signed")
# Partitions whose row i depends on row i alone, so a trainer can compute them
# on each process's own rows without gathering the whole group first.
LOCAL_PARTITIONS = ("intra_sample", "signed")
AGGREGATIONS = ("aon", "csr")
COMBINE_METHODS = ("add", "mix")


def response_rewards(
    verdicts: torch.Tensor,
    aggregation: str = "aon",
    rubric_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """One scalar reward per response from its rubric verdicts.

    Args:
        verdicts: ``(B, K)`` 1.0 pass, 0.0 fail, NaN unknown or padding.
        aggregation: ``"aon"`` (all-or-nothing: 1 if every known verdict
            passes, else 0) or ``"csr"`` (constraint satisfaction rate: the
            ``rubric_weights``-weighted fraction of known verdicts that pass).
        rubric_weights: ``(B, K)`` non-negative weights for CSR; default all
            ones. AON ignores them.

    Returns:
        ``(B,)`` rewards in the float dtype of the computation (float32, or
        float64 for float64 input). NaN for a response with no known verdict
        (for CSR also when its known weights sum to 0), so that callers cannot
        mistake "nothing was judged" for a fail.
    """
    if verdicts.dim() != 2:
        raise ValueError(f"expected verdicts (B, K), got {tuple(verdicts.shape)}")
    verdicts = verdicts.to(_compute_dtype(verdicts))
    _check_verdicts(verdicts)
    known = ~verdicts.isnan()
    passed = verdicts == 1
    if aggregation == "aon":
        reward = (passed | ~known).all(dim=1).to(verdicts.dtype)
        return reward.where(known.any(dim=1), torch.nan)
    if aggregation == "csr":
        rubric_w = _known_rubric_weights(rubric_weights, known, verdicts.dtype)
        total = rubric_w.sum(dim=1)
        passed_w = (rubric_w * passed).sum(dim=1)
        return (passed_w / total).where(total > 0, torch.nan)
    raise ValueError(f"unknown aggregation {aggregation!r}; valid: {', '.join(AGGREGATIONS)}")


def token_advantages(
    verdicts: torch.Tensor,
    weights: torch.Tensor,
    mask: torch.Tensor,
    group_size: int,
    partition: str = "intra_sample",
    tau: float = 1.0,
    rubric_weights: torch.Tensor | None = None,
    min_std: float = 0.0,
) -> torch.Tensor:
    """Token-level advantages from per-rubric verdicts and token relevance.

    Args:
        verdicts: ``(B, K)`` 1.0 pass, 0.0 fail, NaN unknown or padding.
        weights: ``(B, K, T)`` relevance of each token to each rubric, in [0, 1].
        mask: ``(B, T)`` 1 (or True) for a response token, 0 for padding.
        group_size: G, the number of contiguous rows per prompt group.
        partition: one of ``PARTITIONS``:

            - ``intra_sample``: z-score r_{i,k,.} over the valid tokens of
              response i, then average over the known rubrics of i.
            - ``inter_sample``: z-score r_{.,k,.} over all valid tokens of the
              group's rows whose verdict k is known, then average over the
              known rubrics of each row.
            - ``group_pooled``: average r over the known rubrics of each row,
              then z-score that over all valid tokens of the group.
            - ``rubric_softmax``: z-score s_{.,k} over the group's rows with a
              known verdict k, and spread it over tokens with a softmax over
              the known rubrics of w_{i,k,t} / ``tau``.
            - ``signed``: average r over the known rubrics, no normalization.
        tau: softmax temperature for ``rubric_softmax``; must be > 0.
        rubric_weights: ``(B, K)`` non-negative weights turning each "average
            over known rubrics" into a weighted average (``rubric_softmax``:
            p ∝ weight * exp(w / tau)); default all ones. Weight 0 drops a
            rubric from the average, not from the z-score sets.
        min_std: floor on the std that divides each z-score (``intra_sample``,
            ``inter_sample``, ``group_pooled``, ``rubric_softmax``): a set whose
            std is below it is divided by ``min_std`` instead, so a nearly
            constant row (a learned relevance row of noise) is not blown up into
            unit-size credit. A set of equal values still gives exactly 0. The
            default 0 is the plain z-score.

    Returns:
        ``(B, T)`` advantages, finite everywhere and exactly 0 on padding and
        on rows with no known rubric (or zero total weight). float32, or
        float64 when ``verdicts`` or ``weights`` is float64.
    """
    if partition not in _PARTITION_FNS:
        raise ValueError(f"unknown partition {partition!r}; valid: {', '.join(PARTITIONS)}")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if not min_std >= 0:
        raise ValueError(f"min_std must be >= 0, got {min_std}")
    if weights.dim() != 3 or verdicts.shape != weights.shape[:2] or mask.shape != (weights.shape[0], weights.shape[2]):
        raise ValueError(
            f"expected verdicts (B, K), weights (B, K, T) and mask (B, T), got {tuple(verdicts.shape)}, "
            f"{tuple(weights.shape)} and {tuple(mask.shape)}"
        )
    B = weights.shape[0]
    if group_size < 1 or B % group_size != 0:
        raise ValueError(f"batch size {B} is not a multiple of group_size {group_size}")
    dtype = _compute_dtype(verdicts, weights)
    verdicts, weights = verdicts.to(dtype), weights.to(dtype)
    _check_verdicts(verdicts)
    if weights.numel() == 0:  # no rubric slot or no token: nothing to credit
        return weights.new_zeros(weights.shape[0], weights.shape[2])

    known = ~verdicts.isnan()
    valid = mask != 0
    signs = (2 * verdicts - 1).where(known, 0)
    rubric_w = _known_rubric_weights(rubric_weights, known, verdicts.dtype)
    # Whatever a caller left outside the scored entries (padding tokens,
    # unknown rubrics) must not reach the result. The partitions multiply
    # those entries by 0 (a mask or a zero coefficient), overwrite them, or
    # leave them on padding, zeroed below: exact for any finite value, but
    # 0 * inf = NaN. A finite sum (one read) proves every entry finite, so
    # only inputs with NaN or inf there pay for a cleaned copy.
    if not weights.sum().isfinite():
        weights = weights.where(known[:, :, None] & valid[:, None, :], 0)

    advantages = _PARTITION_FNS[partition](
        signs=signs, weights=weights, known=known, valid=valid, rubric_w=rubric_w, group_size=group_size, tau=tau,
        min_std=min_std,
    )
    return advantages.where(valid, 0)


def combine_advantages(
    response_adv: torch.Tensor,
    token_adv: torch.Tensor,
    mask: torch.Tensor,
    method: str = "add",
    coef: float = 0.5,
) -> torch.Tensor:
    """Broadcast a response-level advantage over tokens and add token credit.

    Args:
        response_adv: ``(B,)`` one advantage per response (e.g. GRPO's).
        token_adv: ``(B, T)`` from :func:`token_advantages`.
        mask: ``(B, T)`` 1 for a response token, 0 for padding.
        method: ``"add"``: A = A_res + coef * A_tok; ``"mix"``:
            A = (1 - coef) * A_res + coef * A_tok.
        coef: weight of the token advantage.

    Returns:
        ``(B, T)`` combined advantages, exactly 0 on padding.
    """
    B = response_adv.shape[0]
    if response_adv.dim() != 1 or token_adv.dim() != 2 or token_adv.shape[0] != B or mask.shape != token_adv.shape:
        raise ValueError(
            f"expected response_adv (B,), token_adv and mask (B, T), got {tuple(response_adv.shape)}, "
            f"{tuple(token_adv.shape)}, {tuple(mask.shape)}"
        )
    if method == "add":
        combined = response_adv[:, None] + coef * token_adv
    elif method == "mix":
        combined = (1 - coef) * response_adv[:, None] + coef * token_adv
    else:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(COMBINE_METHODS)}")
    return combined.where(mask != 0, 0)


# ----------------------------------------------------------------------------
# Partitions. Each takes the inputs of token_advantages, checked:
#   signs    (B, K)    +1 pass, -1 fail, 0 unknown
#   weights  (B, K, T) relevance; finite, but outside the scored entries
#                      (known verdict k, valid token t) any value; the
#                      caller's tensor, never written to
#   known    (B, K)    bool, verdict is known
#   valid    (B, T)    bool, token is part of the response
#   rubric_w (B, K)    averaging weights, 0 for unknown rubrics
# and returns (B, T) advantages, anything on padding (the caller zeroes it).
# On CPU a fresh (B, K, T) buffer costs more than a pass of arithmetic over
# it, and each pass over (B, K, T) costs more than all the (B, K) or (B, T)
# work: so the partitions reduce to per-row statistics and contract over
# rubrics once, writing at most one (B, K, T) tensor.
# ----------------------------------------------------------------------------


def _intra_sample(signs, weights, known, valid, rubric_w, group_size, tau, min_std):
    # One set per (row, rubric) is inter_sample with groups of one row.
    return _inter_sample(signs, weights, known, valid, rubric_w, group_size=1, tau=tau, min_std=min_std)


def _inter_sample(signs, weights, known, valid, rubric_w, group_size, tau, min_std):
    centred, inv_std = _centre_in_sets(weights, valid, signs, group_size, min_std)
    # The z-score s * centred * inv_std is the centred weights times one
    # number per (row, rubric), which rides along with the averaging weights
    # into the one contraction over rubrics.
    return _mean_over_rubrics(centred, rubric_w, signs * inv_std)


def _group_pooled(signs, weights, known, valid, rubric_w, group_size, tau, min_std):
    # Zero padding first: there the weights, whatever they are, times the
    # coefficients may have overflowed to inf, and _centre_in_sets masks by
    # multiplying.
    pooled = _mean_over_rubrics(weights, rubric_w, signs).where(valid, 0)
    has_rubric = (rubric_w.sum(dim=1, keepdim=True) > 0).to(pooled.dtype)
    centred, inv_std = _centre_in_sets(pooled[:, None, :], valid, has_rubric, group_size, min_std)
    return centred[:, 0] * inv_std


def _rubric_softmax(signs, weights, known, valid, rubric_w, group_size, tau, min_std):
    # Each rubric's sign is one value per row: its sets have one "token" a row.
    one_token = torch.ones_like(valid[:, :1])
    centred, inv_std = _centre_in_sets(signs[:, :, None], one_token, known.to(signs.dtype), group_size, min_std)
    response_adv = centred[:, :, 0] * inv_std  # (B, K)
    # p_k ∝ rubric_w_k * exp(w_k / tau). Rubrics of weight 0, unknown ones
    # included, must get p = 0: their logits are set to -inf outright, as
    # w / tau of whatever a caller left there may itself be inf (and
    # inf - inf = NaN).
    usable = rubric_w > 0
    logits = weights / tau
    # Indexed by position: a (B, K) bool mask would run as a masked_fill over
    # all of (B, K, T).
    logits[(~usable).nonzero(as_tuple=True)] = -torch.inf
    # exp(w / tau - max_k) in place (a second (B, K, T) buffer would cost more
    # than the arithmetic): the max shift keeps exp finite, and the softmax's
    # normalisation cancels in the ratio below, so it is never computed.
    exponentials = logits.sub_(logits.amax(dim=1, keepdim=True)).exp_()
    # sum_k p_k A_k = sum_k rubric_w_k e_k A_k / sum_k rubric_w_k e_k: both
    # sums in one pass over e.
    coefficients = torch.stack([rubric_w * response_adv, rubric_w], dim=1)  # (B, 2, K)
    numerator, denominator = torch.bmm(coefficients, exponentials).unbind(dim=1)
    # A row without any usable rubric has all logits -inf, hence NaN.
    return (numerator / denominator).where(usable.any(dim=1, keepdim=True), 0)


def _signed(signs, weights, known, valid, rubric_w, group_size, tau, min_std):
    return _mean_over_rubrics(weights, rubric_w, signs)


_PARTITION_FNS: dict[str, Callable[..., torch.Tensor]] = {
    "intra_sample": _intra_sample,
    "inter_sample": _inter_sample,
    "group_pooled": _group_pooled,
    "rubric_softmax": _rubric_softmax,
    "signed": _signed,
}
assert tuple(_PARTITION_FNS) == PARTITIONS


# ----------------------------------------------------------------------------
# Shared helpers.
# ----------------------------------------------------------------------------


def _centre_in_sets(
    x: torch.Tensor, valid: torch.Tensor, sign: torch.Tensor, group_size: int, min_std: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre the values ``sign * x`` within each z-score set; give each set's 1 / std.

    ``x`` ``(B, K, T)`` finite, ``valid`` ``(B, T)`` bool, ``sign`` ``(B, K)``
    +1 or -1, or 0 to leave (i, k) out of every set. Set (g, k) holds the
    values sign[i, k] * x[i, k, t] for the rows i of prompt group g
    (``group_size`` rows; 1 gives one set per row) with sign[i, k] != 0 and
    the valid tokens t of row i. Entries in no set may hold any finite value.

    Returns ``centred`` ``(B, K, T)``, a new tensor, and ``inv_std``
    ``(B, K)``: ``sign * centred`` is each set's values minus the set mean on
    the set's entries and 0 on invalid tokens (``centred`` is x on the valid
    tokens of an (i, k) in no set); ``inv_std`` is 1 / max(population std of
    the set of (i, k), ``min_std``), or 0 where (i, k) is in no set or its set's values are
    all equal. So the z-score is ``sign * centred * inv_std`` (over the last
    dim, broadcast), 0 outside the sets; callers fold ``sign * inv_std`` into
    a later contraction rather than pay a pass over (B, K, T) to form it.
    """
    B, K, _ = x.shape
    valid_f = valid.to(x.dtype)[:, None, :]  # (B, 1, T)
    tokens = valid_f.sum(dim=2)  # (B, 1)
    member = (sign != 0) & (tokens > 0)
    count = _set_total(tokens * member, group_size).clamp(min=1)
    # Shift by one value of each set (the first valid token of its first
    # member row): a set of equal values becomes exactly 0, so its std is
    # exactly 0 and not round-off that 1 / std would blow up to ±1. As
    # sign = ±1, s x - v = s (x - s v): row i's x shifts by s_i v.
    first_token = valid.to(torch.uint8).argmax(dim=1)  # (B,)
    first_values = sign * x.gather(2, first_token[:, None, None].expand(B, K, 1))[:, :, 0]
    grouped = _by_group(first_values, group_size)
    first_row = _by_group(member, group_size).to(torch.uint8).argmax(dim=1, keepdim=True)
    shift = grouped.gather(1, first_row).expand_as(grouped).reshape(B, K)
    # Masks multiply rather than select (torch.where is slower on CPU), so an
    # (i, k) in no set keeps its finite junk on valid tokens; its statistics
    # are dropped with where (they may be inf) and it is shifted by 0.
    centred = x * valid_f
    centred.addcmul_((sign * shift).where(member, 0)[:, :, None], valid_f, value=-1)
    mean = _set_total((sign * centred.sum(dim=2)).where(member, 0), group_size) / count
    centred.addcmul_((sign * mean).where(member, 0)[:, :, None], valid_f, value=-1)
    squares = torch.linalg.vector_norm(centred, dim=2).square()
    std = (_set_total(squares.where(member, 0), group_size) / count).sqrt()
    return centred, std.clamp(min=min_std).reciprocal().where(member & (std > 0), 0)


def _set_total(row_values: torch.Tensor, group_size: int) -> torch.Tensor:
    """``(B, K)`` per-row values -> ``(B, K)`` sums over each row's prompt group."""
    grouped = _by_group(row_values, group_size)
    return grouped.sum(dim=1, keepdim=True).expand_as(grouped).reshape(row_values.shape)


def _by_group(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """Reshape ``(B, ...)`` to ``(B / G, G, ...)``: one slice per prompt group."""
    return x.reshape(x.shape[0] // group_size, group_size, *x.shape[1:])


def _mean_over_rubrics(x: torch.Tensor, rubric_w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Weighted mean over rubrics of ``x`` times ``scale``.

    ``x`` ``(B, K, T)``, ``rubric_w`` and ``scale`` ``(B, K)`` -> ``(B, T)``.
    Rows whose weights sum to 0 get 0.
    """
    total = rubric_w.sum(dim=1, keepdim=True)
    coef = rubric_w / total.where(total > 0, 1) * scale
    return torch.einsum("bkt,bk->bt", x, coef)


def _known_rubric_weights(rubric_weights: torch.Tensor | None, known: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(B, K)`` averaging weights, forced to 0 on unknown verdicts."""
    if rubric_weights is None:
        return known.to(dtype)
    if rubric_weights.shape != known.shape:
        raise ValueError(f"expected rubric_weights {tuple(known.shape)}, got {tuple(rubric_weights.shape)}")
    rubric_weights = rubric_weights.to(dtype).where(known, 0)
    if not (rubric_weights >= 0).all():
        raise ValueError("rubric_weights must be >= 0 (and not NaN) where the verdict is known")
    return rubric_weights


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32 (also for half precision)."""
    return torch.float64 if any(x.dtype == torch.float64 for x in tensors) else torch.float32


def _check_verdicts(verdicts: torch.Tensor) -> None:
    if not ((verdicts == 0) | (verdicts == 1) | verdicts.isnan()).all():
        raise ValueError("verdicts must be 1.0 (pass), 0.0 (fail) or NaN (unknown)")
