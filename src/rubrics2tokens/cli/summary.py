"""The end-of-run summary of `rtt train`: where the outputs are, and held-out before -> after.

Held-out numbers come from the first and last ``heldout/step_<N>.jsonl`` of the run: the mean over
prompts of each prompt's mean over its sampled responses, with a 95% bootstrap interval over prompts
(`rubrics2tokens.report.stats`), and the change with its paired interval. A change whose interval holds
0 is reported as no change beyond the interval: 10 CPU steps rarely move anything, and a summary must
not read noise as a gain.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from rubrics2tokens.builder import METRICS_FILE
from rubrics2tokens.data.schema import read_jsonl
from rubrics2tokens.report.stats import Estimate, cell_matrix, difference, estimate
from rubrics2tokens.trainer.heldout import HELDOUT_DIR

HELDOUT_METRICS = (("all_pass", "all-pass", 3), ("satisfaction", "satisfaction", 3), ("entropy", "entropy", 3),
                   ("length", "mean length", 1), ("truncated", "truncated", 3))
RTT_PHASES = ("scoring", "relevance", "advantages")  # logged as rtt/time/<phase>_s


def heldout_files(output_dir: Path) -> list[Path]:
    return sorted((output_dir / HELDOUT_DIR).glob("step_*.jsonl"))


def _rows(path: Path) -> list[dict]:
    return [record for _, record in read_jsonl(path)]


def _fmt(value: Estimate, digits: int, signed: bool = False) -> str:
    sign = "+" if signed else ""
    return f"{value.mean:{sign}.{digits}f} [{value.lo:{sign}.{digits}f}, {value.hi:{sign}.{digits}f}]"


def heldout_lines(output_dir: Path) -> list[str]:
    """The held-out table: first evaluation -> last, each with its 95% interval over prompts."""
    files = heldout_files(output_dir)
    if not files:
        return ["  held-out: no evaluation was run (eval.source: none)"]
    first, last = _rows(files[0]), _rows(files[-1])
    prompts = sorted({row["prompt_id"] for row in first} | {row["prompt_id"] for row in last})
    first_step, last_step = first[0]["step"], last[0]["step"]
    samples = round(len(first) / max(len(prompts), 1))
    lines = [f"  held-out: {len(prompts)} prompts never trained on, {samples} samples each; "
             f"mean [95% interval over prompts]",
             f"    {'':<13} {'step ' + str(first_step):<24} {'step ' + str(last_step):<24} change"]
    beyond = []
    for metric, name, digits in HELDOUT_METRICS:
        before, after = cell_matrix([first], prompts, metric), cell_matrix([last], prompts, metric)
        start, end, change = estimate(before), estimate(after), difference(after, before)
        if start.n == 0:
            continue
        lines.append(f"    {name:<13} {_fmt(start, digits):<24} {_fmt(end, digits):<24} {_fmt(change, digits, True)}")
        if change.excludes_zero():
            beyond.append(f"{name} {'rose' if change.mean > 0 else 'fell'}")
    if len(files) == 1:
        lines.append("    (one evaluation only: nothing to compare)")
    elif beyond:
        lines.append(f"    beyond the 95% interval: {', '.join(beyond)}")
    else:
        lines.append("    no held-out change is beyond its 95% interval")
    return lines


def timing_lines(records: list[dict]) -> list[str]:
    step_times = [record["step_time"] for record in records if "step_time" in record]
    if not step_times:
        return []
    total = sum(step_times)
    shares = ", ".join(f"{phase} {sum(r.get(f'rtt/time/{phase}_s', 0.0) for r in records) / total:.2%}"
                       for phase in RTT_PHASES)
    return [f"  step time: median {statistics.median(step_times):.2f} s over {len(step_times)} steps; "
            f"RTT's share: {shares}"]


def print_summary(output_dir: Path, final_dir: Path) -> None:
    metrics_path = output_dir / METRICS_FILE
    records = [record for _, record in read_jsonl(metrics_path)] if metrics_path.is_file() else []
    print(f"\nOutputs in {output_dir}/")
    print(f"  final model:  {final_dir}")
    print(f"  metrics:      {metrics_path}  (one JSON record per logged step)")
    print(f"  held-out:     {output_dir / HELDOUT_DIR}/step_<N>.jsonl  (one record per held-out response)")
    print(f"  tensorboard:  tensorboard --logdir {output_dir}")
    print("\n".join([*heldout_lines(output_dir), *timing_lines(records)]))
