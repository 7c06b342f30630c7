"""Where the token credit goes (issue 23 item 4: why the intra policy writes longer).

Each held-out response's tokens fall into four parts:

- **eos**: the stop token, the response's last token when it ended on its own (not truncated);
- **blamed**: the tokens the verifiers' spans flag under a failed rubric (blame for a fail);
- **credited**: the tokens flagged under a passed rubric (credit for a pass) and not blamed;
- **unflagged**: the rest.

The flags are the oracle's, recomputed from the record: the run's held-out prompts, and so each response's
rubrics with their arguments, are regenerated from its config as `rtt train` builds them
(`builder.build_heldout_rows`), matched by prompt id, and each rubric's verifier is run on the response text.
Its character spans go to the record's tokens through their character ranges (`token_offsets`). A rubric
judged by the LLM judge has no verifier and so flags nothing.

Per variant and held-out step, pooled over its seeds' responses (`credit_location`): the share of the negative
advantage mass (sum of |a| over the tokens with a < 0) on each part, the same for the positive mass, the mean
advantage per token of each part, the share of the tokens in each part, and the responses' mean length and
truncated fraction. A share or mean with nothing to divide by is None.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

from rubrics2tokens.builder import build_heldout_rows, build_rows
from rubrics2tokens.config import RunConfig, build_config
from rubrics2tokens.data.schema import PromptRow, Rubric
from rubrics2tokens.relevance.alignment import spans_to_token_mask
from rubrics2tokens.report.runs import RunFolder, group_by_variant
from rubrics2tokens.verifiers.registry import run_verifier

PARTS = ("eos", "blamed", "credited", "unflagged")


def heldout_prompts(config: dict[str, Any]) -> dict[str, PromptRow]:
    """Prompt id -> held-out prompt of a run, from its config's mapping (`RunFolder.config`)."""
    training = config.get("training") or {}
    # The held-out prompts depend on no other training key. use_cpu: building the training arguments on a
    # machine without a GPU would otherwise refuse their bf16 default.
    kept = {"use_cpu": True}
    if "max_completion_length" in training:
        kept["max_completion_length"] = training["max_completion_length"]
    settings = {"data": config.get("data") or {}, "eval": config.get("eval") or {}, "training": kept}
    return _regenerated_prompts(json.dumps(settings, sort_keys=True))


@functools.cache  # the runs of a study share their prompt settings: generated once
def _regenerated_prompts(settings_json: str) -> dict[str, PromptRow]:
    run_config = build_config(RunConfig, json.loads(settings_json), "the run's config")
    rows = build_heldout_rows(run_config, build_rows(run_config))
    if rows is None:
        raise ValueError("the run has no held-out prompts (eval.source is 'none')")
    return {row.id: row for row in rows}


def rubrics_of(row: dict[str, Any], prompts: dict[str, PromptRow]) -> list[Rubric]:
    """The rubrics of a held-out record's prompt, checked against the families the record names."""
    prompt = prompts.get(row["prompt_id"])
    if prompt is None:
        raise ValueError(f"held-out prompt {row['prompt_id']!r} is not among those the run's config generates")
    families = [rubric.family for rubric in prompt.rubrics]
    if families != row["families"]:
        raise ValueError(f"held-out prompt {row['prompt_id']!r}: the record's rubrics {row['families']} are not "
                         f"those its config generates, {families}")
    return prompt.rubrics


class UnalignedRecord(ValueError):
    """A held-out record whose token pieces do not cover its text."""


def token_offsets(text: str, tokens: list[str]) -> list[tuple[int, int]]:
    """Each token's half-open character range in ``text`` (one pair per token).

    A record's token is its piece of the text (`trainer.heldout.response_records`), so the pieces follow one
    another, with two exceptions: a token holding part of a multi-byte character shows the whole character,
    which the token before it already showed (its range starts one character back); a special token (the
    stop) shows its name, which is no text: it gets the empty range where it stands.
    """
    offsets, position = [], 0
    for token in tokens:
        if token and text.startswith(token, position):
            start = position
        elif token and position > 0 and text.startswith(token, position - 1):
            start = position - 1
        else:
            offsets.append((position, position))
            continue
        offsets.append((start, start + len(token)))
        position = start + len(token)
    if position != len(text):
        raise UnalignedRecord(f"the tokens cover {position} of the text's {len(text)} characters")
    return offsets


def response_parts(row: dict[str, Any], rubrics: list[Rubric]) -> tuple[list[str], int]:
    """Each token's part (`PARTS`, one name per token of ``row["tokens"]``), and how many verdicts the
    verifiers give the text that differ from the record's (0 in a run scored by the verifiers whose prompts were
    regenerated right; a judge's verdicts may differ). The verifiers' verdicts decide the parts."""
    text, tokens = row["text"], row["tokens"]
    offsets = token_offsets(text, tokens)
    blamed, credited = [False] * len(tokens), [False] * len(tokens)
    mismatches = 0
    for rubric, recorded in zip(rubrics, row["verdicts"], strict=True):
        if rubric.verifier is None:
            continue
        verdict = run_verifier(rubric.verifier, text, rubric.kwargs)
        if verdict.passed is None:
            continue
        mismatches += recorded is not None and recorded != int(verdict.passed)
        flagged = spans_to_token_mask(verdict.spans or (), offsets, len(tokens)).bool().tolist()
        marks = credited if verdict.passed else blamed
        for t, is_flagged in enumerate(flagged):
            marks[t] |= is_flagged
    stop = len(tokens) - 1 if tokens and not row["truncated"] else None
    parts = ["eos" if t == stop else "blamed" if blamed[t] else "credited" if credited[t] else "unflagged"
             for t in range(len(tokens))]
    return parts, mismatches


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


