"""Token-credit heatmaps: the advantage every token of a held-out response got, at a run's first and last
evaluation, for the same (prompt, sample): a GRPO run and an RTT run side by side when the report has both,
else the RTT run alone (a single run, as `rtt train` reports it).

Colours diverge around zero: blue for a positive advantage (the update makes the token likelier), red for
a negative one, white for zero, scaled by the largest |advantage| among the panels of one example so
that a GRPO response (one advantage for every token) and an RTT response compare at a glance. Hovering
a token shows its advantage.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

from rubrics2tokens.report.runs import RunFolder, group_by_variant

POSITIVE = (33, 102, 172)  # blue
NEGATIVE = (178, 24, 43)  # red
WHITE = (255, 255, 255)
LEGEND_STEPS = (-1.0, -0.5, 0.0, 0.5, 1.0)
DARK = 0.6  # past this share of full colour, a token's text turns white to stay readable
Key = tuple[str, int]  # (prompt_id, sample)
Cell = tuple[RunFolder, int]  # a run at one evaluation step


@dataclass(frozen=True)
class Pair:
    grpo: RunFolder | None  # None: an RTT run shown alone
    rtt: RunFolder

    def cells(self) -> list[Cell]:
        """The panels of one example, row by row in a grid of two columns: GRPO and RTT at their first
        evaluation, then at their last; or the RTT run alone at its first and last (once if the same)."""
        if self.grpo is None:
            return [(self.rtt, step) for step in sorted({self.rtt.heldout_steps[0], self.rtt.heldout_steps[-1]})]
        runs = (self.grpo, self.rtt)
        return [(run, run.heldout_steps[0]) for run in runs] + [(run, run.heldout_steps[-1]) for run in runs]


def advantage_colour(value: float, scale: float) -> tuple[int, int, int]:
    """The background of a token with advantage ``value``, ``scale`` being the |advantage| of full colour."""
    weight = max(-1.0, min(1.0, value / scale)) if scale > 0 else 0.0
    end = POSITIVE if weight > 0 else NEGATIVE
    return tuple(round(white + (colour - white) * abs(weight)) for white, colour in zip(WHITE, end))


def _final_value(run: RunFolder, key: str) -> float:
    steps, values = run.heldout_series(key)
    return values[-1] if values else -math.inf


def choose_pair(runs: list[RunFolder]) -> Pair | None:
    """The runs the view shows: the lowest seed of the RTT variant with the best final held-out all-pass (then
    satisfaction) and, when the report has GRPO runs, the lowest seed of one (GRPO-CSR's when there is one).
    None without an RTT run."""
    groups = group_by_variant([run for run in runs if run.heldout_steps])
    grpo = [group for group in groups.values() if all(run.is_grpo for run in group)]
    rtt = [group for group in groups.values() if not any(run.is_grpo for run in group)
           and all(run.relevance_source for run in group)]
    if not rtt:
        return None
    grpo.sort(key=lambda group: group[0].setting("reward_aggregation") != "csr")
    best_rtt = max(rtt, key=lambda group: tuple(
        sum(_final_value(run, key) for run in group) / len(group)
        for key in ("all_pass", "satisfaction")))
    return Pair(grpo[0][0] if grpo else None, best_rtt[0])


def _no_view(runs: list[RunFolder]) -> str:
    """Why the report has no token-credit view."""
    evaluated = [run for run in runs if run.heldout_steps]
    if not evaluated:
        reason = "no run has held-out responses (heldout/step_&lt;N&gt;.jsonl)"
    elif all(run.is_grpo for run in evaluated):
        reason = ("every run here is plain GRPO (relevance_source none), which gives every token of a response "
                  "the same advantage, the response's; an RTT run's held-out responses show per-token credit here")
    else:
        reason = "no run here is known to be an RTT run (its config.yaml, naming its relevance_source, is missing)"
    return f"<p>No token-credit view: {reason}.</p>"


def _rows_by_key(run: RunFolder, step: int) -> dict[Key, dict[str, Any]]:
    return {(row["prompt_id"], row["sample"]): row for row in run.heldout_rows(step)}


def shared_examples(cells: list[Cell], count: int) -> tuple[list[Key], list[dict[Key, dict[str, Any]]]]:
    """Up to ``count`` (prompt, sample) keys answered in every cell, the first sample of each prompt first,
    prompts in id order; and each cell's rows by key."""
    rows = [_rows_by_key(run, step) for run, step in cells]
    keys = set.intersection(*(set(by_key) for by_key in rows))
    return sorted(keys, key=lambda key: (key[1], key[0]))[:count], rows


def _token_span(token: str, advantage: float, scale: float) -> str:
    red, green, blue = advantage_colour(advantage, scale)
    text = "#fff" if scale > 0 and abs(advantage) / scale > DARK else "#000"
    return (f'<span class="tok" style="background:rgb({red},{green},{blue});color:{text}" '
            f'title="{advantage:+.3f}">{html.escape(token)}</span>')


def _verdicts(row: dict[str, Any]) -> str:
    marks = {1: ("pass", "✓"), 0: ("fail", "✗"), None: ("unknown", "?")}
    chips = []
    for family, verdict in zip(row.get("families", []), row.get("verdicts", [])):
        css, mark = marks.get(verdict, marks[None])
        chips.append(f'<span class="chip {css}">{mark} {html.escape(family)}</span>')
    return "".join(chips)


def _panel(run: RunFolder, step: int, row: dict[str, Any], scale: float) -> str:
    tokens = "".join(_token_span(token, advantage, scale)
                     for token, advantage in zip(row.get("tokens", []), row.get("advantages", [])))
    satisfaction = row.get("satisfaction")
    facts = (f"all-pass {row.get('all_pass')} · satisfaction "
             f"{'-' if satisfaction is None else f'{satisfaction:.2f}'} · {row.get('length')} tokens"
             f"{' · truncated' if row.get('truncated') else ''}")
    return (f'<div class="panel"><div class="panel-head"><b>{html.escape(run.label)}</b> · step {step}</div>'
            f'<div class="chips">{_verdicts(row)}</div><div class="facts">{facts}</div>'
            f'<div class="tokens">{tokens}</div></div>')


def _scale(rows: list[dict[str, Any]]) -> float:
    return max((abs(value) for row in rows for value in row.get("advantages", [])), default=0.0)


def legend_html() -> str:
    return "".join(_token_span(f" {step:+.1f} ", step, 1.0) for step in LEGEND_STEPS)


def _intro(pair: Pair) -> str:
    rtt = (f"<b>{html.escape(pair.rtt.label)}</b> (RTT, relevance "
           f"<code>{html.escape(str(pair.rtt.relevance_source))}</code>)")
    if pair.grpo is not None:
        layout = (f"Left: <b>{html.escape(pair.grpo.label)}</b> (GRPO); right: {rtt}. Top row: first evaluation; "
                  "bottom row: last.")
    else:
        steps = " (left) and step ".join(str(step) for _, step in pair.cells())
        layout = (f"{rtt} at step {steps}{' (right)' if len(pair.cells()) > 1 else ''}: each row, one held-out "
                  "prompt and sample number. A report that also holds a GRPO run (relevance_source none) shows one "
                  "beside it.")
    return (f"<p>{layout} Each token's background is the advantage the run's own settings give it: "
            f"{legend_html()}&nbsp; (relative to the example's largest |advantage|; hover a token for its value). "
            "Chips: the response's rubric verdicts.</p>")


def heatmaps_html(runs: list[RunFolder], count: int = 3) -> tuple[str, dict[str, Any]]:
    """The token-credit section of the page and what it shows (for report.json); why not, when it shows none."""
    pair = choose_pair(runs)
    if pair is None:
        return _no_view(runs), {}
    cells = pair.cells()
    keys, rows_by_cell = shared_examples(cells, count)
    if not keys:
        return "<p>No held-out response is answered at every evaluation shown (first and last).</p>", {}
    sections = []
    for key in keys:
        rows = [by_key[key] for by_key in rows_by_cell]
        scale = _scale(rows)
        panels = "".join(_panel(run, step, row, scale) for (run, step), row in zip(cells, rows))
        sections.append(f'<h3>prompt {html.escape(key[0])}, sample {key[1]} '
                        f'<span class="scale">(full colour: |advantage| {scale:.3g})</span></h3>'
                        f'<div class="grid">{panels}</div>')
    runs_shown = {"grpo": pair.grpo, "rtt": pair.rtt}
    shown = {**{f"{kind}_run": str(run.path) for kind, run in runs_shown.items() if run is not None},
             "steps": {kind: [run.heldout_steps[0], run.heldout_steps[-1]] for kind, run in runs_shown.items()
                       if run is not None},
             "examples": [{"prompt_id": prompt_id, "sample": sample} for prompt_id, sample in keys]}
    return _intro(pair) + "".join(sections), shown
