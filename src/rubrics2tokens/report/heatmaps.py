"""Token-credit heatmaps: the advantage every token of a held-out response got, a GRPO run and an RTT run
side by side, at their first and last evaluation, for the same (prompt, sample).

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


@dataclass(frozen=True)
class Pair:
    grpo: RunFolder
    rtt: RunFolder


def advantage_colour(value: float, scale: float) -> tuple[int, int, int]:
    """The background of a token with advantage ``value``, ``scale`` being the |advantage| of full colour."""
    weight = max(-1.0, min(1.0, value / scale)) if scale > 0 else 0.0
    end = POSITIVE if weight > 0 else NEGATIVE
    return tuple(round(white + (colour - white) * abs(weight)) for white, colour in zip(WHITE, end))


def _final_value(run: RunFolder, key: str) -> float:
    steps, values = run.heldout_series(key)
    return values[-1] if values else -math.inf


def choose_pair(runs: list[RunFolder]) -> Pair | None:
    """A GRPO run (of the GRPO-CSR variant when there is one) and a run of the RTT variant with the best
    final held-out all-pass, then satisfaction; the lowest seed of each. None without both kinds."""
    groups = group_by_variant([run for run in runs if run.heldout_steps])
    grpo = [group for group in groups.values() if all(run.is_grpo for run in group)]
    rtt = [group for group in groups.values() if not any(run.is_grpo for run in group)
           and all(run.relevance_source for run in group)]
    if not grpo or not rtt:
        return None
    grpo.sort(key=lambda group: group[0].setting("reward_aggregation") != "csr")
    best_rtt = max(rtt, key=lambda group: tuple(
        sum(_final_value(run, key) for run in group) / len(group)
        for key in ("all_pass", "satisfaction")))
    return Pair(grpo[0][0], best_rtt[0])


def _rows_by_key(run: RunFolder, step: int) -> dict[Key, dict[str, Any]]:
    return {(row["prompt_id"], row["sample"]): row for row in run.heldout_rows(step)}


def shared_examples(pair: Pair, count: int) -> tuple[int, int, int, int, list[Key]]:
    """(first and last step of the GRPO run, the same for the RTT run, up to ``count`` (prompt, sample)
    keys answered at all four), the first sample of each prompt first, prompts in id order."""
    grpo_first, grpo_last = pair.grpo.heldout_steps[0], pair.grpo.heldout_steps[-1]
    rtt_first, rtt_last = pair.rtt.heldout_steps[0], pair.rtt.heldout_steps[-1]
    keys = set(_rows_by_key(pair.grpo, grpo_first))
    for run, step in ((pair.grpo, grpo_last), (pair.rtt, rtt_first), (pair.rtt, rtt_last)):
        keys &= set(_rows_by_key(run, step))
    ordered = sorted(keys, key=lambda key: (key[1], key[0]))
    return grpo_first, grpo_last, rtt_first, rtt_last, ordered[:count]


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


def heatmaps_html(runs: list[RunFolder], count: int = 3) -> tuple[str, dict[str, Any]]:
    """The heatmap section of the page and what it shows (for report.json); a note when no pair exists."""
    pair = choose_pair(runs)
    if pair is None:
        return ("<p>No token-credit heatmaps: they need a GRPO run (relevance_source none) and an RTT run, "
                "both with held-out responses.</p>", {})
    grpo_first, grpo_last, rtt_first, rtt_last, keys = shared_examples(pair, count)
    if not keys:
        return "<p>No held-out response is shared by the GRPO and RTT runs at their first and last evaluation.</p>", {}
    sections = []
    for prompt_id, sample in keys:
        cells = [(pair.grpo, grpo_first), (pair.rtt, rtt_first), (pair.grpo, grpo_last), (pair.rtt, rtt_last)]
        rows = [_rows_by_key(run, step)[(prompt_id, sample)] for run, step in cells]
        scale = _scale(rows)
        panels = "".join(_panel(run, step, row, scale) for (run, step), row in zip(cells, rows))
        sections.append(f'<h3>prompt {html.escape(prompt_id)}, sample {sample} '
                        f'<span class="scale">(full colour: |advantage| {scale:.3g})</span></h3>'
                        f'<div class="grid">{panels}</div>')
    shown = {"grpo_run": str(pair.grpo.path), "rtt_run": str(pair.rtt.path),
             "steps": {"grpo": [grpo_first, grpo_last], "rtt": [rtt_first, rtt_last]},
             "examples": [{"prompt_id": prompt_id, "sample": sample} for prompt_id, sample in keys]}
    intro = (f"<p>Left: <b>{html.escape(pair.grpo.label)}</b> (GRPO); right: <b>{html.escape(pair.rtt.label)}</b> "
             f"(RTT, relevance <code>{html.escape(str(pair.rtt.relevance_source))}</code>). Top row: first evaluation; "
             f"bottom row: last. Each token's background is the advantage the run's own settings give it: "
             f"{legend_html()}&nbsp; (relative to the example's largest |advantage|; hover a token for its value).</p>")
    return intro + "".join(sections), shown
