"""`static_rollout`: the decoder as a TRL ``rollout_func`` (TRL's supported hook for generation),
optionally sampling from a lower-precision copy of the policy."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
from trl.models.utils import unwrap_model_for_generation

from rubrics2tokens.generation.decoder import StaticCacheDecoder
from rubrics2tokens.generation.sampling import SamplingParams

ROLLOUT_BACKENDS = ("transformers", "static")
"""``transformers``: TRL's own ``model.generate`` path; ``static``: `StaticCacheDecoder`.
(TRL's vLLM modes are chosen with ``use_vllm`` as usual.)"""

ROLLOUT_DTYPES = ("auto", "float32", "bfloat16")
"""Precision of the sampling model: ``auto`` is bfloat16 where the device computes it natively
(a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX), else the policy's own dtype."""


def has_native_bfloat16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def resolve_rollout_dtype(choice: str, policy_dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """The dtype the sampler runs in for ``choice`` (one of `ROLLOUT_DTYPES`)."""
    if choice not in ROLLOUT_DTYPES:
        raise ValueError(f"rollout_dtype={choice!r} is not valid; choose one of: {', '.join(ROLLOUT_DTYPES)}")
    if choice == "auto":
        return torch.bfloat16 if has_native_bfloat16(device) else policy_dtype
    return getattr(torch, choice)


class Sampler:
    """The model rollouts are drawn from, in ``dtype``: the policy itself when that is its dtype, else
    a copy whose weights are refreshed from the policy before each use (one cast of the weights:
    0.33 s for 135M parameters on a 2-core CPU, against seconds of decoding).

    Either way it runs the model's own forward. Under mixed precision (TRL's default ``bf16: true``)
    accelerate replaces the policy's ``forward`` by one wrapped in autocast; the sampler sets that
    wrapper aside, so ``float32`` means float32 and ``bfloat16`` means bf16 weights (autocast would
    cast every fp32 weight again at every decode step).
    """

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype
        self._copy: torch.nn.Module | None = None

    @contextlib.contextmanager
    @torch.no_grad()
    def __call__(self, policy: torch.nn.Module) -> Iterator[torch.nn.Module]:
        if next(policy.parameters()).dtype == self.dtype:
            wrapped_forward = vars(policy).pop("forward", None)
            try:
                yield policy
            finally:
                if wrapped_forward is not None:
                    policy.forward = wrapped_forward
            return
        if self._copy is None:
            self._copy = copy.deepcopy(policy).to(self.dtype).eval()
            vars(self._copy).pop("forward", None)
        else:
            for target, source in zip(self._copy.parameters(), policy.parameters(), strict=True):
                target.copy_(source)
        yield self._copy


def make_static_rollout(batch_size: int | None = None, dtype: str = "auto"):
    """A ``rollout_func(prompts, trainer)`` that decodes with `StaticCacheDecoder` and the trainer's
    own sampling settings (temperature, top_p, top_k, min_p, repetition_penalty, max_completion_length),
    in the precision ``dtype`` names (`ROLLOUT_DTYPES`).

    It returns the sampler's log-probability of every completion token (temperature-scaled, unfiltered:
    TRL's definition). TRL 1.16 keeps them as ``sampling_per_token_logps`` (its off-policy sequence
    mask reads them); `bench/mismatch.py` compares them with the trained policy's.
    """
    samplers: dict[torch.dtype, Sampler] = {}

    def static_rollout(prompts: list[Any], trainer: Any) -> dict[str, Any]:
        prompt_ids, images, _ = trainer._tokenize_prompts(prompts)  # the chat template exactly as TRL applies it
        if images is not None:
            raise ValueError("the 'static' rollout backend generates from text prompts only")
        params = SamplingParams.from_generation_config(trainer.generation_config)
        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                         gather_deepspeed3_params=trainer.args.ds3_gather_for_generation) as model:
            parameter = next(model.parameters())
            rollout_dtype = resolve_rollout_dtype(dtype, parameter.dtype, parameter.device)
            with samplers.setdefault(rollout_dtype, Sampler(rollout_dtype))(model) as sampler:
                decoder = StaticCacheDecoder(sampler, trainer._tokenizer.pad_token_id, trainer.eos_token_ids,
                                             batch_size)
                decoded = decoder.decode(prompt_ids, trainer.max_completion_length, params)
        return {"prompt_ids": prompt_ids, "completion_ids": decoded.completion_ids, "logprobs": decoded.logprobs}

    return static_rollout
