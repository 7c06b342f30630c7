"""RTTGRPOTrainer on a tiny local model: loss canary, config guards, the advantages it hands to TRL."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rubrics2tokens.advantages import token_advantages
from rubrics2tokens.data.dataset import to_trl_dataset
from rubrics2tokens.data.synthetic import generate_rows
from rubrics2tokens.relevance.sources import OracleRelevance, RelevanceInputs
from rubrics2tokens.scoring.router import RoutingScorer
from rubrics2tokens.trainer import RTTConfig, RTTGRPOTrainer, completion_logprobs
from rubrics2tokens.trainer.completion_logprobs import _scores


def make_trainer(model_dir, tmp_path, **overrides) -> RTTGRPOTrainer:
    settings = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=4,
                    max_completion_length=16, max_steps=1, use_cpu=True, report_to=[], seed=0,
                    reward_aggregation="csr", relevance_source="oracle", bf16=False)
    settings.update(overrides)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    return RTTGRPOTrainer(model=model, scorer=RoutingScorer(mode="verifiers"), args=RTTConfig(**settings),
                          train_dataset=to_trl_dataset(generate_rows(8, seed=3)), processing_class=tokenizer)


@pytest.mark.parametrize("logprob_head", ["plain", "fused"])
def test_loss_and_gradients_match_a_hand_written_token_surrogate(tiny_model_dir, tmp_path, logprob_head):
    """Canary for TRL upgrades: with injected (B, T) advantages, TRL's loss is the per-token clipped surrogate,
    with completion tokens scored by our CPU path or by TRL's fused LM head."""
    trainer = make_trainer(tiny_model_dir, tmp_path, loss_type="bnpo", epsilon=0.2, epsilon_high=0.27,
                           logprob_head=logprob_head)
    trainer.current_gradient_accumulation_steps = 1
    model = trainer.model
    model.train()
    generator = torch.Generator().manual_seed(0)
    batch, prompt_len, length = 4, 5, 7
    vocab = model.config.vocab_size
    prompt_ids = torch.randint(3, vocab, (batch, prompt_len), generator=generator)
    completion_ids = torch.randint(3, vocab, (batch, length), generator=generator)
    completion_mask = torch.ones(batch, length, dtype=torch.long)
    completion_mask[1, 4:] = 0
    completion_mask[3, 2:] = 0
    advantages = torch.randn(batch, length, generator=generator) * completion_mask
    # old log-probs far from the current ones, so both clip branches are exercised
    old_logps = torch.randn(batch, length, generator=generator) * 0.5 - 4.0
    inputs = {"prompt_ids": prompt_ids, "prompt_mask": torch.ones_like(prompt_ids), "completion_ids": completion_ids,
              "completion_mask": completion_mask, "advantages": advantages, "old_per_token_logps": old_logps,
              "num_items_in_batch": completion_mask.sum()}

    model.zero_grad()
    loss = trainer.compute_loss(model, inputs)
    loss.backward()
    trl_grads = [p.grad.clone() for p in model.parameters()]

    model.zero_grad()
    logits = model(input_ids=torch.cat([prompt_ids, completion_ids], 1)).logits[:, prompt_len - 1:-1]
    logps = torch.log_softmax(logits.float(), -1).gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)
    ratio = torch.exp(logps - old_logps)
    surrogate = torch.minimum(ratio * advantages, torch.clamp(ratio, 1 - 0.2, 1 + 0.27) * advantages)
    expected = -(surrogate * completion_mask).sum() / completion_mask.sum()
    expected.backward()

    ratios = ratio[completion_mask.bool()]
    assert ((ratios > 1.27) | (ratios < 0.8)).any(), "the canary must exercise clipping"
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-6)
    for got, want in zip(trl_grads, (p.grad for p in model.parameters()), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-6)


