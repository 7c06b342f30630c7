"""Where the policy update's time goes: torch's profiler around one update of a real training step.

    python bench/update_profile.py configs/demo.yaml model.dtype=bfloat16
    python bench/update_profile.py configs/demo.yaml training.logprob_head=fused --step 3

Trains the config (no held-out evaluation, no checkpoints) for --step steps; at that step the update's
forward and backward (TRL's `compute_loss`, then `backward`) run once more under the profiler, and the
operators with the most time of their own are printed, with the total. The step itself then proceeds as usual.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from torch.profiler import profile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rubrics2tokens.builder import build_trainer  # noqa: E402
from rubrics2tokens.config import load_run_config  # noqa: E402
from rubrics2tokens.trainer import RTTGRPOTrainer  # noqa: E402


def profiling_trainer(step: int, rows: int) -> type[RTTGRPOTrainer]:
    class ProfiledTrainer(RTTGRPOTrainer):
        """Profiles one extra forward + backward of the update at ``step`` (bench instrumentation only)."""

        def compute_loss(self, model, inputs, *args, **kwargs):
            if self.state.global_step + 1 == step and not getattr(self, "_profiled", False):
                self._profiled = True
                with profile() as profiler:
                    start = time.perf_counter()
                    super().compute_loss(model, inputs, *args, **kwargs).backward()
                    seconds = time.perf_counter() - start
                model.zero_grad()
                shape = tuple(inputs["prompt_ids"].shape), tuple(inputs["completion_ids"].shape)
                print(f"\nupdate forward + backward at step {step}: {seconds:.2f} s (prompt ids {shape[0]}, "
                      f"completion ids {shape[1]}; load average at start {os.getloadavg()[0]:.2f})")
                print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))
            return super().compute_loss(model, inputs, *args, **kwargs)

    return ProfiledTrainer


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides of the config")
    parser.add_argument("--step", type=int, default=3, help="the step whose update is profiled (after warm-up)")
    parser.add_argument("--rows", type=int, default=20, help="operators printed")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as output:
        config = load_run_config(args.config, [*args.overrides, f"training.output_dir={output}",
                                               f"training.max_steps={args.step}", "training.report_to=[]",
                                               "eval.source=none", "training.save_strategy='no'"])
        build_trainer(config, trainer_class=profiling_trainer(args.step, args.rows)).train()


if __name__ == "__main__":
    main()
