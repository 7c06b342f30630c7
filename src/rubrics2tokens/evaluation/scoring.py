"""Strict and loose scoring of benchmark responses, and the four IFEval accuracies.

Strict: each instruction is checked on the response as it is. Loose (IFEval's ``evaluation_lib.py``): an
instruction passes if it passes on any of 8 variants of the response (`loose_variants`), which forgive a
leading or trailing line ("Sure, here is...") and markdown asterisks.

Accuracies, as IFEval names them:
- prompt-level: the fraction of prompts whose instructions all pass; the RTT paper calls it
  "instruction-level accuracy";
- instruction-level: the fraction of single instructions that pass; the RTT paper calls it
  "rubric-level accuracy".
With several responses per prompt, each prompt counts once: its values are averaged over its responses
first. An unknown verdict (a checker that raised) counts as not passing and is reported in the summary.

MulDimIF is scored strictly only (its evaluation has no loose mode) and summarized as its ``evaluation.py``
does: Overall (the fraction of samples whose constraints all pass), constraint-level accuracy, accuracy per
category (constraint level), per dimension (Content, Format, Language, Length: samples whose constraints of
that dimension all pass) and per difficulty level (Overall and constraint level).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from statistics import fmean
from typing import Any, Iterable, Sequence

from rubrics2tokens.evaluation.benchmarks import BenchmarkPrompt
from rubrics2tokens.verifiers.ifeval import register_ifeval_verifiers
from rubrics2tokens.verifiers.muldimif import official_constants_for_unreadable
from rubrics2tokens.verifiers.registry import run_verifier

MODES = ("strict", "loose")
STRICT_ONLY = {"muldimif"}
"""Benchmarks without a loose mode."""

PAPER_NAMES = {
    "prompt_level": "instruction-level accuracy (RTT paper)",
    "instruction_level": "rubric-level accuracy (RTT paper)",
}
"""IFEval's metric names -> what the RTT paper calls them."""


def loose_variants(response: str) -> list[str]:
    """The 8 responses IFEval's loose mode tries, in its order: the response, without its first line, without
    its last line, without both (each stripped), then the same four with every ``*`` deleted."""
    lines = response.split("\n")
    without_first = "\n".join(lines[1:]).strip()
    without_last = "\n".join(lines[:-1]).strip()
    without_both = "\n".join(lines[1:-1]).strip()
    trimmed = [response, without_first, without_last, without_both]
    return [response, response.replace("*", ""),
            *trimmed[1:], *(variant.replace("*", "") for variant in trimmed[1:])]


@dataclass(frozen=True)
class ResponseVerdicts:
    """The strict and loose verdicts of one response, aligned with its prompt's instructions (no loose ones for
    a benchmark in `STRICT_ONLY`)."""

    item: BenchmarkPrompt
    response_index: int
    strict: tuple[bool | None, ...]
    loose: tuple[bool | None, ...] | None

    def to_json(self) -> dict[str, Any]:
        row = {"key": self.item.key, "prompt": self.item.prompt, "response_index": self.response_index,
               "instruction_id_list": list(self.item.instruction_ids), "strict": list(self.strict),
               "follow_all_strict": all(verdict is True for verdict in self.strict)}
        if self.item.categories:
            row["categories"] = list(self.item.categories)
        if self.loose is not None:
            row.update(loose=list(self.loose), follow_all_loose=all(verdict is True for verdict in self.loose))
        return row


def score_response(item: BenchmarkPrompt, response: str, response_index: int = 0) -> ResponseVerdicts:
    """Check one response against every instruction of its prompt, strict and (unless `STRICT_ONLY`) loose."""
    strict = tuple(run_verifier(verifier_id, response, kwargs).passed
                   for verifier_id, kwargs in zip(item.verifier_ids, item.kwargs))
    if item.benchmark in STRICT_ONLY:
        return ResponseVerdicts(item, response_index, strict, None)
    variants = loose_variants(response)
    loose = tuple(_loose_verdict(verifier_id, kwargs, variants, verdict)
                  for verifier_id, kwargs, verdict in zip(item.verifier_ids, item.kwargs, strict))
    return ResponseVerdicts(item, response_index, strict, loose)


