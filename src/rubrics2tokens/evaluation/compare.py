"""Paired comparison of benchmark scores: is one policy's accuracy above another's beyond sampling noise?

Two ``rtt eval`` output folders answered the same prompts; each accuracy is a ratio over prompts (prompt-level:
prompts whose instructions all pass over prompts; instruction-level: passing instructions over instructions),
so its difference gets a paired bootstrap 95% interval: prompts are drawn with replacement, the same draw for
both folders, and the ratio recomputed. On 541 IFEval prompts one response each, a gap of two points is
often inside that interval.

Besides the four accuracies: ``length_free_instruction_strict``, the instruction-level strict accuracy over the
instructions a response's length cannot pass or fail by itself (`evaluation.length`), and the strict pass rate of
each instruction id, so a transfer gain can be read apart from a change of answer length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rubrics2tokens.data.schema import DataError, read_jsonl
from rubrics2tokens.evaluation.length import is_length_free
from rubrics2tokens.evaluation.scoring import prompt_scores

RESAMPLES = 10_000
METRICS = ("prompt_level_strict", "prompt_level_loose", "instruction_level_strict", "instruction_level_loose")
LENGTH_FREE = "length_free_instruction_strict"
COMPARED = (*METRICS, LENGTH_FREE)  # NaN for a benchmark with no length-free instruction


@dataclass(frozen=True)
class PromptScores:
    """One folder's scores per prompt: ``passed[metric]`` and ``counted[metric]``, each ``(P,)`` over ``keys``;
    the accuracy is ``passed.sum() / counted.sum()`` (a prompt's responses are averaged first).
    ``instructions``: instruction id -> (strict passes, verdicts) over every response."""

    keys: tuple[str, ...]
    passed: dict[str, np.ndarray]
    counted: dict[str, np.ndarray]
    instructions: dict[str, tuple[int, int]]


def read_prompt_scores(folder: str | Path) -> PromptScores:
    """Per-prompt scores from ``folder/verdicts.jsonl`` (written by ``rtt eval score`` or ``rtt eval run``)."""
    path = Path(folder) / "verdicts.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; run `rtt eval run` or `rtt eval score` with --out {folder}")
    responses: dict[str, list[dict[str, list]]] = {}
    instruction_ids: dict[str, list[str]] = {}
    for number, row in read_jsonl(path):
        if not isinstance(row.get("key"), (str, int)) or not isinstance(row.get("strict"), list):
            raise DataError(path, number, "key" if "key" not in row else "strict", "missing or malformed")
        responses.setdefault(str(row["key"]), []).append({mode: row[mode] for mode in ("strict", "loose")
                                                          if row.get(mode)})
        instruction_ids[str(row["key"])] = list(row.get("instruction_id_list") or [])
    keys = tuple(responses)
    passed: dict[str, list[float]] = {metric: [] for metric in COMPARED}
    counted: dict[str, list[float]] = {metric: [] for metric in COMPARED}
    instructions: dict[str, list[int]] = {}
    for key in keys:
        for mode in ("strict", "loose"):
            # a benchmark without a loose mode (MulDimIF) scores loose as strict
            verdicts = [response.get(mode, response["strict"]) for response in responses[key]]
            all_pass, passes = prompt_scores(verdicts)  # as `rtt eval score` summarizes them
            passed[f"prompt_level_{mode}"].append(all_pass)
            counted[f"prompt_level_{mode}"].append(1.0)
            passed[f"instruction_level_{mode}"].append(passes)
            counted[f"instruction_level_{mode}"].append(float(len(verdicts[0])))
        free = [is_length_free(name) for name in instruction_ids[key]]
        strict = [[verdict for verdict, keep in zip(response["strict"], free) if keep] for response in responses[key]]
        passed[LENGTH_FREE].append(prompt_scores(strict)[1])
        counted[LENGTH_FREE].append(float(sum(free)))
        for response in responses[key]:
            for name, verdict in zip(instruction_ids[key], response["strict"]):
                tally = instructions.setdefault(name, [0, 0])
                tally[0] += verdict is True
                tally[1] += 1
    return PromptScores(keys, {m: np.array(v) for m, v in passed.items()}, {m: np.array(v) for m, v in counted.items()},
                        {name: (tally[0], tally[1]) for name, tally in sorted(instructions.items())})


@dataclass(frozen=True)
class Comparison:
    """``other`` minus ``base`` on the prompts both answered: each metric's two accuracies and the difference's
    paired bootstrap 95% interval."""

    prompts: int
    base: dict[str, float]
    other: dict[str, float]
    interval: dict[str, tuple[float, float]]

    def difference(self, metric: str) -> float:
        return self.other[metric] - self.base[metric]


def compare(base: PromptScores, other: PromptScores, seed: int = 0) -> Comparison:
    """Paired comparison on the prompts the two share (module docstring); no shared prompt is a `ValueError`."""
    other_keys = set(other.keys)
    shared = [key for key in base.keys if key in other_keys]
    if not shared:
        raise ValueError("the two folders share no prompt: they answered different benchmarks or --limit ranges")
    draws = np.random.default_rng(seed).integers(0, len(shared), size=(RESAMPLES, len(shared)))
    positions = [{key: row for row, key in enumerate(scores.keys)} for scores in (base, other)]
    rows = [np.array([position[key] for key in shared]) for position in positions]
    # every accuracy both folders have (none is length-free on a benchmark without such instructions)
    metrics = [metric for metric in COMPARED if all(scores.counted[metric][side_rows].sum() > 0
                                                    for scores, side_rows in zip((base, other), rows))]
    accuracy: list[dict[str, float]] = [{}, {}]
    resampled: list[dict[str, np.ndarray]] = [{}, {}]
    for side, scores in enumerate((base, other)):
        for metric in metrics:
            passed, counted = scores.passed[metric][rows[side]], scores.counted[metric][rows[side]]
            accuracy[side][metric] = float(passed.sum() / counted.sum())
            with np.errstate(invalid="ignore"):  # a draw without a length-free instruction: NaN, left out below
                resampled[side][metric] = passed[draws].sum(axis=1) / counted[draws].sum(axis=1)
    interval = {metric: tuple(float(q) for q in np.nanpercentile(resampled[1][metric] - resampled[0][metric],
                                                                  [2.5, 97.5]))
                for metric in metrics}
    return Comparison(len(shared), accuracy[0], accuracy[1], interval)


def format_comparisons(base_name: str, comparisons: dict[str, Comparison]) -> str:
    """A table: one row per metric, the base's accuracy, then each other folder's with its Δ and interval (the
    base's accuracy is over the prompts it shares with the first folder)."""
    first = next(iter(comparisons.values()))
    lines = [f"Δ = folder minus {base_name} on the prompts both answered, paired bootstrap 95% interval over prompts",
             " | ".join(["metric", base_name, *(f"{name} ({c.prompts} prompts)" for name, c in comparisons.items())])]
    for metric in (metric for metric in COMPARED if any(metric in c.interval for c in comparisons.values())):
        cells = [metric, f"{first.base[metric]:.4f}" if metric in first.base else "-"]
        for comparison in comparisons.values():
            if metric not in comparison.interval:  # e.g. no shared prompt has a length-free instruction
                cells.append("-")
                continue
            low, high = comparison.interval[metric]
            cells.append(f"{comparison.other[metric]:.4f} ({comparison.difference(metric):+.4f} "
                         f"[{low:+.4f}, {high:+.4f}])")
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def format_instruction_rates(scores: dict[str, PromptScores]) -> str:
    """A table: one row per instruction id, each folder's strict pass rate (passes / verdicts); ``*`` marks the
    instructions whose pass does not depend on answer length."""
    names = sorted({name for folder in scores.values() for name in folder.instructions})
    width = max(len(name) for name in names) + 2 if names else 12
    lines = [f"{'instruction (* length-free)':<{width}} " + " ".join(f"{folder:>16}" for folder in scores)]
    for name in names:
        cells = []
        for folder in scores.values():
            passes, total = folder.instructions.get(name, (0, 0))
            cells.append(f"{passes / total:.2f} ({total:>3})" if total else "-")
        lines.append(f"{name + (' *' if is_length_free(name) else ''):<{width}} "
                     + " ".join(f"{cell:>16}" for cell in cells))
    return "\n".join(lines)


def comparisons_json(base_name: str, comparisons: dict[str, Comparison],
                     instructions: dict[str, PromptScores] | None = None) -> str:
    """The comparisons as JSON; with ``instructions`` (folder name -> its scores) also each folder's strict
    passes and verdicts per instruction id."""
    document = {"base": base_name, "compared": {
        name: {"prompts": c.prompts, "base": c.base, "other": c.other,
               "minus_base": {m: {"mean": c.difference(m), "low": c.interval[m][0], "high": c.interval[m][1]}
                              for m in c.interval}}
        for name, c in comparisons.items()}}
    if instructions:
        document["instructions"] = {folder: {name: {"passed": passes, "verdicts": total}
                                             for name, (passes, total) in scores.instructions.items()}
                                    for folder, scores in instructions.items()}
    return json.dumps(document, indent=2)
