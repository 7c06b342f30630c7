"""Tests for rubrics2tokens.advantages.

The vectorized code is checked against `reference_token_advantages`, a slow
implementation of the same spec written with plain Python loops and floats,
so that the two share no code. Properties (permutations, locality, padding,
zero sums) are then checked on the vectorized code directly.
"""

import math

import pytest
import torch

from rubrics2tokens.advantages import (
    LOCAL_PARTITIONS,
    PARTITIONS,
    combine_advantages,
    response_rewards,
    token_advantages,
)

NAN = float("nan")


# ----------------------------------------------------------------------------
# Slow reference: loops over groups, rubrics, rows and tokens.
# ----------------------------------------------------------------------------


def reference_zscores(values, min_std=0.0):
    """Population z-scores of a list of floats, the std floored at min_std; all equal (or empty) -> zeros."""
    if not values or max(values) == min(values):
        return [0.0] * len(values)
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return [(v - mean) / max(std, min_std) for v in values]


def reference_token_advantages(verdicts, weights, mask, group_size, partition, tau=1.0, rubric_weights=None,
                               min_std=0.0):
    """The spec of `token_advantages`, one token at a time. Returns a (B, T) list of lists."""
    V, W, M = verdicts.tolist(), weights.tolist(), mask.tolist()
    B, K, T = len(W), len(W[0]), len(W[0][0])
    A = [[1.0] * K for _ in range(B)] if rubric_weights is None else rubric_weights.tolist()
    out = [[0.0] * T for _ in range(B)]
    known = [[k for k in range(K) if not math.isnan(V[i][k])] for i in range(B)]
    tokens = [[t for t in range(T) if M[i][t] != 0] for i in range(B)]
    total_weight = [sum(A[i][k] for k in known[i]) for i in range(B)]

    def sign(i, k):
        return 1.0 if V[i][k] == 1.0 else -1.0

    for start in range(0, B, group_size):
        rows = list(range(start, start + group_size))

        if partition == "intra_sample":
            for i in rows:
                if total_weight[i] == 0:
                    continue
                for k in known[i]:
                    z = reference_zscores([sign(i, k) * W[i][k][t] for t in tokens[i]], min_std)
                    for t, z_t in zip(tokens[i], z):
                        out[i][t] += A[i][k] * z_t / total_weight[i]

        elif partition == "inter_sample":
            for k in range(K):
                members = [(i, t) for i in rows if k in known[i] for t in tokens[i]]
                z = reference_zscores([sign(i, k) * W[i][k][t] for i, t in members], min_std)
                for (i, t), z_it in zip(members, z):
                    if total_weight[i] > 0:
                        out[i][t] += A[i][k] * z_it / total_weight[i]

        elif partition == "group_pooled":
            members, pooled = [], []
            for i in rows:
                if total_weight[i] == 0:
                    continue
                for t in tokens[i]:
                    members.append((i, t))
                    pooled.append(sum(A[i][k] * sign(i, k) * W[i][k][t] for k in known[i]) / total_weight[i])
            for (i, t), z_it in zip(members, reference_zscores(pooled, min_std)):
                out[i][t] = z_it

        elif partition == "rubric_softmax":
            response_adv = {}
            for k in range(K):
                judged = [i for i in rows if k in known[i]]
                for i, z_i in zip(judged, reference_zscores([sign(i, k) for i in judged], min_std)):
                    response_adv[i, k] = z_i
            for i in rows:
                if total_weight[i] == 0:
                    continue
                for t in tokens[i]:
                    unnormalized = {k: A[i][k] * math.exp(W[i][k][t] / tau) for k in known[i]}
                    norm = sum(unnormalized.values())
                    out[i][t] = sum(p / norm * response_adv[i, k] for k, p in unnormalized.items())

        elif partition == "signed":
            for i in rows:
                if total_weight[i] == 0:
                    continue
                for t in tokens[i]:
                    out[i][t] = sum(A[i][k] * sign(i, k) * W[i][k][t] for k in known[i]) / total_weight[i]

        else:
            raise AssertionError(partition)
    return out


# ----------------------------------------------------------------------------
# Inputs.
# ----------------------------------------------------------------------------


