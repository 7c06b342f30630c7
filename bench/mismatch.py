"""How far a low-precision sampler is from the policy it samples for.

    python bench/mismatch.py                                  # SmolLM2, 32 prompts x 64 new tokens
    python bench/mismatch.py --batch 64 --new-tokens 96 --temperature 1.0 --json out.json

Samples completions with the static decoder in each rollout precision (the policy's float32 weights
copied to bfloat16, as ``training.rollout_dtype: bfloat16`` does; and float32 itself, the control),
keeps the sampler's log-probability of every sampled token, and scores the same tokens with the
trained policy the way TRL's update does: one forward over prompt + completion, logits / temperature,
in float32, under CPU bf16 autocast (TRL's default ``bf16: true``), and, for the bf16 sampler, with bf16
weights (``model.dtype: bfloat16``: the policy trains in bf16 with float32 master weights and samples itself).
Reported over the sampled tokens: mean and max |log p_sampler - log p_policy|, KL(sampler || policy) (k1 = mean of the
difference, unbiased; k3 = mean of r - 1 - log r with r = p_policy / p_sampler, never negative), and
the share of tokens whose ratio r leaves [0.5, 2] (what TRL's importance-sampling mask would drop).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
from pathlib import Path

import torch

from rubrics2tokens.data.synthetic import generate_rows
from rubrics2tokens.generation import SamplingParams, StaticCacheDecoder
from rubrics2tokens.generation.rollout import Sampler
from rubrics2tokens.models import DEFAULT_POLICY, load_policy

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def policy_logprobs(model, prompt: list[int], completion: list[int], temperature: float, autocast: bool
                    ) -> torch.Tensor:
    """``(len(completion),)`` log-probabilities of the completion's tokens, as TRL's update computes them."""
    context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with torch.no_grad(), context:
        logits = model(torch.tensor([prompt + completion])).logits[0, len(prompt) - 1:-1].float()
    return (logits / temperature).log_softmax(-1).gather(-1, torch.tensor(completion)[:, None])[:, 0]


def mismatch(sampler_logps: torch.Tensor, policy_logps: torch.Tensor) -> dict:
    log_ratio = policy_logps - sampler_logps
    ratio = log_ratio.exp()
    return {"mean_abs_logprob_diff": log_ratio.abs().mean().item(), "max_abs_logprob_diff": log_ratio.abs().max().item(),
            "kl_k1": (-log_ratio).mean().item(), "kl_k3": (ratio - 1 - log_ratio).mean().item(),
            "ratio_outside_0.5_2": ((ratio < 0.5) | (ratio > 2)).float().mean().item(), "tokens": log_ratio.numel()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_POLICY)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    policy, tokenizer = load_policy(args.model, dtype="float32")
    policy.eval()
    bf16_policy = copy.deepcopy(policy).to(torch.bfloat16)
    prompts = [tokenizer.apply_chat_template(row.messages, add_generation_prompt=True, tokenize=True,
                                             return_dict=False) for row in generate_rows(args.batch, seed=0)]
    params = SamplingParams(temperature=args.temperature)
    results = {"machine": platform.processor() or platform.machine(), "model": args.model, "batch": args.batch,
               "new_tokens": args.new_tokens, "temperature": args.temperature, "samplers": {}}
    print(f"\n{args.model}, {args.batch} prompts x up to {args.new_tokens} tokens, temperature {args.temperature}")
    print("| sampler | policy scored | mean abs diff | max abs diff | KL k1 | KL k3 | ratio outside [0.5, 2] |\n"
          "|---|---|---:|---:|---:|---:|---:|")
    for dtype in (torch.bfloat16, torch.float32):
        with Sampler(dtype)(policy) as sampler:
            decoded = StaticCacheDecoder(sampler, tokenizer.pad_token_id, [tokenizer.eos_token_id]).decode(
                prompts, args.new_tokens, params, torch.Generator().manual_seed(0))
        sampler_logps = torch.tensor(sum(decoded.logprobs, []))
        scorings = [("float32", policy, False), ("bf16 autocast", policy, True)]
        if dtype == torch.bfloat16:  # a bf16 policy (model.dtype bfloat16, float32 master weights) samples itself
            scorings.append(("bf16 weights", bf16_policy, False))
        for scoring, scorer, autocast in scorings:
            policy_logps = torch.cat([policy_logprobs(scorer, p, c, args.temperature, autocast)
                                      for p, c in zip(prompts, decoded.completion_ids)])
            row = mismatch(sampler_logps, policy_logps)
            results["samplers"][f"{str(dtype).removeprefix('torch.')} vs {scoring}"] = row
            print(f"| {str(dtype).removeprefix('torch.')} | {scoring} | {row['mean_abs_logprob_diff']:.4f} | "
                  f"{row['max_abs_logprob_diff']:.3f} | {row['kl_k1']:.5f} | {row['kl_k3']:.5f} | "
                  f"{row['ratio_outside_0.5_2']:.2%} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
