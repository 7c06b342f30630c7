"""The report's table: each variant's held-out metrics at its final evaluation, its gap to a baseline
variant, and its cost (median step time, as `rtt train` prints it, RTT's share of the step time, and wall
time), as data and as terminal text."""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass, field
from typing import Any

from rubrics2tokens.report.collapse import run_degeneration
from rubrics2tokens.report.runs import RunFolder, group_by_variant
from rubrics2tokens.report.stats import (CORE_METRICS, Estimate, cell_matrix, difference, estimate, over_runs,
                                         response_values)

RTT_TIME_KEYS = tuple(f"rtt/time/{phase}_s" for phase in ("scoring", "relevance", "advantages"))
DELTA_METRICS = ("all_pass", "satisfaction")
CONSTRAINTS = "constraints"  # satisfaction without the quality rubrics (stats.response_values)
BEFORE = "before training"  # the row of every run's first evaluation (the base policy)
LABELS = {"all_pass": "all-pass", "satisfaction": "satisfaction", "length": "length (tokens)",
          "truncated": "truncated", "entropy": "entropy", CONSTRAINTS: "constraints"}


@dataclass
class VariantRow:
    name: str
    runs: list[RunFolder]
    steps: list[int]  # the held-out step compared, per run
    metrics: dict[str, Estimate]
    delta: dict[str, Estimate] = field(default_factory=dict)  # minus the baseline variant
    gain: dict[str, Estimate] = field(default_factory=dict)  # minus the base model (the "before training" row)
    degenerate: dict[str, dict[int, list[str]]] = field(default_factory=dict)  # run label -> step -> criteria met
    median_step_time_s: Estimate | None = None  # each run's median, over runs
    rtt_share: float | None = None  # of the summed step time
    wall_s: Estimate | None = None

    def to_json(self) -> dict[str, Any]:
        return {"variant": self.name, "runs": [str(run.path) for run in self.runs],
                "seeds": [run.seed for run in self.runs], "heldout_steps": self.steps,
                "metrics": {key: value.to_json() for key, value in self.metrics.items()},
                "minus_baseline": {key: value.to_json() for key, value in self.delta.items()},
                "minus_before_training": {key: value.to_json() for key, value in self.gain.items()},
                "degenerate_runs": self.degenerate,
                "median_step_time_s": self.median_step_time_s.to_json() if self.median_step_time_s else None,
                "rtt_time_share": self.rtt_share, "wall_s": self.wall_s.to_json() if self.wall_s else None}


@dataclass
class Table:
    rows: list[VariantRow]
    metrics: list[str]  # CORE_METRICS, then pass/<family>
    baseline: str | None

    def to_json(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "metrics": self.metrics, "rows": [row.to_json() for row in self.rows]}


def _final_steps(runs: list[RunFolder]) -> dict[str, int]:
    """The evaluation step each run is compared at: the last step every run evaluated (equal steps), or,
    when the runs share no step past their first, each run's own last step."""
    evaluated = [set(run.heldout_steps) for run in runs if run.heldout_steps]
    common = set.intersection(*evaluated) if evaluated else set()
    first = min((min(steps) for steps in evaluated), default=0)
    shared_last = max(common, default=None)
    return {str(run.path): (shared_last if shared_last is not None and shared_last > first else run.heldout_steps[-1])
            for run in runs if run.heldout_steps}


def _timing(run: RunFolder) -> tuple[float, float, float]:
    """(median step time, summed step time, summed RTT time) over the run's training log records. The median,
    as `rtt train`'s summary prints it: a first step that warms up or compiles drags the mean far above it."""
    timed = [record for record in run.records if isinstance(record.get("step_time"), (int, float))]
    total = sum(record["step_time"] for record in timed)
    rtt = sum(record.get(key, 0.0) for record in timed for key in RTT_TIME_KEYS)
    return (statistics.median(record["step_time"] for record in timed) if timed else math.nan), total, rtt


def default_baseline(groups: dict[str, list[RunFolder]]) -> str | None:
    """The GRPO-CSR variant when there is one (the paper's strongest baseline), else the first GRPO one."""
    grpo = [name for name, runs in groups.items() if all(run.is_grpo for run in runs)]
    csr = [name for name in grpo if all(run.setting("reward_aggregation") == "csr" for run in groups[name])]
    return (csr or grpo or [None])[0]