def make_batch(seed, n_groups=3, group_size=3, K=4, T=7, dtype=torch.float32):
    """Random inputs with every awkward case the spec names.

    Row 1 has no known verdict, row 2 is an empty response, row 3 a one-token
    response, rubric 0 of row 4 has constant weights (std 0), and the returned
    rubric weights are all 0 on row 5. Masks are right-padded like TRL's;
    weights under padding are random, not zero.
    """
    g = torch.Generator().manual_seed(seed)
    B = n_groups * group_size
    verdicts = torch.randint(0, 2, (B, K), generator=g).to(dtype)
    verdicts[torch.rand(B, K, generator=g) < 0.25] = NAN
    verdicts[1] = NAN
    verdicts[4, 0] = 1.0
    weights = torch.rand(B, K, T, generator=g, dtype=dtype)
    weights[4, 0] = 0.3
    lengths = torch.randint(0, T + 1, (B,), generator=g)
    lengths[2], lengths[3], lengths[4] = 0, 1, T
    mask = (torch.arange(T)[None, :] < lengths[:, None]).long()
    rubric_weights = torch.rand(B, K, generator=g, dtype=dtype) * 2
    rubric_weights[torch.rand(B, K, generator=g) < 0.2] = 0.0
    rubric_weights[5] = 0.0  # a row whose known rubrics all weigh 0
    return dict(verdicts=verdicts, weights=weights, mask=mask, group_size=group_size), rubric_weights


def as_tensor(rows, like):
    return torch.tensor(rows, dtype=like.dtype)


# ----------------------------------------------------------------------------
# token_advantages against the reference.
# ----------------------------------------------------------------------------


def test_hand_computed_intra_sample():
    # One failed rubric, w = [1, 0, 0, 1]: r = [-1, 0, 0, -1], mean -0.5,
    # population std 0.5, so z = [-1, 1, 1, -1].
    verdicts = torch.tensor([[0.0]])
    weights = torch.tensor([[[1.0, 0.0, 0.0, 1.0]]])
    mask = torch.ones(1, 4)
    advantages = token_advantages(verdicts, weights, mask, group_size=1)
    assert advantages.tolist() == [[-1.0, 1.0, 1.0, -1.0]]


