"""Generation throughput: transformers `generate` (TRL's default path) vs our static-cache decoder.

    python bench/rollout.py                                   # SmolLM2, 64 prompts x 256 new tokens
    python bench/rollout.py --batch 8 --new-tokens 96 --json out.json

Both decode the same chat prompts with the same sampling settings (TRL's defaults: temperature 1,
no top-k/top-p) for exactly --new-tokens tokens (EOS is ignored so every run does the same work),
after --warmup untimed runs. Variants: `generate` on the float32 policy, plain and under CPU bf16
autocast (how TRL's default ``bf16: true`` runs it inside a training step: every fp32 weight is cast
again at every decode step), and the static decoder in each --dtypes (the float32 policy copied to
that precision, as ``training.rollout_dtype`` does; on a CPU, bf16 also without the prepacked weights of
`generation/packed_linear.py`). Reported: ms per decode step, new tokens/s, the
speed-up over plain `generate`, and the floor under one decode step: on CUDA the weight read (parameter
bytes / memory bandwidth); on a CPU the larger of the arithmetic (2 x parameters x batch FLOPs at the
matmul peak this script measures in that dtype) and the weight read at the copy bandwidth it measures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from pathlib import Path
from unittest import mock

import torch
from transformers import GenerationConfig

from rubrics2tokens.data.synthetic import generate_rows
from rubrics2tokens.generation import SamplingParams, StaticCacheDecoder, decoder
from rubrics2tokens.generation.rollout import Sampler
from rubrics2tokens.models import DEFAULT_POLICY, load_policy

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_POLICY)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dtypes", default="float32,bfloat16", help="precisions of the policy copy that decodes")
    parser.add_argument("--json", type=Path)
    return parser.parse_args(argv)


def prompts(tokenizer, batch: int) -> list[list[int]]:
    rows = generate_rows(batch, seed=0)
    return [tokenizer.apply_chat_template(row.messages, add_generation_prompt=True, tokenize=True,
                                          return_dict=False) for row in rows]


def run_transformers(model, tokenizer, prompt_ids, new_tokens: int, autocast: bool = False,
                     sampler: Sampler | None = None) -> None:
    if sampler is not None:  # generate on the policy copied to the sampler's dtype
        with sampler(model) as sampling_model:
            return run_transformers(sampling_model, tokenizer, prompt_ids, new_tokens, autocast)
    width = max(map(len, prompt_ids))
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompt_ids], device=model.device)
    attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids], device=model.device)
    config = GenerationConfig(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=True,
                              temperature=1.0, top_k=0, top_p=1.0, pad_token_id=pad, eos_token_id=None)
    context = torch.autocast(model.device.type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with torch.no_grad(), context:
        model.generate(input_ids=input_ids, attention_mask=attention, generation_config=config)


def run_static(model, tokenizer, prompt_ids, new_tokens: int, sampler: Sampler, cuda_graphs: bool = True,
               packed: bool = True) -> None:
    # no EOS: every sequence decodes the full length, as min_new_tokens forces on the other side
    unpacked = mock.patch.object(decoder, "packed_linears", lambda model, rows: contextlib.nullcontext())
    with sampler(model) as sampling_model, contextlib.nullcontext() if packed else unpacked:
        StaticCacheDecoder(sampling_model, tokenizer.pad_token_id, eos_token_ids=[], cuda_graphs=cuda_graphs).generate(
            prompt_ids, new_tokens, SamplingParams(temperature=1.0))


def timed(function, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


PEAK_BANDWIDTH = {"H200": 4.8e12, "H100": 3.35e12}  # bytes/s of the SXM parts' HBM


def weight_bytes(model, dtype: torch.dtype) -> int:
    return sum(p.numel() for p in model.parameters()) * torch.finfo(dtype).bits // 8


def weight_read_seconds(model, dtype: torch.dtype) -> float | None:
    """Bytes of all parameters in ``dtype`` / the GPU's peak memory bandwidth: the floor under one decode step."""
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    bandwidth = next((value for key, value in PEAK_BANDWIDTH.items() if key in name), None)
    return None if bandwidth is None else weight_bytes(model, dtype) / bandwidth


def matmul_flops(dtype: torch.dtype) -> float:
    """Measured here: matmul FLOP/s in ``dtype`` (1024 x 1024 x 1024, best of 5)."""
    a, b = torch.randn(1024, 1024, dtype=dtype), torch.randn(1024, 1024, dtype=dtype)
    a @ b
    return 2 * 1024**3 / min(_seconds(lambda: a @ b) for _ in range(5))