def build_table(runs: list[RunFolder], baseline: str | None = None) -> Table:
    groups = group_by_variant(runs)
    if baseline is not None and baseline not in groups:
        raise ValueError(f"baseline variant {baseline!r} is not among the runs: {', '.join(groups)}")
    baseline = baseline or default_baseline(groups)
    final = _final_steps(runs)
    rows_at = {str(run.path): run.heldout_rows(final[str(run.path)]) for run in runs if str(run.path) in final}
    first_rows = {str(run.path): run.heldout_rows(run.heldout_steps[0]) for run in runs if run.heldout_steps}
    prompts = sorted({row["prompt_id"] for rows in [*rows_at.values(), *first_rows.values()] for row in rows})
    families = sorted({key for rows in rows_at.values() for row in rows for key in _family_keys(row)})
    constraints = [CONSTRAINTS] if any(CONSTRAINTS in response_values(row) for rows in rows_at.values()
                                       for row in rows) else []
    metrics = [*CORE_METRICS, *constraints, *families]
    deltas = delta_metrics(metrics)

    def matrix(group: list[RunFolder], metric: str, source: dict[str, list]) -> Any:
        return cell_matrix([source[str(run.path)] for run in group if str(run.path) in source], prompts, metric)

    # Every run's first evaluation is the same base model on the same prompts, so the base model is one run
    # whose cells pool all those responses: as one run per evaluation, the copies of it would narrow its interval.
    base_model = {metric: cell_matrix([[row for rows in first_rows.values() for row in rows]], prompts, metric)
                  for metric in metrics}

    def own_base(group: list[RunFolder], metric: str) -> Any:
        # a variant's gain is over its own runs' first evaluations: the same base model, but a folder may hold
        # variants that ask different prompts (a pilot round that adds a quality rubric), whose bases differ
        return cell_matrix([[row for run in group for row in first_rows.get(str(run.path), [])]], prompts, metric)

    table_rows = [VariantRow(BEFORE, runs, [run.heldout_steps[0] for run in runs if run.heldout_steps],
                             {metric: estimate(base_model[metric]) for metric in metrics})]
    for name, group in groups.items():
        timings = [_timing(run) for run in group]
        total_step_time = sum(timing[1] for timing in timings)
        row = VariantRow(name, group, [final[str(run.path)] for run in group if str(run.path) in final],
                         {metric: estimate(matrix(group, metric, rows_at)) for metric in metrics},
                         median_step_time_s=over_runs([timing[0] for timing in timings]),
                         rtt_share=sum(timing[2] for timing in timings) / total_step_time if total_step_time else None,
                         wall_s=over_runs([run.wall_s for run in group if run.wall_s is not None]),
                         gain={metric: difference(matrix(group, metric, rows_at), own_base(group, metric))
                               for metric in deltas},
                         degenerate={run.label: found for run in group if (found := run_degeneration(run))})
        if baseline and name != baseline:
            row.delta = {metric: difference(matrix(group, metric, rows_at), matrix(groups[baseline], metric, rows_at))
                         for metric in deltas}
        table_rows.append(row)
    return Table(table_rows, metrics, baseline)


def delta_metrics(metrics: list[str]) -> list[str]:
    """The metrics a variant is compared on (against the baseline and the base model), of the table's ``metrics``."""
    return [metric for metric in (*DELTA_METRICS, CONSTRAINTS) if metric in metrics]


def _family_keys(row: dict[str, Any]) -> list[str]:
    return [f"pass/{family}" for family in row.get("families", [])]


# ---------------------------------------------------------------- text


def fmt(value: Estimate | None, digits: int = 2, signed: bool = False) -> str:
    if value is None or math.isnan(value.mean):
        return "-"
    sign = "+" if signed else ""
    if math.isnan(value.lo):
        return f"{value.mean:{sign}.{digits}f}"
    return f"{value.mean:{sign}.{digits}f} [{value.lo:{sign}.{digits}f},{value.hi:{sign}.{digits}f}]"


def label(metric: str) -> str:
    return LABELS.get(metric, metric.removeprefix("pass/"))


def steps_text(steps: list[int]) -> str:
    return "-" if not steps else str(steps[0]) if min(steps) == max(steps) else f"{min(steps)}-{max(steps)}"


def text_grid(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    lines = [header, ["-" * width for width in widths], *rows]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


def table_sections(table: Table) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of the three tables: outcome, health and cost, pass rate per family."""
    deltas = delta_metrics(table.metrics)
    delta_header = [f"Δ {label(metric)} vs {table.baseline}" for metric in deltas] if table.baseline else []
    outcome = [[row.name, str(len(row.runs)), steps_text(row.steps),
                *(fmt(row.metrics[metric]) for metric in deltas),
                fmt(row.gain.get("satisfaction"), signed=True),
                *([fmt(row.delta.get(metric), signed=True) for metric in deltas] if table.baseline else []),
                "-" if row.name == BEFORE else f"{len(row.degenerate)}/{len(row.runs)}"]
               for row in table.rows]
    health = [[row.name, fmt(row.metrics["length"], 1), fmt(row.metrics["truncated"]), fmt(row.metrics["entropy"]),
               fmt(row.median_step_time_s, 1), "-" if row.rtt_share is None else f"{row.rtt_share:.1%}",
               fmt(row.wall_s, 0)]
              for row in table.rows]
    families = [metric for metric in table.metrics if metric.startswith("pass/")]
    per_family = [[row.name, *(fmt(row.metrics[metric]) for metric in families)] for row in table.rows]
    names = [label(metric) for metric in families]
    prefix = os.path.commonprefix(names).rpartition(":")[0]  # "testbed" when every family is a testbed rule
    return [
        ("held-out outcome (mean [95% interval] over seeds x prompts)",
         ["variant", "runs", "step", *(label(metric) for metric in deltas), "Δ satisfaction vs before training",
          *delta_header, "degenerate runs"], outcome),
        ("held-out health and cost",
         ["variant", "length (tokens)", "truncated", "entropy", "median step time (s)", "RTT share",
          "wall time/run (s)"],
         health),
        (f"held-out pass rate per rubric family{f' ({prefix}:*)' if prefix else ''}",
         ["variant", *(name.removeprefix(f"{prefix}:") if prefix else name for name in names)], per_family),
    ]


def format_table(table: Table) -> str:
    text = "\n\n".join(f"{title}\n{text_grid(header, rows)}" for title, header, rows in table_sections(table))
    found = [f"  {run} at step {step}: {'; '.join(reasons)}" for row in table.rows
             for run, steps in row.degenerate.items() for step, reasons in steps.items()]
    if found:
        text += "\n\ndegenerate runs (the collapse criterion: rubrics2tokens/report/collapse.py)\n" + "\n".join(found)
    return text