def test_hand_computed_rubric_softmax():
    # Two responses, one rubric: pass (s=+1) and fail (s=-1) z-score to +1 and
    # -1. With a single known rubric the softmax gives it every token.
    verdicts = torch.tensor([[1.0, NAN], [0.0, NAN]])
    weights = torch.tensor([[[0.9, 0.1, 0.5], [0.3, 0.3, 0.3]], [[0.2, 0.7, 0.4], [0.6, 0.0, 1.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    advantages = token_advantages(verdicts, weights, mask, group_size=2, partition="rubric_softmax")
    assert advantages.tolist() == [[1.0, 1.0, 0.0], [-1.0, -1.0, -1.0]]


@pytest.mark.parametrize("partition", PARTITIONS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("seed", range(3))
def test_matches_reference(partition, weighted, seed):
    batch, rubric_weights = make_batch(seed)
    rubric_weights = rubric_weights if weighted else None
    tau = 0.5
    expected = reference_token_advantages(**batch, partition=partition, tau=tau, rubric_weights=rubric_weights)
    actual = token_advantages(**batch, partition=partition, tau=tau, rubric_weights=rubric_weights)
    assert actual.dtype == torch.float32
    torch.testing.assert_close(actual, as_tensor(expected, actual), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("partition", PARTITIONS)
@pytest.mark.parametrize("min_std", [0.05, 0.3, 2.0])
def test_std_floor_matches_reference(partition, min_std):
    batch, rubric_weights = make_batch(7)
    expected = reference_token_advantages(**batch, partition=partition, rubric_weights=rubric_weights, min_std=min_std)
    actual = token_advantages(**batch, partition=partition, rubric_weights=rubric_weights, min_std=min_std)
    torch.testing.assert_close(actual, as_tensor(expected, actual), atol=1e-5, rtol=1e-5)


def test_std_floor_keeps_a_near_constant_row_from_becoming_unit_credit():
    # A learned relevance row of noise (0.01 +- 0.005) on a failed rubric: the plain z-score turns it into
    # credit of size ~1 per token; a floor of 0.1 keeps it at the noise's own size.
    noise = 0.01 + 0.005 * torch.tensor([[[1.0, -1.0, 0.5, -0.5, 1.0, -1.0]]])
    verdicts, mask = torch.tensor([[0.0]]), torch.ones(1, 6)
    plain = token_advantages(verdicts, noise, mask, group_size=1)
    floored = token_advantages(verdicts, noise, mask, group_size=1, min_std=0.1)
    assert plain.abs().max() > 0.9
    assert floored.abs().max() < 0.06
    assert torch.equal(token_advantages(verdicts, noise, mask, group_size=1, min_std=0.0), plain)


@pytest.mark.parametrize("partition", PARTITIONS)
def test_matches_reference_in_float64(partition):
    batch, rubric_weights = make_batch(seed=7, n_groups=2, group_size=4, K=5, T=9, dtype=torch.float64)
    expected = reference_token_advantages(**batch, partition=partition, rubric_weights=rubric_weights)
    actual = token_advantages(**batch, partition=partition, rubric_weights=rubric_weights)
    assert actual.dtype == torch.float64
    torch.testing.assert_close(actual, as_tensor(expected, actual), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("partition", PARTITIONS)
def test_constant_sets_give_zero_not_a_blow_up(partition):
    # Every token of every response has weight 0.5 and every rubric passes, so
    # every z-scored set is constant. K = 4 keeps the rubric means exact in
    # float, so the pooled values really are equal.
    verdicts = torch.ones(4, 4)
    weights = torch.full((4, 4, 5), 0.5)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    actual = token_advantages(verdicts, weights, mask, group_size=2, partition=partition)
    expected = reference_token_advantages(verdicts, weights, mask, 2, partition)
    torch.testing.assert_close(actual, as_tensor(expected, actual), atol=1e-6, rtol=0)
    if partition != "signed":
        assert (actual == 0).all()


@pytest.mark.parametrize("partition", PARTITIONS)
def test_constant_sets_of_failed_rubrics_give_zero(partition):
    # As above with every rubric failed: each set holds -0.5 everywhere.
    weights = torch.full((4, 3, 5), 0.5)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 1, 0], [1, 0, 0, 0, 0]])
    actual = token_advantages(torch.zeros(4, 3), weights, mask, group_size=2, partition=partition)
    if partition == "signed":
        assert (actual == -0.5 * mask).all()
    else:
        assert (actual == 0).all()


@pytest.mark.parametrize("partition", ["intra_sample", "inter_sample"])
def test_float32_stays_close_on_ill_conditioned_sets(partition):
    # Long responses whose weights barely vary (std / mean ~ 1e-4), half of
    # them with an outlier first token (z ~ 45). A variance taken as
    # mean(w^2) - mean(w)^2 in float32, even after shifting by the first
    # token, puts the advantages off by 1e-3 to 1e-2 here; centring on the
    # mean first keeps them within ~1e-6 relative.
    g = torch.Generator().manual_seed(0)
    B, K, T = 8, 2, 2048
    weights = 0.5 + 1e-4 * torch.rand(B, K, T, generator=g)
    weights[::2, :, 0] = 0.9
    verdicts = torch.randint(0, 2, (B, K), generator=g).float()
    mask = torch.ones(B, T)
    expected = reference_token_advantages(verdicts, weights, mask, 4, partition)
    actual = token_advantages(verdicts, weights, mask, 4, partition)
    torch.testing.assert_close(actual, as_tensor(expected, actual), atol=1e-4, rtol=1e-6)


@pytest.mark.parametrize("partition", PARTITIONS)
def test_inputs_are_not_modified(partition):
    batch, rubric_weights = make_batch(seed=0)
    inputs = dict(batch, rubric_weights=rubric_weights)
    copies = {name: value.clone() for name, value in inputs.items() if isinstance(value, torch.Tensor)}
    token_advantages(**inputs, partition=partition)
    for name, copy in copies.items():
        torch.testing.assert_close(inputs[name], copy, equal_nan=True)


def test_inter_sample_with_singleton_groups_is_intra_sample():
    # With one response per group, the (group, rubric) set is the (row, rubric) set.
    batch, rubric_weights = make_batch(seed=9)
    batch["group_size"] = 1
    intra = token_advantages(**batch, partition="intra_sample", rubric_weights=rubric_weights)
    inter = token_advantages(**batch, partition="inter_sample", rubric_weights=rubric_weights)
    torch.testing.assert_close(inter, intra, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("partition", PARTITIONS)
@pytest.mark.parametrize("B, K, T", [(4, 0, 5), (4, 3, 0), (0, 3, 5)])
def test_empty_dimensions_give_zeros(partition, B, K, T):
    advantages = token_advantages(torch.ones(B, K), torch.rand(B, K, T), torch.ones(B, T), 2, partition)
    assert advantages.shape == (B, T) and (advantages == 0).all()


def test_half_precision_computes_in_float32():
    batch, _ = make_batch(seed=0)
    batch["weights"] = batch["weights"].to(torch.bfloat16)
    assert token_advantages(**batch).dtype == torch.float32


@pytest.mark.parametrize("mask_dtype", [torch.bool, torch.int32, torch.float32])
def test_mask_dtypes_agree(mask_dtype):
    batch, _ = make_batch(seed=0)
    expected = token_advantages(**batch, partition="inter_sample")
    batch["mask"] = batch["mask"].to(mask_dtype)
    torch.testing.assert_close(token_advantages(**batch, partition="inter_sample"), expected)


# ----------------------------------------------------------------------------
# Properties.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("partition", PARTITIONS)
def test_permuting_rows_within_a_group_permutes_advantages(partition):
    batch, rubric_weights = make_batch(seed=1)
    g = torch.Generator().manual_seed(0)
    G, B = batch["group_size"], batch["mask"].shape[0]
    perm = torch.cat([start + torch.randperm(G, generator=g) for start in range(0, B, G)])
    permuted = dict(batch, verdicts=batch["verdicts"][perm], weights=batch["weights"][perm], mask=batch["mask"][perm])
    expected = token_advantages(**batch, partition=partition, rubric_weights=rubric_weights)[perm]
    actual = token_advantages(**permuted, partition=partition, rubric_weights=rubric_weights[perm])
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("partition", PARTITIONS)
def test_permuting_rubric_slots_changes_nothing(partition):
    batch, rubric_weights = make_batch(seed=2)
    perm = torch.randperm(batch["verdicts"].shape[1], generator=torch.Generator().manual_seed(0))
    permuted = dict(batch, verdicts=batch["verdicts"][:, perm], weights=batch["weights"][:, perm])
    expected = token_advantages(**batch, partition=partition, rubric_weights=rubric_weights)
    actual = token_advantages(**permuted, partition=partition, rubric_weights=rubric_weights[:, perm])
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def _change_other_rows(batch, row, seed):
    """A copy of ``batch`` where every row but ``row`` is redrawn."""
    other, _ = make_batch(seed)
    keep = torch.arange(batch["mask"].shape[0]) == row
    return dict(
        batch,
        verdicts=torch.where(keep[:, None], batch["verdicts"], other["verdicts"]),
        weights=torch.where(keep[:, None, None], batch["weights"], other["weights"]),
        mask=torch.where(keep[:, None], batch["mask"], other["mask"]),
    )


@pytest.mark.parametrize("partition", PARTITIONS)
def test_only_local_partitions_ignore_other_rows(partition):
    batch, _ = make_batch(seed=3)
    row = 4  # full-length response with known verdicts, in group 1
    before = token_advantages(**batch, partition=partition)[row]
    after = token_advantages(**_change_other_rows(batch, row, seed=99), partition=partition)[row]
    if partition in LOCAL_PARTITIONS:
        assert torch.equal(before, after)
    else:
        assert not torch.allclose(before, after)


def test_intra_sample_sums_to_zero_over_each_response():
    batch, rubric_weights = make_batch(seed=4, T=12)
    for weights in (None, rubric_weights):
        advantages = token_advantages(**batch, partition="intra_sample", rubric_weights=weights)
        torch.testing.assert_close(advantages.sum(dim=1), torch.zeros(advantages.shape[0]), atol=1e-5, rtol=0)


def test_signed_does_not_sum_to_zero():
    # One passed rubric, w = [1, 0.5]: no normalization, so A = w.
    advantages = token_advantages(torch.tensor([[1.0]]), torch.tensor([[[1.0, 0.5]]]), torch.ones(1, 2), 1, "signed")
    assert advantages.tolist() == [[1.0, 0.5]]
    assert advantages.sum() == 1.5


@pytest.mark.parametrize("partition", PARTITIONS)
def test_padding_rubric_slots_changes_nothing(partition):
    batch, rubric_weights = make_batch(seed=5)
    B, K, T = batch["weights"].shape
    extra = 3
    padded = dict(
        batch,
        verdicts=torch.cat([batch["verdicts"], torch.full((B, extra), NAN)], dim=1),
        weights=torch.cat([batch["weights"], torch.rand(B, extra, T)], dim=1),
    )
    padded_rubric_weights = torch.cat([rubric_weights, torch.rand(B, extra)], dim=1)
    expected = token_advantages(**batch, partition=partition, rubric_weights=rubric_weights)
    actual = token_advantages(**padded, partition=partition, rubric_weights=padded_rubric_weights)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("partition", PARTITIONS)
def test_padding_token_positions_changes_nothing(partition):
    batch, rubric_weights = make_batch(seed=6)
    B, K, T = batch["weights"].shape
    extra = 5
    padded = dict(
        batch,
        weights=torch.cat([batch["weights"], torch.rand(B, K, extra)], dim=2),
        mask=torch.cat([batch["mask"], torch.zeros(B, extra, dtype=batch["mask"].dtype)], dim=1),
    )
    expected = token_advantages(**batch, partition=partition, rubric_weights=rubric_weights)
    actual = token_advantages(**padded, partition=partition, rubric_weights=rubric_weights)
    torch.testing.assert_close(actual[:, :T], expected, atol=1e-6, rtol=1e-6)
    assert (actual[:, T:] == 0).all()


@pytest.mark.parametrize("partition", PARTITIONS)
def test_finite_and_zero_on_padding_even_with_garbage_in_padding(partition):
    batch, rubric_weights = make_batch(seed=8)
    clean = token_advantages(**batch, partition=partition, rubric_weights=rubric_weights)
    # Garbage where the spec says values do not matter: padded tokens and
    # unknown rubric slots (weights and rubric weights).
    unknown = batch["verdicts"].isnan()
    padding = batch["mask"] == 0
    garbage = dict(batch, weights=batch["weights"].clone())
    garbage["weights"][padding[:, None, :].expand_as(batch["weights"])] = NAN
    garbage["weights"][unknown] = torch.inf
    garbage_rubric_weights = rubric_weights.masked_fill(unknown, NAN)

    advantages = token_advantages(**garbage, partition=partition, rubric_weights=garbage_rubric_weights)
    assert advantages.isfinite().all()
    assert (advantages[padding] == 0).all()
    no_rubric = ~(rubric_weights * ~unknown).gt(0).any(dim=1)
    assert (advantages[no_rubric] == 0).all()
    torch.testing.assert_close(advantages, clean, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("partition", PARTITIONS)
def test_huge_finite_garbage_changes_nothing(partition):
    # Finite garbage is not copied away first, so it must vanish on its own
    # even where it overflows: its squares, and w / tau for a tiny tau, are
    # inf, which must never meet a 0 and turn into NaN.
    batch, rubric_weights = make_batch(seed=8)
    tau = 1e-9
    clean = token_advantages(**batch, partition=partition, tau=tau, rubric_weights=rubric_weights)
    garbage = dict(batch, weights=batch["weights"].clone())
    garbage["weights"][(batch["mask"] == 0)[:, None, :].expand_as(batch["weights"])] = 1e30
    garbage["weights"][batch["verdicts"].isnan()] = 1e30
    advantages = token_advantages(**garbage, partition=partition, tau=tau, rubric_weights=rubric_weights)
    torch.testing.assert_close(advantages, clean, atol=1e-6, rtol=1e-6)


# ----------------------------------------------------------------------------
# Errors.
# ----------------------------------------------------------------------------


def test_bad_group_size_raises():
    batch, _ = make_batch(seed=0)  # B = 9
    for group_size in (2, 0):
        with pytest.raises(ValueError, match="group_size"):
            token_advantages(**dict(batch, group_size=group_size))


def test_unknown_partition_raises_and_lists_valid_names():
    batch, _ = make_batch(seed=0)
    with pytest.raises(ValueError) as error:
        token_advantages(**batch, partition="per_token")
    assert all(name in str(error.value) for name in PARTITIONS)


def test_shape_mismatches_raise():
    batch, _ = make_batch(seed=0)
    bad_inputs = [
        dict(weights=batch["weights"][:, :-1]),  # K differs from verdicts
        dict(mask=batch["mask"][:, :-1]),  # T differs from weights
        dict(verdicts=batch["verdicts"][:-1]),  # B differs
    ]
    for bad in bad_inputs:
        with pytest.raises(ValueError, match="expected"):
            token_advantages(**dict(batch, **bad))
    with pytest.raises(ValueError, match="rubric_weights"):
        token_advantages(**batch, rubric_weights=torch.ones(9, 2))


def test_bad_values_raise():
    batch, _ = make_batch(seed=0)
    with pytest.raises(ValueError, match="verdicts"):
        token_advantages(**dict(batch, verdicts=torch.full_like(batch["verdicts"], 0.5)))
    with pytest.raises(ValueError, match="rubric_weights"):
        token_advantages(**batch, rubric_weights=-torch.ones_like(batch["verdicts"]))
    with pytest.raises(ValueError, match="tau"):
        token_advantages(**batch, partition="rubric_softmax", tau=0.0)


def test_partition_names():
    assert set(LOCAL_PARTITIONS) <= set(PARTITIONS)
    assert PARTITIONS[0] == "intra_sample"


# ----------------------------------------------------------------------------
# response_rewards.
# ----------------------------------------------------------------------------

VERDICTS = torch.tensor(
    [
        [1.0, 1.0, NAN],  # every known verdict passes
        [1.0, 0.0, 1.0],  # one fail
        [NAN, NAN, NAN],  # nothing known
        [0.0, 0.0, 0.0],  # all fail
    ]
)


def _assert_equal_with_nan(actual, expected):
    torch.testing.assert_close(actual, torch.tensor(expected), equal_nan=True)


def test_aon():
    _assert_equal_with_nan(response_rewards(VERDICTS, "aon"), [1.0, 0.0, NAN, 0.0])


def test_csr():
    _assert_equal_with_nan(response_rewards(VERDICTS, "csr"), [1.0, 2 / 3, NAN, 0.0])


def test_weighted_csr_and_aon_ignores_weights():
    rubric_weights = torch.tensor([[1.0, 3.0, 9.0], [1.0, 3.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    # Row 1: passes weigh 1 + 1 out of 1 + 3 + 1.
    _assert_equal_with_nan(response_rewards(VERDICTS, "csr", rubric_weights), [1.0, 0.4, NAN, 0.0])
    _assert_equal_with_nan(response_rewards(VERDICTS, "aon", rubric_weights), [1.0, 0.0, NAN, 0.0])


def test_csr_with_zero_known_weight_is_nan():
    rubric_weights = torch.tensor([[0.0, 0.0, 5.0]])  # only the unknown slot has weight
    _assert_equal_with_nan(response_rewards(VERDICTS[:1], "csr", rubric_weights), [NAN])


def test_unknown_aggregation_raises():
    with pytest.raises(ValueError, match="aon"):
        response_rewards(VERDICTS, "mean")


# ----------------------------------------------------------------------------
# combine_advantages.
# ----------------------------------------------------------------------------

RESPONSE_ADV = torch.tensor([1.0, -2.0])
TOKEN_ADV = torch.tensor([[0.5, -0.5, 3.0], [1.0, 2.0, 3.0]])
MASK = torch.tensor([[1, 1, 0], [1, 1, 1]])


def test_combine_add():
    combined = combine_advantages(RESPONSE_ADV, TOKEN_ADV, MASK, "add", coef=0.5)
    assert combined.tolist() == [[1.25, 0.75, 0.0], [-1.5, -1.0, -0.5]]


def test_combine_mix():
    combined = combine_advantages(RESPONSE_ADV, TOKEN_ADV, MASK, "mix", coef=0.25)
    assert combined.tolist() == [[0.875, 0.625, 0.0], [-1.25, -1.0, -0.75]]


def test_combine_zeroes_padding_even_for_nan_response_advantage():
    combined = combine_advantages(torch.tensor([NAN, 1.0]), TOKEN_ADV, torch.zeros(2, 3), "add")
    assert (combined == 0).all()


def test_combine_unknown_method_raises():
    with pytest.raises(ValueError, match="add"):
        combine_advantages(RESPONSE_ADV, TOKEN_ADV, MASK, "multiply")