def _loose_verdict(verifier_id: str, kwargs: dict[str, Any], variants: list[str], strict: bool | None) -> bool | None:
    """Pass if any variant passes (stopping at the first, as IFEval does); else unknown if a check was unknown."""
    if strict:
        return True
    any_unknown = strict is None
    for variant in variants[1:]:  # variants[0] is the response itself, already checked strictly
        passed = run_verifier(verifier_id, variant, kwargs).passed
        if passed:
            return True
        any_unknown = any_unknown or passed is None
    return None if any_unknown else False


def score_responses(responses: Iterable[tuple[BenchmarkPrompt, str]]) -> list[ResponseVerdicts]:
    """Score (prompt, response) pairs; a prompt's responses are numbered 0, 1, ... in the order given."""
    register_ifeval_verifiers()
    seen: dict[str, int] = defaultdict(int)
    verdicts = []
    # benchmark scores must agree with the official checkers, constants for unreadable constraints included
    with official_constants_for_unreadable():
        for item, response in responses:
            verdicts.append(score_response(item, response, seen[item.key]))
            seen[item.key] += 1
    return verdicts


def prompt_scores(responses: Sequence[Sequence[bool | None]]) -> tuple[float, float]:
    """One prompt's (all instructions pass, number of instructions that pass), each averaged over its responses'
    verdicts; an unknown verdict counts as not passing."""
    return (fmean(all(v is True for v in response) for response in responses),
            fmean(sum(v is True for v in response) for response in responses))


def summarize(benchmark: str, verdicts: list[ResponseVerdicts]) -> dict[str, Any]:
    """The four accuracies (each prompt averaged over its responses first), with counts and the paper's names;
    MulDimIF's own summary for MulDimIF."""
    if benchmark == "muldimif":
        return summarize_muldimif(verdicts)
    groups = _group_by_prompt(verdicts)
    num_instructions = sum(len(group[0].item.instruction_ids) for group in groups)
    summary: dict[str, Any] = {"benchmark": benchmark, "num_prompts": len(groups), "num_responses": len(verdicts),
                               "num_instructions": num_instructions}
    for mode in MODES:
        per_prompt = [[getattr(verdict, mode) for verdict in group] for group in groups]
        scores = [prompt_scores(prompt) for prompt in per_prompt]
        summary[f"prompt_level_{mode}"] = fmean(all_pass for all_pass, _ in scores) if scores else 0.0
        summary[f"instruction_level_{mode}"] = (sum(passes for _, passes in scores) / num_instructions
                                                if num_instructions else 0.0)
        summary[f"unknown_verdicts_{mode}"] = sum(v is None for prompt in per_prompt for response in prompt
                                                  for v in response)
    summary["paper_names"] = PAPER_NAMES
    return summary


def _group_by_prompt(verdicts: list[ResponseVerdicts]) -> list[list[ResponseVerdicts]]:
    by_prompt: dict[str, list[ResponseVerdicts]] = defaultdict(list)
    for verdict in verdicts:
        by_prompt[verdict.item.key].append(verdict)
    return list(by_prompt.values())


