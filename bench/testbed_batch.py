"""Testbed responses, verdicts and each relevance source's token credit, as the trainer gets them (shared by
bench/std_floor.py and bench/credit_agreement.py).

`sample_testbed_batch` samples ``group_size`` responses to each of ``num_prompts`` testbed prompts
(``generate_rows(N, seed)``; with ``--regime``, drawn as a run or study config's ``data.testbed`` draws them:
its families, rubric counts and quality rubrics, on this seed) with the policy and the RL rollout decoder, and scores them with the verifiers
(``RoutingScorer(mode="verifiers")``). `source_weights` gives a source's ``(B, K, T)`` weights and the
trainer's credit mask (`credit_mask` under the default ``zero_special_tokens``); `token_credit` the token
advantages ``(B, T)`` of `rtt_token_advantages` itself (a row that flags nothing leaves the average).
"""

from __future__ import annotations

import argparse
import functools
import os
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from accelerate import Accelerator

from rubrics2tokens.data.synthetic import generate_rows
from rubrics2tokens.study.spec import load_study
from rubrics2tokens.yaml_config import read_config_tree
from rubrics2tokens.generation import SamplingParams, StaticCacheDecoder
from rubrics2tokens.generation.stopping import stop_token_ids
from rubrics2tokens.models import DEFAULT_POLICY, load_policy
from rubrics2tokens.relevance.sources import RelevanceInputs, build_relevance_source
from rubrics2tokens.scoring.router import RoutingScorer
from rubrics2tokens.scoring.scorer import ScoredBatch
from rubrics2tokens.trainer.rtt_grpo import credit_mask, rtt_token_advantages

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass
class TestbedBatch:
    """B = prompts x group_size responses, each prompt's group contiguous (TRL's layout)."""

    model: torch.nn.Module
    tokenizer: object
    inputs: RelevanceInputs  # completion ids and mask (B, T), the verdicts, the prompts' messages
    texts: list[str]
    group_size: int
    max_new_tokens: int

    @property
    def scored(self) -> ScoredBatch:
        return self.inputs.scored

    def describe(self) -> str:
        lengths = self.inputs.completion_mask.sum(1)
        return (f"{len(self.texts)} responses ({int(lengths.float().mean())} tokens on average, "
                f"{(lengths == self.max_new_tokens).float().mean():.0%} at the limit)")


def add_batch_options(parser: argparse.ArgumentParser) -> None:
    """The options of `sample_testbed_batch`, for a bench script's parser."""
    parser.add_argument("--num-prompts", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1,
                        help="testbed prompts and sampling seed (1: prompts the relevance model was not trained on)")
    parser.add_argument("--group-size", type=int, default=4, help="responses per prompt (num_generations)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="max_completion_length")
    parser.add_argument("--policy", default=DEFAULT_POLICY)
    parser.add_argument("--regime", metavar="CONFIG",
                        help="a run or study config: draw the prompts as its data.testbed does (families, rubric "
                             "counts, quality rubrics; --seed still picks them) and answer up to its "
                             "max_completion_length instead of --max-new-tokens")


PROMPT_KEYS = ("min_rubrics", "max_rubrics", "families", "quality_rubrics")


def regime(path: str) -> tuple[dict, int | None]:
    """A run or study config's ``generate_rows`` keyword arguments (`PROMPT_KEYS` of its ``data.testbed``) and
    its ``training.max_completion_length`` (None where unset)."""
    tree = read_config_tree(path)
    if "base" in tree:  # a study file: its base run config
        tree = load_study(path).base
    testbed = (tree.get("data") or {}).get("testbed") or {}
    return ({key: testbed[key] for key in PROMPT_KEYS if key in testbed},
            (tree.get("training") or {}).get("max_completion_length"))


def sample(model, tokenizer, rows, group_size, max_new_tokens, seed):
    """``(B, T)`` completion ids and mask, right-padded, B = rows x group_size, each group contiguous."""
    prompts = [tokenizer.apply_chat_template(row.messages, add_generation_prompt=True, tokenize=True,
                                             return_dict=False) for row in rows for _ in range(group_size)]
    decoder = StaticCacheDecoder(model, tokenizer.pad_token_id, stop_token_ids(tokenizer, model.generation_config),
                                 batch_size=64)
    completions = decoder.generate(prompts, max_new_tokens, SamplingParams(temperature=1.0),
                                   generator=torch.Generator().manual_seed(seed))
    width = max(map(len, completions))
    ids = torch.full((len(completions), width), tokenizer.pad_token_id)
    mask = torch.zeros((len(completions), width), dtype=torch.long)
    for i, completion in enumerate(completions):
        ids[i, :len(completion)], mask[i, :len(completion)] = torch.tensor(completion), 1
    return ids, mask


def sample_testbed_batch(policy: str, num_prompts: int, seed: int, group_size: int, max_new_tokens: int,
                         regime_path: str | None = None) -> TestbedBatch:
    """Sample and score (see the module docstring); ``seed`` picks the prompts and the sampling."""
    prompt_options = {}
    if regime_path:
        prompt_options, limit = regime(regime_path)
        max_new_tokens = limit or max_new_tokens
    rows = generate_rows(num_prompts, seed=seed, **prompt_options)
    model, tokenizer = load_policy(policy)
    model.eval()
    completion_ids, completion_mask = sample(model, tokenizer, rows, group_size, max_new_tokens, seed)
    texts = tokenizer.batch_decode(completion_ids, skip_special_tokens=True)  # as TRL decodes (padding is special)
    group_rows = [row for row in rows for _ in range(group_size)]
    scored = RoutingScorer(mode="verifiers").score([row.prompt for row in group_rows], texts,
                                                   [row.rubrics for row in group_rows])
    inputs = RelevanceInputs(completion_ids, completion_mask, scored, [row.messages for row in group_rows])
    return TestbedBatch(model, tokenizer, inputs, texts, group_size, max_new_tokens)


def source_weights(batch: TestbedBatch, name: str, seed: int, relevance_model: str | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """A source's ``(B, K, T)`` weights and its ``(B, T)`` bool credit mask, as the trainer builds them."""
    source = build_relevance_source(name, batch.tokenizer, seed=seed, model_path=relevance_model, policy=batch.model)
    weights = source(batch.inputs)
    special_ids = torch.tensor(sorted(set(batch.tokenizer.all_special_ids)))
    stop_ids = torch.tensor(stop_token_ids(batch.tokenizer, batch.model.generation_config))
    token_mask = credit_mask(batch.inputs.completion_ids, batch.inputs.completion_mask, batch.scored, special_ids,
                             stop_ids, getattr(source, "flags_stop", False))
    return weights, token_mask


def token_credit(batch: TestbedBatch, weights: torch.Tensor, token_mask: torch.Tensor, partition: str,
                 threshold: float = 0.5, floor: float = 0.01) -> torch.Tensor:
    """``(B, T)`` token advantages of `rtt_token_advantages` (one process: its gathers return the batch)."""
    options = SimpleNamespace(relevance_threshold=threshold, token_partition=partition, token_softmax_tau=1.0,
                              token_std_floor=floor)
    return rtt_token_advantages(_accelerator(), batch.scored.verdicts, batch.scored.rubric_weights, weights,
                                token_mask.float(), batch.group_size, options)


@functools.cache
def _accelerator() -> Accelerator:
    return Accelerator(cpu=True)