@dataclass
class CreditTally:
    """Sums over the held-out responses of one variant at one step."""

    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PARTS, 0))
    negative: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PARTS, 0.0))  # sum of -a over a < 0
    positive: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PARTS, 0.0))  # sum of a over a > 0
    advantage: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PARTS, 0.0))  # sum of a
    runs: int = 0
    responses: int = 0
    length: int = 0
    truncated: int = 0
    verdict_mismatches: int = 0
    unaligned: int = 0  # records whose token pieces do not cover their text (left out)

    def add(self, row: dict[str, Any], parts: list[str], mismatches: int) -> None:
        for part, value in zip(parts, row["advantages"], strict=True):
            self.tokens[part] += 1
            self.advantage[part] += value
            self.negative[part] += max(-value, 0.0)
            self.positive[part] += max(value, 0.0)
        self.responses += 1
        self.length += row["length"]
        self.truncated += bool(row["truncated"])
        self.verdict_mismatches += mismatches

    def summary(self) -> dict[str, Any]:
        negative, positive = sum(self.negative.values()), sum(self.positive.values())
        tokens = sum(self.tokens.values())
        return {
            "runs": self.runs, "responses": self.responses,
            "mean_length": _ratio(self.length, self.responses),
            "truncated_frac": _ratio(self.truncated, self.responses),
            "negative_mass": negative, "positive_mass": positive,
            "token_share": {part: _ratio(self.tokens[part], tokens) for part in PARTS},
            "negative_share": {part: _ratio(self.negative[part], negative) for part in PARTS},
            "positive_share": {part: _ratio(self.positive[part], positive) for part in PARTS},
            "mean_advantage": {part: _ratio(self.advantage[part], self.tokens[part]) for part in PARTS},
            "verdict_mismatches": self.verdict_mismatches, "unaligned": self.unaligned,
        }


def tally_runs(runs: list[RunFolder], step: int) -> CreditTally:
    """The credit location of the responses of ``runs`` that were evaluated at ``step``."""
    tally = CreditTally()
    for run in runs:
        if step not in run.heldout_steps:
            continue
        tally.runs += 1
        prompts = heldout_prompts(run.config)
        for row in run.heldout_rows(step):
            try:
                parts = response_parts(row, rubrics_of(row, prompts))
            except UnalignedRecord:  # pieces shifted by bytes that form no character: records before 2026-12-03
                tally.unaligned += 1
                continue
            tally.add(row, *parts)
    return tally


def credit_location(runs: list[RunFolder], steps: list[int]) -> list[dict[str, Any]]:
    """One summary (`CreditTally.summary` with its variant and step) per variant and step, variants in the order
    `group_by_variant` gives, steps ascending; a step none of a variant's runs evaluated is left out."""
    results = []
    for variant, group in group_by_variant(runs).items():
        for step in sorted(steps):
            tally = tally_runs(group, step)
            if tally.runs:
                results.append({"variant": variant, "step": step, **tally.summary()})
    return results


def chosen_steps(runs: list[RunFolder], which: str) -> list[int]:
    """The steps ``which`` names: ``last``, the first and the last evaluation every run has; ``all``, every step
    any run evaluated; else a comma-separated list of steps (``0,20``)."""
    if which == "all":
        return sorted({step for run in runs for step in run.heldout_steps})
    if which != "last":
        return sorted({int(step) for step in which.split(",")})
    common = set.intersection(*(set(run.heldout_steps) for run in runs))
    if not common:
        raise ValueError("the runs share no held-out step: name the steps (--steps 0,20) or ask for all")
    return sorted({min(common), max(common)})


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cell(values: dict[str, float | None], digits: int) -> str:
    return " / ".join(_number(values[part], digits) for part in PARTS)


def format_table(results: list[dict[str, Any]]) -> str:
    """`credit_location`'s results as a Markdown table, each share and mean as its four parts in one cell."""
    lines = [f"shares and means per part: {' / '.join(PARTS)}", "",
             "| variant | step | runs | responses | length | truncated | tokens | negative advantage "
             "| positive advantage | mean advantage |", "|---|---:|---:|---:|---:|---:|---|---|---|---|"]
    for r in results:
        cells = [r["variant"], r["step"], r["runs"], r["responses"], _number(r["mean_length"], 0),
                 _number(r["truncated_frac"], 2), _cell(r["token_share"], 2), _cell(r["negative_share"], 2),
                 _cell(r["positive_share"], 2), _cell(r["mean_advantage"], 3)]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    mismatched = [f"{r['variant']} @ {r['step']}: {r['verdict_mismatches']}" for r in results
                  if r["verdict_mismatches"]]
    if mismatched:
        lines += ["", "verdicts the verifiers give the text that differ from the records' (prompts regenerated "
                      "wrong?): " + ", ".join(mismatched)]
    unaligned = [f"{r['variant']} @ {r['step']}: {r['unaligned']}" for r in results if r["unaligned"]]
    if unaligned:
        lines += ["", "responses left out, their token pieces not covering their text (records written before the "
                      "alignment fix of 2026-12-03): " + ", ".join(unaligned)]
    return "\n".join(lines)
