"""Learning curves: held-out metrics against training steps, one line per variant and a band of its 95%
interval, drawn with matplotlib into PNG files. At each step the value and its interval are the table's
(`stats.estimate` of the variant's (seed, prompt) cells, from its held-out records), so a curve and the
table agree, and a move inside the band is not read as a change. Rates (all-pass, satisfaction, truncated
fraction, pass rates) are drawn on 0..1: on an axis fitted to two close points, noise looks steep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display needed

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from rubrics2tokens.report.runs import RunFolder, group_by_variant  # noqa: E402
from rubrics2tokens.report.stats import estimate, means_matrix  # noqa: E402

CURVE_METRICS = {"all_pass": "all-pass", "satisfaction": "satisfaction", "length": "mean length (tokens)",
                 "truncated": "truncated fraction", "entropy": "entropy"}
FAMILY_PREFIX = "pass/"
RATES = ("all_pass", "satisfaction", "truncated")  # and every pass/<family>: fractions, drawn on 0..1
LINE_STYLES = ("-", "--", "-.", ":")
DPI = 80  # small files: the PNGs are committed next to the study's write-up


def variant_curves(runs: list[RunFolder], key: str) -> dict[str, dict[str, list[float]]]:
    """Variant -> {"step", "mean", "lo", "hi"}: at every step one of its runs has ``key`` in its held-out
    records, the mean and 95% interval over the (seed, prompt) cells of the runs that have."""
    curves = {}
    for name, group in group_by_variant(runs).items():
        by_step: dict[int, list[dict[str, float]]] = {}  # step -> per run: prompt -> value
        for run in group:
            for step, by_metric in run.heldout_prompt_means.items():
                if key in by_metric:
                    by_step.setdefault(step, []).append(by_metric)
        if by_step:
            estimates = [estimate(means_matrix(cells, sorted({p for c in cells for p in c[key]}), key))
                         for cells in (by_step[step] for step in sorted(by_step))]
            curves[name] = {"step": sorted(by_step), "mean": [e.mean for e in estimates],
                            "lo": [e.lo for e in estimates], "hi": [e.hi for e in estimates]}
    return curves


def y_limits(key: str) -> tuple[float, float] | None:
    """(0, 1) for a rate; None (fitted to the values) for a length or an entropy."""
    return (0.0, 1.0) if key in RATES or key.startswith(FAMILY_PREFIX) else None


def draw_panel(axis: Any, key: str, curves: dict[str, dict[str, list[float]]], colours: dict[str, Any]) -> None:
    """One metric's panel: a line per variant and the band of its 95% interval."""
    for name, curve in curves.items():
        # clip_on off: a rate at exactly 0 or 1 sits on the frame and stays whole
        axis.plot(curve["step"], curve["mean"], marker="o", markersize=3, label=name, color=colours[name],
                  linestyle=_line_style(colours, name), clip_on=False)
        axis.fill_between(curve["step"], curve["lo"], curve["hi"], alpha=0.18, color=colours[name], linewidth=0)
    if (limits := y_limits(key)) is not None:
        axis.set_ylim(*limits)
    axis.set_title(title(key), fontsize=10)
    axis.set_xlabel("training step", fontsize=8)
    axis.tick_params(labelsize=8)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)


def title(key: str) -> str:
    return CURVE_METRICS.get(key, "pass: " + key.removeprefix(FAMILY_PREFIX))


def _line_style(colours: dict[str, Any], name: str) -> str:
    """Styles cycle with the colours, so variants with equal values stay visible on top of each other."""
    return LINE_STYLES[list(colours).index(name) % len(LINE_STYLES)]


def _figure(panels: dict[str, dict[str, dict[str, list[float]]]], colours: dict[str, Any], path: Path) -> Path:
    """One PNG with a panel per metric (key -> its curves) and the legend in the first free cell of the grid,
    or below the grid when the panels fill it (a row of its own would be mostly empty)."""
    columns = 3
    rows = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False)
    flat = list(axes.flat)
    for axis, (key, curves) in zip(flat, panels.items()):
        draw_panel(axis, key, curves, colours)
    for axis in flat[len(panels):]:
        axis.axis("off")
    handles = [plt.Line2D([], [], color=colours[name], marker="o", markersize=3, linestyle=_line_style(colours, name))
               for name in colours]
    legend = {"handles": handles, "labels": list(colours), "fontsize": 9, "frameon": False, "title_fontsize": 8,
              "title": "variant (line: mean over seeds x prompts;\nband: its 95% interval, as in the tables)"}
    figure.tight_layout()
    if len(panels) < len(flat):
        flat[len(panels)].legend(loc="center", **legend)
    else:
        figure.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(colours), 4), **legend)
    figure.savefig(path, dpi=DPI, bbox_inches="tight")  # "tight" takes in a legend below the grid
    plt.close(figure)
    return path


def heldout_curve_keys(runs: list[RunFolder]) -> list[str]:
    """The core held-out metrics, then every ``pass/<family>`` in any run's held-out records (sorted)."""
    return [*CURVE_METRICS, *sorted({key for run in runs for means in run.heldout_means.values() for key in means
                                     if key.startswith(FAMILY_PREFIX)})]


def draw_curves(runs: list[RunFolder], out: Path) -> tuple[list[Path], dict[str, Any]]:
    """Write ``curves.png`` (core held-out metrics) and ``families.png`` (pass rate per rubric family) into
    ``out``; return the files written and the curve data (metric -> variant -> series) for report.json."""
    data = {key: curves for key in heldout_curve_keys(runs) if (curves := variant_curves(runs, key))}
    names = list(group_by_variant(runs))
    palette = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    colours = {name: palette(i % palette.N) for i, name in enumerate(names)}
    files = []
    for filename, selected in (("curves.png", [key for key in CURVE_METRICS if key in data]),
                               ("families.png", [key for key in data if key.startswith(FAMILY_PREFIX)])):
        if selected:
            files.append(_figure({key: data[key] for key in selected}, colours, out / filename))
    return files, data
