"""Held-out metrics of response rows, and their 95% intervals over seeds and prompts.

A variant's value of a metric is the mean over its cells (seed, prompt), each cell the mean over that
prompt's sampled responses. Its 95% interval is a two-way bootstrap: seeds and prompts are resampled
with replacement (the same prompt draw for every variant compared, since all variants answer the same
held-out prompts), and the interval is the 2.5 and 97.5 percentiles of the resampled means. With one
seed the interval covers prompt sampling only. A difference between two variants is bootstrapped the
same way, prompts paired.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rubrics2tokens.data.synthetic import QUALITY_FAMILIES
from rubrics2tokens.verifiers.registry import TESTBED_PREFIX

RESAMPLES = 2000
CORE_METRICS = ("all_pass", "satisfaction", "length", "truncated", "entropy")


@dataclass(frozen=True)
class Estimate:
    mean: float
    lo: float
    hi: float
    n: int  # (seed, prompt) cells with a value (runs, for per-run values)

    def to_json(self) -> dict[str, Any]:
        return {key: (None if isinstance(value, float) and math.isnan(value) else value)
                for key, value in asdict(self).items()}

    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0


def _number(value: Any) -> float:
    """A number or a bool (truncated) as a float; None or anything else is NaN (unknown)."""
    return float(value) if isinstance(value, (bool, int, float)) else math.nan


def response_values(row: dict[str, Any]) -> dict[str, float]:
    """Metric -> value for one held-out response row (NaN where unknown); per-family pass is the mean of
    the row's known verdicts of that family, keyed ``pass/<family>``; ``constraints``, in a row that has testbed
    quality rubrics, is the mean over the others (what the instructions asked, without the answer's quality)."""
    values = {"all_pass": _number(row.get("all_pass")), "satisfaction": _number(row.get("satisfaction")),
              "length": _number(row.get("length")), "truncated": _number(row.get("truncated")),
              "entropy": _number(row.get("entropy"))}
    by_family: dict[str, list[float]] = {}
    for family, verdict in zip(row.get("families", []), row.get("verdicts", [])):
        if verdict is not None:
            by_family.setdefault(family, []).append(float(verdict))
    values.update({f"pass/{family}": float(np.mean(verdicts)) for family, verdicts in by_family.items()})
    if any(_is_quality(family) for family in row.get("families", [])):
        asked = [verdict for family, verdicts in by_family.items() if not _is_quality(family) for verdict in verdicts]
        values["constraints"] = float(np.mean(asked)) if asked else math.nan
    return values


def _is_quality(family: str) -> bool:
    """A testbed quality rubric (``testbed:distinct_words``): one that checks the answer, not an instruction's form."""
    return family.startswith(TESTBED_PREFIX) and family.removeprefix(TESTBED_PREFIX) in QUALITY_FAMILIES


def prompt_means(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Metric -> prompt id -> the mean of the metric over that prompt's responses among ``rows`` (one run's
    cells at one evaluation), for every (metric, prompt) with a known value."""
    sums: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        if "prompt_id" not in row:
            continue
        for metric, value in response_values(row).items():
            if not math.isnan(value):
                total = sums.setdefault(metric, {}).setdefault(row["prompt_id"], [0.0, 0])
                total[0] += value
                total[1] += 1
    return {metric: {prompt: total / count for prompt, (total, count) in by_prompt.items()}
            for metric, by_prompt in sums.items()}


def means_matrix(runs_means: list[dict[str, dict[str, float]]], prompts: list[str], metric: str) -> np.ndarray:
    """[runs, prompts]: each run's `prompt_means` of ``metric`` in ``prompts`` order (NaN: no response)."""
    return np.array([[means.get(metric, {}).get(prompt, math.nan) for prompt in prompts] for means in runs_means],
                    dtype=float).reshape(len(runs_means), len(prompts))


def cell_matrix(runs_rows: list[list[dict[str, Any]]], prompts: list[str], metric: str) -> np.ndarray:
    """[runs, prompts]: the mean of ``metric`` over each run's responses to each prompt (NaN: none)."""
    return means_matrix([prompt_means(rows) for rows in runs_rows], prompts, metric)


def means_of(by_metric: dict[str, dict[str, float]]) -> dict[str, float]:
    """Metric -> one run's value at one evaluation: the mean over prompts of its `prompt_means` (a row of
    `cell_matrix`, averaged)."""
    return {metric: float(np.mean(list(by_prompt.values()))) for metric, by_prompt in sorted(by_metric.items())}


def _nanmean(values: np.ndarray, axis: Any = None) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN resample is NaN, dropped below
        return np.nanmean(values, axis=axis)


def resampled_means(matrices: list[np.ndarray], seed: int = 0) -> np.ndarray:
    """[len(matrices), RESAMPLES]: bootstrap means of each [runs, prompts] matrix; prompts drawn once for
    all matrices (paired), runs drawn per matrix."""
    prompts = matrices[0].shape[1]
    rng = np.random.default_rng(seed)
    prompt_draw = rng.integers(0, prompts, size=(RESAMPLES, prompts))
    means = []
    for matrix in matrices:
        run_draw = rng.integers(0, matrix.shape[0], size=(RESAMPLES, matrix.shape[0]))
        means.append(_nanmean(matrix[run_draw[:, :, None], prompt_draw[:, None, :]], axis=(1, 2)))
    return np.stack(means)


def _interval(samples: np.ndarray) -> tuple[float, float]:
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return math.nan, math.nan
    return float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))


def estimate(matrix: np.ndarray) -> Estimate:
    """Mean of a [runs, prompts] matrix with its two-way bootstrap 95% interval."""
    n = int(np.sum(~np.isnan(matrix)))
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    lo, hi = _interval(resampled_means([matrix])[0])
    return Estimate(float(_nanmean(matrix)), lo, hi, n)


def difference(matrix: np.ndarray, baseline: np.ndarray) -> Estimate:
    """Mean of ``matrix`` minus mean of ``baseline`` (same prompt columns), with its paired 95% interval."""
    n = int(min(np.sum(~np.isnan(matrix)), np.sum(~np.isnan(baseline))))
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    means = resampled_means([matrix, baseline])
    lo, hi = _interval(means[0] - means[1])
    return Estimate(float(_nanmean(matrix) - _nanmean(baseline)), lo, hi, n)


def over_runs(values: list[float]) -> Estimate:
    """Mean of per-run values (step time, wall time) with a bootstrap 95% interval over the runs; one run has
    no interval (resampling one value would print it as certain)."""
    finite = np.array([value for value in values if value is not None and not math.isnan(value)], dtype=float)
    if finite.size < 2:
        return Estimate(float(finite[0]) if finite.size else math.nan, math.nan, math.nan, int(finite.size))
    return estimate(finite[:, None])
