"""Held-out metrics of every run of a study at every evaluation, as one Markdown table.

`rtt report` compares variants at their last common step with intervals; this prints each run's whole
trajectory (step 0, 10, 20, ...), computed from its held-out response records as the report's table and
curves are (`RunFolder.heldout_means`):

    python bench/heldout_steps.py runs/study_testbed
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
        for step, means in run.heldout_means.items():
            cells = [("-" if (value := means.get(key)) is None
                      else f"{value:.0f}" if key == "length" else f"{value:.2f}") for key in columns]
            print(f"| {run.label} | {step} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/study_testbed")
