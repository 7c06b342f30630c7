"""Credit agreement (`relevance.agreement`): hand-made batches whose answer is known exactly, and
bench/credit_agreement.py end to end on the tiny policy."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch

from rubrics2tokens.advantages import token_advantages
from rubrics2tokens.relevance.agreement import (credit_agreement, oracle_token_sets, summarize_agreement,
                                                token_part)
from tests_paths import REPO

NAN = math.nan
# Three responses of 6 tokens (the last has 4), three rubric slots each:
#   0: rubric 0 fails and blames tokens 1-2, rubric 1 passes and credits token 4, rubric 2 fails and flags
#      every token (a failed title on a one-line response: no token singled out);
#   1: two rubrics pass, rubric 0 credits token 0 (a response where every verdict passes);
#   2: rubric 0 fails and blames token 3 (its last), the others are unknown.
VERDICTS = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, NAN], [0.0, NAN, NAN]])
MASK = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])


def oracle_weights() -> torch.Tensor:
    weights = torch.zeros(3, 3, 6)
    weights[0, 0, 1:3] = 1
    weights[0, 1, 4] = 1
    weights[0, 2] = 1
    weights[1, 0, 0] = 1
    weights[2, 0, 3] = 1
    weights[1, 2] = weights[2, 1:] = NAN  # unknown verdicts: no spans
    return weights


def advantages(weights: torch.Tensor, partition: str) -> torch.Tensor:
    """The trainer's rule: a row that flags nothing leaves the average."""
    flags = (weights > 0.5).any(dim=2)
    return token_advantages(VERDICTS, weights.nan_to_num(0.0), MASK, group_size=1, partition=partition,
                            rubric_weights=flags.float())


def agreement(source: torch.Tensor, oracle: torch.Tensor) -> dict:
    blamed, credited = oracle_token_sets(VERDICTS, oracle_weights(), MASK)
    return credit_agreement(source, oracle, blamed, credited, MASK)


def test_the_oracle_sets_are_its_spans_split_by_verdict():
    blamed, credited = oracle_token_sets(VERDICTS, oracle_weights(), MASK)
    assert blamed.nonzero().tolist() == [[0, 1], [0, 2], [2, 3]]
    assert credited.nonzero().tolist() == [[0, 4], [1, 0]]


