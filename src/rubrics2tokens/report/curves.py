"""Learning curves: held-out metrics against training steps, one line per variant (the mean over its
seeds) and a band from the lowest to the highest seed, drawn with matplotlib into PNG files. A run's value
at a step is computed from its held-out records as the table's is (`RunFolder.heldout_means`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from rubrics2tokens.report.runs import RunFolder, group_by_variant  # noqa: E402

CURVE_METRICS = {"all_pass": "all-pass", "satisfaction": "satisfaction", "length": "mean length (tokens)",
                 "truncated": "truncated fraction", "entropy": "entropy"}
FAMILY_PREFIX = "pass/"
LINE_STYLES = ("-", "--", "-.", ":")
DPI = 80  # small files: the PNGs are committed next to the study's write-up


def variant_curves(runs: list[RunFolder], key: str) -> dict[str, dict[str, list[float]]]:
    """Variant -> {"step", "mean", "low", "high"}: at every step one of its runs has ``key`` in its held-out
    records, the mean, lowest and highest value over the runs that have."""
    curves = {}
    for name, group in group_by_variant(runs).items():
        by_step: dict[int, list[float]] = {}
        for run in group:
            for step, value in zip(*run.heldout_series(key)):
                by_step.setdefault(step, []).append(value)
        if by_step:
            steps = sorted(by_step)
            curves[name] = {"step": steps, "mean": [float(np.mean(by_step[s])) for s in steps],
                            "low": [min(by_step[s]) for s in steps], "high": [max(by_step[s]) for s in steps]}
    return curves


def _draw(axis: Any, curves: dict[str, dict[str, list[float]]], title: str, colours: dict[str, Any]) -> None:
    for name, curve in curves.items():
        axis.plot(curve["step"], curve["mean"], marker="o", markersize=3, label=name, color=colours[name],
                  linestyle=_line_style(colours, name))
        if curve["low"] != curve["high"]:
            axis.fill_between(curve["step"], curve["low"], curve["high"], alpha=0.18, color=colours[name], linewidth=0)
    axis.set_title(title, fontsize=10)
    axis.set_xlabel("training step", fontsize=8)
    axis.tick_params(labelsize=8)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)


def _line_style(colours: dict[str, Any], name: str) -> str:
    """Styles cycle with the colours, so variants with equal values stay visible on top of each other."""
    return LINE_STYLES[list(colours).index(name) % len(LINE_STYLES)]


def _figure(panels: dict[str, dict[str, dict[str, list[float]]]], colours: dict[str, Any], path: Path) -> Path:
    """One PNG with a panel per metric and the legend in a panel of its own."""
    columns = 3
    rows = (len(panels) + 1 + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False)
    flat = list(axes.flat)
    for axis, (title, curves) in zip(flat, panels.items()):
        _draw(axis, curves, title, colours)
    legend_axis = flat[len(panels)]
    legend_axis.axis("off")
    handles = [plt.Line2D([], [], color=colours[name], marker="o", markersize=3, linestyle=_line_style(colours, name))
               for name in colours]
    legend_axis.legend(handles, list(colours), loc="center", fontsize=9, frameon=False,
                       title="variant (line: mean over seeds;\nband: lowest to highest seed)", title_fontsize=8)
    for axis in flat[len(panels) + 1:]:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
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
            titles = {key: CURVE_METRICS.get(key, "pass: " + key.removeprefix(FAMILY_PREFIX)) for key in selected}
            files.append(_figure({titles[key]: data[key] for key in selected}, colours, out / filename))
    return files, data