def summarize_muldimif(verdicts: list[ResponseVerdicts]) -> dict[str, Any]:
    """MulDimIF's scores (its ``evaluation.py``), each sample averaged over its responses first.

    ``overall``: samples whose constraints all pass. ``constraint_level``: passing constraints over all
    constraints. ``by_category``: constraint level per category (``Content_Keywords``...). ``by_dimension``:
    per first-level dimension, the samples whose constraints of that dimension all pass. ``by_difficulty``:
    ``overall`` and ``constraint_level`` per difficulty level.
    """
    groups = _group_by_prompt(verdicts)
    overall, constraints = _Tally(), _Tally()
    by_category: dict[str, _Tally] = defaultdict(_Tally)
    by_dimension: dict[str, _Tally] = defaultdict(_Tally)
    by_difficulty_overall: dict[str, _Tally] = defaultdict(_Tally)
    by_difficulty_constraints: dict[str, _Tally] = defaultdict(_Tally)
    for group in groups:
        item = group[0].item
        passes = [[verdict is True for verdict in response.strict] for response in group]
        sample_passes = fmean(all(response) for response in passes)
        overall.add(sample_passes)
        by_difficulty_overall[item.difficulty].add(sample_passes)
        for index, category in enumerate(item.categories):
            constraint_passes = fmean(response[index] for response in passes)
            for tally in (constraints, by_category[category], by_difficulty_constraints[item.difficulty]):
                tally.add(constraint_passes)
        for dimension in dict.fromkeys(category.split("_")[0] for category in item.categories):
            by_dimension[dimension].add(fmean(
                all(passed for passed, category in zip(response, item.categories)
                    if category.split("_")[0] == dimension) for response in passes))
    return {"benchmark": "muldimif", "num_prompts": len(groups), "num_responses": len(verdicts),
            "num_instructions": constraints.count, "overall": overall.mean, "constraint_level": constraints.mean,
            "by_category": {name: tally.mean for name, tally in sorted(by_category.items())},
            "by_dimension": {name: tally.mean for name, tally in sorted(by_dimension.items())},
            "by_difficulty": {level: {"overall": by_difficulty_overall[level].mean,
                                      "constraint_level": by_difficulty_constraints[level].mean}
                              for level in sorted(by_difficulty_overall, key=str)},
            "unknown_verdicts_strict": sum(v is None for verdict in verdicts for v in verdict.strict)}


@dataclass
class _Tally:
    """A running mean of per-sample (or per-constraint) pass values."""

    total: float = 0.0
    count: int = 0

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


def format_summary(summary: dict[str, Any]) -> str:
    """The four accuracies as printed lines, each with the RTT paper's name for it (MulDimIF: its own scores)."""
    if summary["benchmark"] == "muldimif":
        return _format_muldimif_summary(summary)
    lines = [f"{summary['benchmark']}: {summary['num_prompts']} prompts, {summary['num_responses']} responses, "
             f"{summary['num_instructions']} instructions"]
    for level, paper_name in PAPER_NAMES.items():
        for mode in MODES:
            lines.append(f"{level}_{mode:6s} {summary[f'{level}_{mode}']:.4f}   ({paper_name}, {mode})")
    unknown = summary["unknown_verdicts_strict"] + summary["unknown_verdicts_loose"]
    if unknown:
        lines.append(f"{unknown} verdicts are unknown (a checker raised; counted as not passing, see the log)")
    return "\n".join(lines)


def _format_muldimif_summary(summary: dict[str, Any]) -> str:
    lines = [f"muldimif: {summary['num_prompts']} samples, {summary['num_responses']} responses, "
             f"{summary['num_instructions']} constraints",
             f"overall          {summary['overall']:.4f}   (samples whose constraints all pass)",
             f"constraint_level {summary['constraint_level']:.4f}   (constraints that pass)"]
    lines += [f"  {name:22s} {value:.4f}" for name, value in summary["by_category"].items()]
    lines += [f"  {name:22s} {value:.4f}   (samples whose {name} constraints all pass)"
              for name, value in summary["by_dimension"].items()]
    lines += [f"  {level:22s} overall {values['overall']:.4f}, constraint level {values['constraint_level']:.4f}"
              for level, values in summary["by_difficulty"].items()]
    if summary["unknown_verdicts_strict"]:
        lines.append(f"{summary['unknown_verdicts_strict']} verdicts are unknown (counted as not passing, see the log)")
    return "\n".join(lines)
