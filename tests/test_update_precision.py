"""The policy update's fast paths: float32 master weights for a bf16 policy, and the plain CPU scoring of
completion tokens in front of TRL's fused LM head (both checked against what they replace)."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM
from trl.trainer.utils import add_fused_lm_head

from rubrics2tokens.trainer import completion_logprobs
from rubrics2tokens.trainer.completion_logprobs import _scores, score_labelled_rows_on_cpu
from rubrics2tokens.trainer.master_weights import MASTER_KEY, with_master_weights

TEMPERATURE = 0.7


def _batch(model, prompt_length=5, completion_length=7, rows=3):
    """Left-padded prompts + right-padded completions, labels only on completion tokens (TRL's layout)."""
    generator = torch.Generator().manual_seed(1)
    vocab = model.config.vocab_size
    input_ids = torch.randint(3, vocab, (rows, prompt_length + completion_length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :2] = 0  # a padded prompt
    attention_mask[1, -3:] = 0  # a completion that stopped early
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    labels[:, :-completion_length] = -100
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def _scored(model, batch):
    output = model(**batch, fused_lm_head=True)
    loss = -(output.log_probs.sum() + 0.3 * output.entropy.sum())  # a gradient through both outputs
    loss.backward()
    grads = {name: param.grad.clone() for name, param in model.named_parameters()}
    model.zero_grad()
    return output, grads


def test_plain_cpu_scoring_matches_trls_fused_head(tiny_model_dir):
    trl_model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    add_fused_lm_head(trl_model, temperature=TEMPERATURE, outputs=("log_probs", "entropy"))
    ours = copy.deepcopy(trl_model)
    assert score_labelled_rows_on_cpu(ours, TEMPERATURE)
    batch = _batch(trl_model)
    expected, expected_grads = _scored(trl_model, batch)
    got, grads = _scored(ours, batch)
    assert torch.equal(got.label_mask, expected.label_mask)
    assert torch.allclose(got.log_probs, expected.log_probs, atol=1e-5)
    assert torch.allclose(got.entropy, expected.entropy, atol=1e-5)
    assert torch.allclose(got.loss, expected.loss, atol=1e-5)
    assert (got.log_probs[~got.label_mask] == 0).all()
    for name, grad in grads.items():
        assert torch.allclose(grad, expected_grads[name], atol=1e-5), name


def test_plain_cpu_scoring_pieces_large_batches_without_autograd_and_leaves_them_to_trl_with_it(tiny_model_dir,
                                                                                                 monkeypatch):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    add_fused_lm_head(model, temperature=TEMPERATURE, outputs=("log_probs", "entropy"))
    reference = copy.deepcopy(model)
    score_labelled_rows_on_cpu(model, TEMPERATURE)
    batch = _batch(model)
    pieces = []
    monkeypatch.setattr(completion_logprobs, "_scores", lambda logits, targets: pieces.append(len(targets))
                        or _scores(logits, targets))
    monkeypatch.setattr(completion_logprobs, "MAX_LOGITS", 2 * model.config.vocab_size)  # 2 positions a piece
    with torch.no_grad():  # the held-out evaluation: the plain path, in pieces
        got, expected = model(**batch, fused_lm_head=True), reference(**batch, fused_lm_head=True)
        assert pieces == [2] * 9  # 18 labelled positions: 3 rows x 6 (7 completion tokens, less one padded x 3)
        assert torch.allclose(got.log_probs, expected.log_probs, atol=1e-5)
        assert torch.allclose(got.entropy, expected.entropy, atol=1e-5)
        plain = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert plain.logits.shape[-1] == model.config.vocab_size  # without fused_lm_head: the model's own forward
    pieces.clear()
    got = model(**batch, fused_lm_head=True)  # autograd on and over budget: TRL's kernel, same numbers
    assert pieces == [] and torch.allclose(got.log_probs, expected.log_probs, atol=1e-5)


def test_a_capped_head_keeps_trls_path(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model.config.final_logit_softcapping = 30.0
    assert not score_labelled_rows_on_cpu(model, TEMPERATURE)


def test_master_weights_keep_updates_below_bf16_resolution():
    """A learning rate far below bf16's step at the weight's size: plain bf16 AdamW loses every update, the
    master weights accumulate them and the bf16 weight follows once they add up to a step."""
    weight = torch.full((4,), 1.0)
    bf16_plain = torch.nn.Parameter(weight.bfloat16())
    bf16_master = torch.nn.Parameter(weight.bfloat16())
    plain = torch.optim.AdamW([bf16_plain], lr=1e-4, weight_decay=0.0)
    mastered = with_master_weights(torch.optim.AdamW)([bf16_master], lr=1e-4, weight_decay=0.0)
    for _ in range(100):  # each step moves the weight by ~lr; bf16's step at 1.0 is 2**-7 = 0.0078
        for param, optimizer in ((bf16_plain, plain), (bf16_master, mastered)):
            param.grad = torch.ones_like(param)
            optimizer.step()
    assert torch.equal(bf16_plain.detach(), weight.bfloat16())  # every update lost
    master = mastered.state_dict()[MASTER_KEY][0]
    assert master.dtype == torch.float32
    assert torch.allclose(master, torch.full((4,), 1.0 - 100 * 1e-4), atol=2e-5)
    assert torch.equal(bf16_master.detach(), master.bfloat16())
    assert bf16_master.dtype == torch.bfloat16


def test_master_weights_resume_exactly_and_leave_float32_parameters_alone():
    model = torch.nn.Linear(3, 2)
    model.weight.data = model.weight.data.bfloat16()  # one low-precision parameter, one float32 bias
    optimizer_cls = with_master_weights(torch.optim.AdamW)
    optimizer = optimizer_cls(model.parameters(), lr=1e-3)
    for _ in range(3):
        model.weight.grad = torch.ones_like(model.weight)
        model.bias.grad = torch.ones_like(model.bias)
        optimizer.step()
    state = copy.deepcopy(optimizer.state_dict())
    assert len(state[MASTER_KEY]) == 1  # only the bf16 weight has a master copy

    resumed_model = torch.nn.Linear(3, 2)
    resumed_model.weight.data = model.weight.data.clone()  # a checkpoint keeps the bf16 weights
    resumed_model.bias.data = model.bias.data.clone()
    resumed = optimizer_cls(resumed_model.parameters(), lr=1e-3)
    resumed.load_state_dict(state)
    for param_model, opt in ((model, optimizer), (resumed_model, resumed)):
        param_model.weight.grad = torch.ones_like(param_model.weight)
        param_model.bias.grad = torch.ones_like(param_model.bias)
        opt.step()
    assert torch.equal(resumed.state_dict()[MASTER_KEY][0], optimizer.state_dict()[MASTER_KEY][0])
    assert torch.equal(resumed_model.weight, model.weight) and torch.equal(resumed_model.bias, model.bias)
    with pytest.raises(ValueError, match="master weights"):
        optimizer_cls([torch.nn.Parameter(torch.ones(2))], lr=1e-3).load_state_dict(state)


def test_a_bf16_policy_trains_with_master_weights(tiny_model_dir, tmp_path):
    """A real TRL step: the trainer picks the master-weight optimizer for a bf16 policy, the float32 masters take
    the update (weight decay moves every weight by lr x decay, below bf16's resolution), the bf16 weights are the
    masters rounded, and the checkpoint keeps the masters (what --resume needs)."""
    from rubrics2tokens.data.dataset import to_trl_dataset
    from rubrics2tokens.data.synthetic import generate_rows
    from rubrics2tokens.scoring.router import RoutingScorer
    from rubrics2tokens.trainer import RTTConfig, RTTGRPOTrainer
    from transformers import AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    args = RTTConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=4,
                     max_completion_length=8, max_steps=1, use_cpu=True, report_to=[], seed=0, learning_rate=1e-3,
                     weight_decay=0.1, rollout_backend="static", save_strategy="steps", save_steps=1)
    trainer = RTTGRPOTrainer(model=model, scorer=RoutingScorer(mode="verifiers"), args=args,
                             train_dataset=to_trl_dataset(generate_rows(4, seed=3)),
                             processing_class=AutoTokenizer.from_pretrained(tiny_model_dir))
    trainer.train()
    assert type(trainer.optimizer.optimizer).__name__ == "MasterWeightAdamW"
    names = {id(param): name for name, param in trainer.model.named_parameters()}
    pairs = trainer.optimizer.optimizer._pairs  # (bf16 parameter, float32 master), in the optimizer's group order
    assert sorted(names[id(param)] for param, _ in pairs) == sorted(before)
    kept_only_in_master = 0  # weights whose update is below bf16's resolution: lost without the masters
    for param, master in pairs:
        assert param.dtype == torch.bfloat16 and master.dtype == torch.float32
        assert torch.equal(param, master.bfloat16())
        initial = before[names[id(param)]]
        kept_only_in_master += int(((master != initial.float()) & (param == initial)).sum())
    assert kept_only_in_master > 0
    saved = torch.load(tmp_path / "out" / "checkpoint-1" / "optimizer.pt", weights_only=False)
    for (_, master), kept in zip(pairs, saved[MASTER_KEY], strict=True):
        assert torch.equal(master, kept)
