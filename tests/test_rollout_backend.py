"""The static rollout backend inside a real TRL step: each precision, and the sampler's log-probabilities
reaching TRL as ``sampling_per_token_logps``."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rubrics2tokens.data.dataset import to_trl_dataset
from rubrics2tokens.data.synthetic import generate_rows
from rubrics2tokens.scoring.router import RoutingScorer
from rubrics2tokens.trainer import RTTConfig, RTTGRPOTrainer


class RecordingTrainer(RTTGRPOTrainer):
    """Keeps what `_generate_and_score_completions` hands to the loss (test instrumentation only)."""

    def _generate_and_score_completions(self, inputs):
        self.last_batch = super()._generate_and_score_completions(inputs)
        return self.last_batch


@pytest.mark.parametrize("rollout_dtype", ["float32", "bfloat16"])
def test_sampler_logprobs_reach_trl_and_match_the_policy(tiny_model_dir, tmp_path, rollout_dtype):
    args = RTTConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=4,
                     max_completion_length=12, max_steps=1, use_cpu=True, report_to=[], seed=0, bf16=False,
                     relevance_source="oracle", rollout_backend="static", rollout_dtype=rollout_dtype)
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    trainer = RecordingTrainer(model=policy, scorer=RoutingScorer(mode="verifiers"), args=args,
                               train_dataset=to_trl_dataset(generate_rows(8, seed=3)),
                               processing_class=AutoTokenizer.from_pretrained(tiny_model_dir))
    trainer.train()

    batch = trainer.last_batch  # generated before the update, so the policy then was the initial one
    initial = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = initial(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    width = batch["completion_ids"].shape[1]
    policy_logps = logits[:, -width - 1:-1].log_softmax(-1).gather(-1, batch["completion_ids"][..., None])[..., 0]
    sampled = batch["completion_mask"].bool()
    difference = (batch["sampling_per_token_logps"] - policy_logps)[sampled].abs()
    assert sampled.sum() > 8
    if rollout_dtype == "float32":
        assert difference.max() < 1e-4
    else:  # bf16 weights: close to the float32 policy, but not equal (the mismatch docs/performance.md measures)
        assert 0 < difference.mean() < 0.1