@pytest.mark.parametrize("partition", ["intra_sample", "signed"])
def test_a_source_identical_to_the_oracle_agrees_fully(partition):
    oracle = advantages(oracle_weights(), partition)
    result = agreement(oracle.clone(), oracle)
    assert result["cosine"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    summary = summarize_agreement(result)
    assert summary["responses"] == 3
    assert summary["cosine"] == pytest.approx(1.0)
    assert summary["negative_on_blamed"] == pytest.approx(1.0)
    assert summary["positive_on_credited"] == pytest.approx(1.0)


def test_intra_sample_credit_off_the_spans_is_a_response_level_part():
    """Under intra_sample the oracle's all-pass response pushes down every token it does not credit; measured
    from the background that is the response's level, not blame, so the oracle's token part is 0 there."""
    oracle = advantages(oracle_weights(), "intra_sample")
    assert (oracle[1, 1:] < 0).all()
    blamed, credited = oracle_token_sets(VERDICTS, oracle_weights(), MASK)
    part = token_part(oracle, MASK, MASK.bool() & ~blamed & ~credited)
    assert part[1, 1:].abs().max() < 1e-6 and part[1, 0] > 0
    assert part[0, 1:3].lt(0).all() and part[0, 4] > 0 and part[0, [0, 3, 5]].abs().max() < 1e-6


@pytest.mark.parametrize("partition", ["intra_sample", "signed"])
def test_a_source_that_blames_only_unflagged_tokens_gets_share_0(partition):
    weights = torch.zeros(3, 3, 6)
    weights[0, 0, 5] = weights[1, 0, 3] = weights[2, 0, 0] = 1  # failed rubrics blame tokens the oracle never flags
    weights[1, 0] = 0  # and response 1's passing rubric flags nothing
    summary = summarize_agreement(agreement(advantages(weights, partition), advantages(oracle_weights(), partition)))
    assert summary["negative_on_blamed"] == 0.0
    assert summary["cosine"] < 0.5


@pytest.mark.parametrize("partition", ["intra_sample", "signed"])
def test_a_sign_flip_gives_cosine_minus_1_and_a_shift_changes_only_the_raw_cosine(partition):
    oracle = advantages(oracle_weights(), partition)
    flipped = agreement(-oracle, oracle)
    assert flipped["cosine"].tolist() == pytest.approx([-1.0, -1.0, -1.0])
    assert summarize_agreement(flipped)["negative_on_blamed"] == pytest.approx(0.0, abs=1e-9)
    shifted = agreement(2 * oracle + 3.0 * MASK, oracle)  # a response-level advantage on top of the same credit
    assert shifted["cosine"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert shifted["raw_cosine"].lt(0.99).all()


def test_cosine_is_undefined_without_oracle_credit_and_0_without_source_credit():
    oracle = advantages(oracle_weights(), "signed")
    oracle[2] = 0  # no token credit from the oracle on response 2
    source = oracle.clone()
    source[0] = 0.0  # none from the source on response 0
    source[2, :4] = torch.tensor([0.1, -0.3, 0.2, 0.0])
    result = agreement(source, oracle)
    assert result["cosine"][0] == 0.0 and result["cosine"][1] == pytest.approx(1.0)
    assert math.isnan(result["cosine"][2])
    assert summarize_agreement(result)["responses"] == 2
    silent = summarize_agreement(agreement(torch.zeros(3, 6), oracle))
    assert silent["cosine"] == 0.0 and math.isnan(silent["negative_on_blamed"])  # no credit to share


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        credit_agreement(torch.zeros(3, 6), torch.zeros(3, 5), torch.zeros(3, 6, dtype=torch.bool),
                         torch.zeros(3, 6, dtype=torch.bool), MASK)


def test_the_bench_runs_on_the_tiny_policy(tiny_model_dir, tiny_relevance_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    spec = importlib.util.spec_from_file_location("credit_agreement", REPO / "bench" / "credit_agreement.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "agreement.json"
    bench.main(["--policy", str(tiny_model_dir), "--num-prompts", "4", "--group-size", "2", "--max-new-tokens",
                "24", "--sources", "oracle", "random", "contrast", "model",
                "--relevance-model", str(tiny_relevance_dir), "--json", str(out)])
    printed = capsys.readouterr().out
    assert "| oracle | intra_sample |" in printed and "| contrast | signed |" in printed
    table = json.loads(out.read_text())["table"]
    assert set(table) == {"oracle", "random", "contrast", f"model:{tiny_relevance_dir.name}"}  # a row per model
    for partition in ("intra_sample", "signed"):
        oracle = table["oracle"][partition]
        assert oracle["responses"] > 0
        assert oracle["cosine"] == pytest.approx(1.0)
        assert oracle["negative_on_blamed"] == pytest.approx(1.0)
        assert table["random"][partition]["responses"] == oracle["responses"]
        assert table["random"][partition]["cosine"] < 0.9


def test_a_regime_draws_the_prompts_and_the_limit_of_a_study_or_run_config(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    from testbed_batch import regime

    options, limit = regime(str(REPO / "configs" / "study_floor.yaml"))  # a study file: its base
    assert limit == 192
    assert options["quality_rubrics"] == ["no_repeated_sentences", "distinct_words", "end_with_sentence",
                                          "length_floor"]
    assert options["min_rubrics"] == options["max_rubrics"] == 4
    run = tmp_path / "run.yaml"
    run.write_text("data:\n  source: testbed\n  testbed: {seed: 5, families: [no_commas, all_lowercase]}\n")
    assert regime(str(run)) == ({"families": ["no_commas", "all_lowercase"]}, None)  # its seed is not taken


@pytest.mark.parametrize("partition", ["intra_sample", "signed"])
def test_a_response_without_an_unflagged_token_is_left_out(partition):
    """A failed rubric flags the whole text, another blames only the stop token: no token is left to measure a
    level from. Measured from the mean, the text tokens (blamed less than the stop) would read as positive
    credit off the credited tokens, even for the oracle against itself."""
    verdicts = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, NAN]])
    mask = torch.ones(2, 5, dtype=torch.long)
    weights = torch.zeros(2, 3, 5)
    weights[0, 0, :4] = weights[0, 1, 4] = weights[0, 2, 1] = 1  # response 0: text blamed, stop and token 1 too
    weights[1, 0, 1] = weights[1, 1, 3] = 1  # response 1: an ordinary one
    oracle = token_advantages(verdicts, weights, mask, group_size=1, partition=partition)
    blamed, credited = oracle_token_sets(verdicts, weights, mask)
    result = credit_agreement(oracle, oracle, blamed, credited, mask)
    assert math.isnan(result["cosine"][0]) and result["cosine"][1] == pytest.approx(1.0)
    assert result["positive"][0] == 0 and result["negative"][0] == 0
    summary = summarize_agreement(result)
    assert summary["responses"] == 1
    assert summary["positive_on_credited"] == pytest.approx(1.0)
    assert summary["negative_on_blamed"] == pytest.approx(1.0)
