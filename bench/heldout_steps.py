"""Held-out metrics of every run of a study at every evaluation, as one Markdown table.

`rtt report` compares variants at their last common step with intervals; this prints each run's whole
trajectory (step 0, 10, 20, ...), read from the ``heldout/*`` rows of its metrics.jsonl:

    python bench/heldout_steps.py runs/study_collapse

Note: TRL computes ``heldout/entropy`` over its loss mask, so with ``mask_truncated_completions`` it covers the
responses that stopped on their own only (none when every response is truncated: then it reads 0).
"""

from __future__ import annotations

import sys

from rubrics2tokens.report.curves import CURVE_METRICS, FAMILY_PREFIX, heldout_curve_keys
from rubrics2tokens.report.runs import find_runs


def main(study_dir: str) -> None:
    runs = find_runs(study_dir)
    columns = heldout_curve_keys(runs)
    names = [CURVE_METRICS.get(key, key.removeprefix(FAMILY_PREFIX)) for key in columns]
    print("| run | step | " + " | ".join(names) + " |")
    print("|---|---:|" + "---:|" * len(columns))
    for run in runs:
        by_step = {key: dict(zip(*run.series(key))) for key in columns}  # a repeated step keeps its last value
        for step in sorted(by_step["heldout/satisfaction"]):
            cells = [("-" if (value := by_step[key].get(step)) is None
                      else f"{value:.0f}" if key == "heldout/mean_length" else f"{value:.2f}") for key in columns]
            print(f"| {run.label} | {step} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/study_collapse")
