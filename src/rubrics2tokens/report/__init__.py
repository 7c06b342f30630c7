"""`rtt report`: everything about one run or a study, rebuilt from run folders alone.

`write_report(DIR)` finds every run folder at or under DIR (see `rubrics2tokens.report.runs`) and writes
``DIR/report/``: ``report.txt`` (the terminal tables), ``report.json`` (the same numbers, the curves and the
heatmap choice), ``curves.png`` and ``families.png`` (learning curves) and ``report.html`` (one standalone
page with all of it and the token-credit heatmaps). `rtt study` calls it at the end; `rtt train` can too.
"""

from __future__ import annotations

import json
from pathlib import Path

from rubrics2tokens.report.runs import RunFolder, find_runs
from rubrics2tokens.report.table import build_table, format_table

REPORT_DIR = "report"
RUN_SETTINGS = ("relevance_source", "relevance_model", "token_partition", "reward_aggregation", "learning_rate",
                "max_steps")  # what tells a study's variants apart, in each run's record

__all__ = ["REPORT_DIR", "RunFolder", "find_runs", "write_report"]


def write_report(run_or_study_dir: str | Path, out: str | Path | None = None, baseline: str | None = None,
                 examples: int = 3) -> Path:
    """Write the report of every run under ``run_or_study_dir`` into ``out`` (default ``DIR/report``);
    return the HTML page's path. ``baseline``: the variant the Δ columns subtract (default: GRPO-CSR);
    ``examples``: how many held-out responses the heatmaps show."""
    from rubrics2tokens.report.curves import draw_curves  # matplotlib only when a report is written
    from rubrics2tokens.report.heatmaps import heatmaps_html
    from rubrics2tokens.report.page import render_page

    root = Path(run_or_study_dir)
    runs = find_runs(root)
    out = Path(out) if out is not None else root / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    table = build_table(runs, baseline)
    (out / "report.txt").write_text(format_table(table) + "\n", encoding="utf-8")
    images, curves = draw_curves(runs, out)
    heatmaps, shown = heatmaps_html(runs, examples)
    page = out / "report.html"
    page.write_text(render_page(root, table, images, heatmaps, len(runs)), encoding="utf-8")
    report = {"root": str(root), "runs": [{"path": str(run.path), "variant": run.variant, "seed": run.seed,
                                           **{key: run.setting(key) for key in RUN_SETTINGS},
                                           "heldout_steps": run.heldout_steps, "wall_s": run.wall_s}
                                          for run in runs],
              "table": table.to_json(), "curves": curves, "heatmaps": shown}
    (out / "report.json").write_text(json.dumps(report, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return page
