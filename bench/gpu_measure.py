"""The GPU measurements of docs/performance.md, as one script (tested on a CPU with --smoke first).

    python bench/gpu_measure.py --out $OUT            # on a GPU (not yet run on one)
    python bench/gpu_measure.py --smoke --out /tmp/m  # anywhere: the same steps at toy sizes
    python bench/gpu_measure.py --smoke --out /tmp/m --model tests-built-tiny-model-folder

1. Generation: SmolLM2-135M, 64 completions x 256 new tokens, after a warm-up run: new tokens/s of
   transformers `generate` and of the static decoder (with and without CUDA-graph replay), float32
   and bfloat16, and the per-step time against the weight-read floor (`bench/rollout.py`).
2. Steps: the demo config at the paper's rollout shape (8 prompts x 8 samples, 256 tokens), plain
   GRPO and RTT with the static bf16 backend: the RTT/GRPO step ratio (`bench/step.py`).
3. `bench/step.py --baseline` on the same shape: TRL's default path against the fast one.

Each part runs in its own process; a part that fails is recorded and the next one still runs.
Everything lands in --out (JSON per part, the printed tables in summary.md).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).parent
DEMO = BENCH.parent / "configs" / "demo.yaml"
PAPER_SHAPE = ["training.per_device_train_batch_size=64", "training.num_generations=8",
               "training.max_completion_length=256", "training.rollout_backend=static",
               "training.rollout_dtype=bfloat16"]
SMOKE_SHAPE = ["training.per_device_train_batch_size=4", "training.num_generations=2",
               "training.max_completion_length=4", "training.rollout_backend=static"]


def parts(smoke: bool, out: Path, model: str | None) -> dict[str, list[str]]:
    """Each part's command line."""
    shape = [*(SMOKE_SHAPE if smoke else PAPER_SHAPE), *([f"model.name_or_path={model}"] if model else [])]
    steps = ["--steps", "1", "--warmup", "0"] if smoke else ["--steps", "4", "--warmup", "1"]
    generation = ["--batch", "2", "--new-tokens", "4", "--warmup", "0", "--repeats", "1"] if smoke else \
        ["--batch", "64", "--new-tokens", "256", "--warmup", "1", "--repeats", "3"]
    return {
        "generation": [str(BENCH / "rollout.py"), *generation, *(["--model", model] if model else []),
                       "--json", str(out / "generation.json")],
        "rtt_over_grpo": [str(BENCH / "step.py"), str(DEMO), *shape, *steps, "--backends", "static",
                          "--variants", "none,oracle", "--same-completions", "--json", str(out / "rtt_over_grpo.json")],
        "baseline": [str(BENCH / "step.py"), str(DEMO), *shape, *steps, "--baseline",
                     "--json", str(out / "baseline.json")],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--smoke", action="store_true", help="toy sizes, to test the script anywhere")
    parser.add_argument("--only", help="comma-separated parts to run (default all)")
    parser.add_argument("--model", help="another policy than the demo's (a tiny one makes --smoke quick)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    chosen = parts(args.smoke, args.out, args.model)
    if args.only:
        chosen = {name: chosen[name] for name in args.only.split(",")}
    failures = 0
    with (args.out / "summary.md").open("a", encoding="utf-8") as summary:
        for name, command in chosen.items():
            start = time.perf_counter()
            run = subprocess.run([sys.executable, *command], capture_output=True, text=True)
            seconds = time.perf_counter() - start
            tail = "\n".join(run.stdout.strip().splitlines()[-20:])
            summary.write(f"## {name} ({seconds:.0f} s, exit {run.returncode})\n\n`python {' '.join(command)}`\n\n"
                          f"{tail}\n\n")
            if run.returncode:
                failures += 1
                summary.write(f"stderr:\n```\n{run.stderr[-3000:]}\n```\n\n")
            print(f"## {name}: exit {run.returncode} in {seconds:.0f} s\n{tail}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
