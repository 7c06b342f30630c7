"""Where an RTT step spends its time, and what RTT costs over plain GRPO.

    python bench/step.py configs/demo.yaml --steps 3
    python bench/step.py configs/demo.yaml --steps 3 --variants none,oracle --backends transformers,static
    python bench/step.py configs/demo.yaml training.relevance_model=runs/relevance/best --variants none,model \
        --same-completions
    python bench/step.py configs/demo.yaml --baseline --steps 3

--baseline compares two variants instead: TRL's default path ('baseline': float32 weights, transformers
`generate`, the config's own checkpointing) and the config as given ('config'), and prints as its last
line ``speedup X.XXx`` (baseline median step time / config median step time). In this mode
checkpoints are written as the config says and their time counts in the step that wrote them.

For every (rollout backend, relevance source) variant it runs --warmup + --steps optimizer steps of the
config (same seed, same data, no held-out evaluation), each variant in a fresh Python process (in one process the variant that
runs second measured 10-25% slower on a CPU whatever it was), and reports per step: generated tokens/s,
and the seconds spent in generation, scoring, relevance, advantage math, the rest of TRL's batch
preparation (log-probs, padding, metrics) and the policy update (forward, backward, gradient clipping,
optimizer). Then, per backend, the ratio
of an RTT step to the plain-GRPO step (relevance 'none'), and per relevance source the ratio of
the 'static' backend's generation tokens/s to TRL's default 'transformers' path. Prints tables and
writes JSON (--json).

After the first update the variants' policies differ, so they write different completions (other
lengths, other generation and update times). --same-completions sets the learning rate to 0: every
variant then keeps the initial policy and samples the same completions from the same seed, while still
paying for every forward, backward and optimizer step, so the RTT/GRPO ratio is RTT's own cost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rubrics2tokens.cli.train import build_trainer  # noqa: E402
from rubrics2tokens.config import load_run_config  # noqa: E402
from rubrics2tokens.trainer import RTTGRPOTrainer  # noqa: E402

PHASES = ("generation_s", "scoring_s", "relevance_s", "advantages_s", "other_prep_s", "update_s", "save_s")
BASELINE = ["model.dtype=float32", "training.rollout_backend=transformers", "training.gradient_checkpointing=true",
            "training.bf16=true", "training.logprob_head=fused"]
"""TRL's default path: float32 weights, transformers' generate, TRL's fused LM head, TRL's defaults for
gradient checkpointing and mixed precision (bf16 autocast); the config's checkpointing stays."""


class TimedTrainer(RTTGRPOTrainer):
    """Records the time of each phase of each step (bench instrumentation only)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records: list[dict] = []
        self.add_callback(OptimizerClock(self.records))

    def _generate(self, prompts):
        start = _now()
        output = super()._generate(prompts)
        self._current["generation_s"] += _now() - start
        self._current["generated_tokens"] += sum(len(ids) for ids in output[1])
        return output

    def _generate_and_score_completions(self, inputs):
        start = _now()
        output = super()._generate_and_score_completions(inputs)
        self._current["prepare_s"] += _now() - start
        metrics = self._metrics["train"]
        for phase, key in (("scoring_s", "rtt/time/scoring_s"), ("relevance_s", "rtt/time/relevance_s"),
                           ("advantages_s", "rtt/time/advantages_s")):
            self._current[phase] += metrics[key][-1] if metrics.get(key) else 0.0
        return output

    def training_step(self, model, inputs, num_items_in_batch=None):
        self._current = dict.fromkeys(("generation_s", "generated_tokens", "prepare_s", "scoring_s",
                                       "relevance_s", "advantages_s"), 0.0)
        start = _now()
        loss = super().training_step(model, inputs, num_items_in_batch)
        total = _now() - start
        record = dict(self._current, total_s=total, save_s=0.0)
        record["other_prep_s"] = record["prepare_s"] - sum(record[p] for p in PHASES[:4])
        record["update_s"] = total - record["prepare_s"]
        record["tokens_per_s"] = record["generated_tokens"] / max(record["generation_s"], 1e-9)
        record["ended"] = _now()
        self.records.append(record)
        return loss

    def _save_checkpoint(self, model, trial):
        start = _now()
        super()._save_checkpoint(model, trial)
        seconds = _now() - start
        self.records[-1]["save_s"] += seconds
        self.records[-1]["total_s"] += seconds


class OptimizerClock(TrainerCallback):
    """Adds gradient clipping and the optimizer step (they run after `training_step`) to the step's update."""

    def __init__(self, records: list[dict]):
        self.records = records

    def on_optimizer_step(self, args, state, control, **kwargs):
        record = self.records[-1]
        seconds = _now() - record.pop("ended")
        record["update_s"] += seconds
        record["total_s"] += seconds


def _now() -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def variant_overrides(args: argparse.Namespace) -> dict[str, list[str]]:
    """Each variant's name and its config overrides."""
    if args.baseline:
        return {"baseline": BASELINE, "config": []}
    return {f"{backend}/{relevance}": ["training.save_strategy='no'", f"training.rollout_backend={backend}",
                                       f"training.relevance_source={relevance}"]
            for backend in args.backends.split(",") for relevance in args.variants.split(",")}


