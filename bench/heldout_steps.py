"""Held-out metrics of every run of a study at every evaluation, as one Markdown table.

`rtt report` compares variants at their last common step with intervals; this prints each run's whole
trajectory (step 0, 10, 20, ...), read from the ``heldout/*`` rows of its metrics.jsonl:

    python bench/heldout_steps.py runs/study_collapse

Note: TRL computes ``heldout/entropy`` over its loss mask, so with ``mask_truncated_completions`` it covers the
responses that stopped on their own only (none when every response is truncated: then it reads 0).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = {"all-pass": "heldout/all_pass", "satisfaction": "heldout/satisfaction", "entropy": "heldout/entropy",
           "truncated": "heldout/truncated_frac", "length": "heldout/mean_length"}


def heldout_rows(metrics_file: Path) -> list[dict]:
    """The held-out evaluation rows of one run, by step (a resumed run's repeated step keeps its last row)."""
    by_step = {}
    for line in metrics_file.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if "heldout/satisfaction" in row:
            by_step[row["step"]] = row
    return [by_step[step] for step in sorted(by_step)]


def main(study_dir: str) -> None:
    families = None
    print("| run | step | " + " | ".join(COLUMNS) + " | pass per family |")
    print("|---|---:|" + "---:|" * len(COLUMNS) + "---|")
    for metrics_file in sorted(Path(study_dir).glob("*/seed*/metrics.jsonl")):
        run = f"{metrics_file.parent.parent.name}/{metrics_file.parent.name}"
        for row in heldout_rows(metrics_file):
            families = sorted(key for key in row if key.startswith("heldout/pass/"))
            cells = [f"{row[key]:.2f}" if key != "heldout/mean_length" else f"{row[key]:.0f}" for key in COLUMNS.values()]
            per_family = " ".join(f"{key.rsplit('/', 1)[-1]} {row[key]:.2f}" for key in families)
            print(f"| {run} | {row['step']} | " + " | ".join(cells) + f" | {per_family} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/study_collapse")