def copy_bandwidth() -> float:
    """Measured here: bytes/s read + written by a 256 MiB copy (best of 5; larger than any CPU cache)."""
    source = torch.ones(256 * 2**20, dtype=torch.uint8)
    target = torch.empty_like(source)
    return 2 * source.numel() / min(_seconds(lambda: target.copy_(source)) for _ in range(5))


def _seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def cpu_floor_ms(model, dtype: torch.dtype, batch: int, bandwidth: float) -> dict:
    """The least time one decode step of ``batch`` sequences can take on this CPU in ``dtype``."""
    flops = matmul_flops(dtype)
    arithmetic = 2 * sum(p.numel() for p in model.parameters()) * batch / flops
    memory = weight_bytes(model, dtype) / bandwidth
    return {"matmul_flops": flops, "copy_bytes_per_s": bandwidth, "arithmetic_ms": 1000 * arithmetic,
            "weight_read_ms": 1000 * memory, "floor_ms": 1000 * max(arithmetic, memory)}


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(0)
    model, tokenizer = load_policy(args.model, dtype="float32")
    if torch.cuda.is_available():
        model.to("cuda")
    model.eval()
    prompt_ids = prompts(tokenizer, args.batch)
    results = {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
               "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
               "model": args.model, "batch": args.batch, "new_tokens": args.new_tokens,
               "load_average": os.getloadavg()[0], "variants": {}}
    variants = {"generate float32": (run_transformers, {}),
                "generate float32 + bf16 autocast": (run_transformers, {"autocast": True})}
    for name in args.dtypes.split(","):
        if name != "float32":
            variants[f"generate {name}"] = (run_transformers, {"sampler": Sampler(getattr(torch, name))})
        variants[f"static {name}"] = (run_static, {"sampler": Sampler(getattr(torch, name))})
        if name == "bfloat16" and not torch.cuda.is_available():
            variants[f"static {name} without packed weights"] = (run_static, {"sampler": Sampler(torch.bfloat16),
                                                                               "packed": False})
        if torch.cuda.is_available():
            variants[f"static {name} without CUDA graphs"] = (run_static, {"sampler": Sampler(getattr(torch, name)),
                                                                           "cuda_graphs": False})
    for name, (function, options) in variants.items():
        try:
            seconds = timed(lambda: function(model, tokenizer, prompt_ids, args.new_tokens, **options),
                            warmup=args.warmup, repeats=args.repeats)
        except Exception as error:  # a variant that fails (say, a CUDA-graph capture) is reported, not fatal
            results["variants"][name] = {"error": repr(error)}
            print(f"{name} failed: {error!r}")
            continue
        results["variants"][name] = {"seconds": seconds, "step_ms": 1000 * seconds / args.new_tokens,
                                     "tokens_per_s": args.batch * args.new_tokens / seconds}
    for name, variant in results["variants"].items():  # against generate in the same precision
        reference = results["variants"].get(f"generate {name.split()[1]}", {})
        if "seconds" in variant and "seconds" in reference:
            variant["speedup"] = reference["seconds"] / variant["seconds"]
    floor = {name: weight_read_seconds(model, getattr(torch, name)) for name in args.dtypes.split(",")}
    if torch.cuda.is_available():
        results["weight_read_ms"] = {name: 1000 * seconds for name, seconds in floor.items() if seconds}
    else:
        bandwidth = copy_bandwidth()
        results["cpu_floor"] = {name: cpu_floor_ms(model, getattr(torch, name), args.batch, bandwidth)
                                for name in args.dtypes.split(",")}

    print(f"\n{results['device']} ({results['machine']}, {results['threads']} threads), {args.model}, batch "
          f"{args.batch} x {args.new_tokens} new tokens, load average {results['load_average']:.2f}")
    print("| variant | ms per decode step | new tokens/s | vs generate in the same precision |\n|---|---:|---:|---:|")
    for name, variant in results["variants"].items():
        if "seconds" in variant:
            print(f"| {name} | {variant['step_ms']:.2f} | {variant['tokens_per_s']:.0f} | "
                  f"{variant.get('speedup', 1.0):.2f}x |")
    for name, milliseconds in results.get("weight_read_ms", {}).items():
        print(f"{name}: weight-read floor {milliseconds:.3f} ms per step")
    for name, limits in results.get("cpu_floor", {}).items():
        step = results["variants"][f"static {name}"]["step_ms"]
        print(f"{name}: matmul peak {limits['matmul_flops'] / 1e9:.0f} GFLOP/s, copy {limits['copy_bytes_per_s'] / 1e9:.1f}"
              f" GB/s; floor per step {limits['floor_ms']:.1f} ms (arithmetic {limits['arithmetic_ms']:.1f}, weight "
              f"read {limits['weight_read_ms']:.1f}); the static decoder runs at {limits['floor_ms'] / step:.0%} of that limit")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