def run_variant(config_path: str, overrides: list[str], steps: int, warmup: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as output:  # on the same disk as runs/ here; checkpoints are real writes
        config = load_run_config(config_path, [*overrides, f"training.output_dir={output}",
                                               f"training.max_steps={steps + warmup}", "training.report_to=[]",
                                               "training.logging_steps=1", "eval.source=none"])
        trainer = build_trainer(config, trainer_class=TimedTrainer)
        trainer.train()
        return trainer.records[warmup:]


def run_in_fresh_process(argv: list[str], variant: str) -> list[dict]:
    """This script's per-step records of one variant, run with ``--only`` in a new Python process."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "records.json"
        command = [sys.executable, __file__, *_without_json(argv), "--only", variant, "--json", str(out)]
        subprocess.run(command, check=True)
        return json.loads(out.read_text())


def _without_json(argv: list[str]) -> list[str]:
    """``argv`` without its ``--json PATH`` (the child writes its records elsewhere)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--json":
            skip = True
        elif not arg.startswith("--json="):
            kept.append(arg)
    return kept


def summarize(records: list[dict]) -> dict:
    keys = (*PHASES, "total_s", "tokens_per_s", "generated_tokens")
    return {key: statistics.median(record[key] for record in records) for key in keys}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides of the config")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--variants", default="none,oracle", help="relevance sources; 'none' is plain GRPO")
    parser.add_argument("--backends", default="transformers,static", help="rollout backends")
    parser.add_argument("--same-completions", action="store_true",
                        help="learning rate 0: every variant samples the same completions (see above)")
    parser.add_argument("--baseline", action="store_true",
                        help="compare TRL's default path with the config as given (see above)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", metavar="VARIANT",
                        help="run this one variant here and write its per-step records to --json (what each "
                             "fresh process of a full run does)")
    args = parser.parse_args(argv)
    overrides = [*args.overrides, *(["training.learning_rate=0.0"] if args.same_completions else [])]
    variants = variant_overrides(args)
    if args.only:
        records = run_variant(args.config, [*overrides, *variants[args.only]], args.steps, args.warmup)
        args.json.write_text(json.dumps(records) + "\n")
        return {"steps": records}

    results = {"config": args.config, "overrides": args.overrides, "same_completions": args.same_completions,
               "load_average": os.getloadavg()[0],
               "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else
               f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
               "variants": {}}
    for name in variants:
        records = run_in_fresh_process(argv if argv is not None else sys.argv[1:], name)
        results["variants"][name] = {"steps": records, "median": summarize(records)}

    medians = {name: variant["median"] for name, variant in results["variants"].items()}
    if args.baseline:
        return report_baseline(results, medians, args)
    results["rtt_over_grpo"] = {name: median["total_s"] / medians[f"{name.split('/')[0]}/none"]["total_s"]
                                for name, median in medians.items()
                                if not name.endswith("/none") and f"{name.split('/')[0]}/none" in medians}
    results["static_over_transformers_tokens_per_s"] = {
        relevance: medians[f"static/{relevance}"]["tokens_per_s"] / medians[f"transformers/{relevance}"]["tokens_per_s"]
        for relevance in args.variants.split(",") if f"static/{relevance}" in medians
        and f"transformers/{relevance}" in medians}

    print(f"\n{results['device']}; {args.config} {' '.join(args.overrides)}; median of {args.steps} steps after "
          f"{args.warmup} warm-up; load average at start {results['load_average']:.2f}")
    print_table(medians)
    for name, ratio in results["rtt_over_grpo"].items():
        added = sum(medians[name][phase] for phase in ("scoring_s", "relevance_s", "advantages_s"))
        grpo = f"{name.split('/')[0]}/none"
        same = ([r["generated_tokens"] for r in results["variants"][name]["steps"]]
                == [r["generated_tokens"] for r in results["variants"][grpo]["steps"]])
        print(f"RTT step / GRPO step ({name}): {ratio:.3f}x; RTT's own work (scoring, relevance, advantages) "
              f"{added:.3f} s = {added / medians[grpo]['total_s']:.1%} of the GRPO step; generated tokens per step "
              + ("identical" if same else "differ (the policies diverge after the first update; see "
                 "--same-completions)"))
    for relevance, ratio in results["static_over_transformers_tokens_per_s"].items():
        print(f"static / transformers generation tokens/s ({relevance}): {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


def print_table(medians: dict[str, dict]) -> None:
    print("| variant | tokens/s | generation | scoring | relevance | advantages | other prep | update | save "
          "| step |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, median in medians.items():
        print(f"| {name} | {median['tokens_per_s']:.0f} | " + " | ".join(f"{median[p]:.3f}" for p in PHASES)
              + f" | {median['total_s']:.2f} |")


def report_baseline(results: dict, medians: dict[str, dict], args: argparse.Namespace) -> dict:
    baseline, fast = medians["baseline"], medians["config"]
    results["speedup"] = baseline["total_s"] / fast["total_s"]
    results["generation_speedup_tokens_per_s"] = fast["tokens_per_s"] / baseline["tokens_per_s"]
    print(f"\n{results['device']}; {args.config} {' '.join(args.overrides)}; median of {args.steps} steps after "
          f"{args.warmup} warm-up; load average at start {results['load_average']:.2f}")
    print(f"baseline = the config with {' '.join(BASELINE)}; config = the config as given")
    print_table(medians)
    print(f"generation tokens/s: baseline {baseline['tokens_per_s']:.0f}, config {fast['tokens_per_s']:.0f} "
          f"({results['generation_speedup_tokens_per_s']:.2f}x)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"speedup {results['speedup']:.2f}x")
    return results


if __name__ == "__main__":
    main()