def test_the_reference_model_is_scored_by_the_plain_cpu_head_too(tiny_model_dir, tmp_path, monkeypatch):
    trainer = make_trainer(tiny_model_dir, tmp_path, beta=0.04)
    scored = []
    monkeypatch.setattr(completion_logprobs, "_scores", lambda logits, targets: scored.append(len(targets))
                        or _scores(logits, targets))
    input_ids = torch.tensor([[5, 6, 7, 8, 9]])
    labels = torch.tensor([[-100, -100, 7, 8, 9]])
    with torch.no_grad():
        trainer.ref_model(input_ids=input_ids, labels=labels, fused_lm_head=True)
    assert scored == [3]


@pytest.mark.parametrize("overrides, message", [
    (dict(importance_sampling_level="sequence"), "importance_sampling_level='token'"),
    (dict(token_advantage_method="mix", token_advantage_coef=1.0), "drops the response-level advantage"),
    (dict(token_partition="per_token"), "token_partition"),
    (dict(relevance_source="magic"), "relevance_source"),
    (dict(reward_aggregation="mean"), "reward_aggregation"),
])
def test_config_refuses_settings_that_break_the_method(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        RTTConfig(output_dir=str(tmp_path), use_cpu=True, **overrides)


def _generation_batch(trainer: RTTGRPOTrainer) -> list[dict]:
    trainer.model.train()  # metrics and group sizes follow the model's mode, as inside trainer.train()
    # rows 2 and 3 have local rubrics (uppercase letters, forbidden words...): with rows whose deciding span
    # is the whole response (or nothing), the per-response token term is 0 and a check on it has no teeth
    rows = [trainer.train_dataset[i] for i in (2, 3)]
    return [dict(row) for row in rows for _ in range(trainer.num_generations)]


@pytest.mark.parametrize("partition", ["intra_sample", "inter_sample", "group_pooled", "rubric_softmax", "signed"])
def test_rtt_advantages_are_response_advantage_plus_token_term(tiny_model_dir, tmp_path, partition):
    """The token credit of a training step is `token_advantages` of the step's verdicts, unchanged, with averaging
    weight 0 for the rows that flag no token (issue 20 defect 1: empty rows used to leave the z-score sets too)."""
    trainer = make_trainer(tiny_model_dir, tmp_path, per_device_train_batch_size=8, token_advantage_coef=0.5,
                           token_partition=partition)
    output = trainer._generate_and_score_completions(_generation_batch(trainer))
    advantages, mask, ids = output["advantages"], output["completion_mask"], output["completion_ids"]
    assert advantages.shape == ids.shape

    scored = trainer.rubric_reward.last
    weights = OracleRelevance(trainer.processing_class)(RelevanceInputs(ids, mask, scored))
    # Special tokens get nothing, except the EOS of a response one of whose verdicts blames the stop.
    eos = ids == trainer.processing_class.eos_token_id
    blames_stop = (scored.stops & ~torch.isnan(scored.verdicts)).any(dim=1)
    special = torch.isin(ids, torch.tensor(trainer.processing_class.all_special_ids))
    token_mask = mask.bool() & (~special | (eos & blames_stop[:, None]))
    # A row that flags no token leaves the average over rubrics, and only that.
    flags_something = ((weights > 0.5) & token_mask[:, None, :]).any(dim=-1)
    assert (~flags_something & ~torch.isnan(scored.verdicts)).any(), "some known rows flag nothing: teeth"
    expected_token = token_advantages(scored.verdicts, weights.nan_to_num(0.0), token_mask.float(), group_size=4,
                                      partition=partition, min_std=trainer.args.token_std_floor,
                                      rubric_weights=scored.rubric_weights.masked_fill(~flags_something, 0.0))
    # (rubric_softmax z-scores each rubric's verdicts across the group, and this batch's groups agree on every
    # rubric, so its term is 0 here; test_token_credit has a hand-made group where it is not)
    assert partition == "rubric_softmax" or expected_token.abs().sum() > 0, "a token term, so the check has teeth"

    response_part = advantages - 0.5 * expected_token  # must be one constant per response: TRL's A_res
    for i in range(ids.shape[0]):
        valid = response_part[i][mask[i].bool()]
        torch.testing.assert_close(valid, valid[:1].expand_as(valid), atol=1e-5, rtol=0)
        assert torch.all(advantages[i][~mask[i].bool()] == 0)
    logged = trainer._metrics["train"]
    for key in ("rubrics/satisfaction", "rtt/token_adv/abs_mean", "rtt/time/scoring_s", "rtt/time/relevance_s"):
        assert key in logged, key
    assert any(key.startswith("rubrics/pass/testbed/") for key in logged)


def test_relevance_none_is_plain_grpo(tiny_model_dir, tmp_path):
    trainer = make_trainer(tiny_model_dir, tmp_path, relevance_source="none")
    output = trainer._generate_and_score_completions(_generation_batch(trainer)[:4])
    assert output["advantages"].dim() == 1
    assert "rtt/token_adv/abs_mean" not in trainer._metrics["train"]


def test_overlong_penalty_is_a_reward_column_following_completion_length(tiny_model_dir, tmp_path):
    """max 16 tokens, penalty over the last 4: 0 up to 12 tokens, then linearly down to -1 at the limit."""
    trainer = make_trainer(tiny_model_dir, tmp_path, relevance_source="none", overlong_penalty_tokens=4)
    inputs = _generation_batch(trainer)[:4]
    completion_ids = [[5] * length for length in (16, 14, 12, 3)]
    completions = [trainer.processing_class.decode(ids) for ids in completion_ids]
    rewards = trainer._calculate_rewards(inputs, [row["prompt"] for row in inputs], completions, completion_ids)
    assert rewards.shape == (4, 2)
    torch.testing.assert_close(rewards[:, 1], torch.tensor([-1.0, -0.5, 0.0, 0.0]))
    with pytest.raises(ValueError, match="overlong_penalty_tokens"):
        RTTConfig(output_dir=str(tmp_path), use_cpu=True, max_completion_length=16, overlong_penalty_tokens=17)


class UnknownOnOddRows:
    """The real verifiers, but every verdict of every odd response unknown: a judge that did not answer."""

    def __init__(self):
        self.scorer = RoutingScorer(mode="verifiers")

    def score(self, prompts, responses, rubrics):
        scored = self.scorer.score(prompts, responses, rubrics)
        scored.verdicts[1::2] = float("nan")
        return scored


def test_the_overlong_penalty_keeps_an_unscorable_response_unscored(tiny_model_dir, tmp_path):
    """issue 20 defect 2: the overlong penalty turned "unknown" into "fail". A response whose verdicts are all
    unknown gets no reward at all, the penalty included, so TRL leaves it out of its group's baseline and gives
    it advantage 0; the scored responses keep the penalty."""
    trainer = make_trainer(tiny_model_dir, tmp_path, relevance_source="none", overlong_penalty_tokens=4)
    trainer.rubric_reward.scorer = UnknownOnOddRows()
    inputs = _generation_batch(trainer)[:4]
    completion_ids = [[5] * length for length in (16, 16, 14, 14)]
    completions = [trainer.processing_class.decode(ids) for ids in completion_ids]
    rewards = trainer._calculate_rewards(inputs, [row["prompt"] for row in inputs], completions, completion_ids)
    assert torch.isnan(rewards[1::2]).all(), "no rubric reward and no penalty for the unscored responses"
    torch.testing.assert_close(rewards[0::2, 1], torch.tensor([-1.0, -0.5]))

    output = trainer._generate_and_score_completions(inputs)
    assert (output["advantages"][1::2] == 0).all()


def test_rubric_reward_explains_a_missing_rubrics_column():
    from rubrics2tokens.scoring.scorer import RubricReward

    with pytest.raises(ValueError, match="rubrics_json"):
        RubricReward(RoutingScorer(mode="verifiers"))(prompts=["p"], completions=["c"])
