"""The report as one standalone HTML page: the tables, the curves (PNG embedded as base64) and the
token-credit heatmaps; inline CSS, no script, no file it links to."""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path

from rubrics2tokens.report.table import Table, table_sections

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1300px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1em; margin: 1.2em 0 0.4em; } .scale { font-weight: normal; color: #666; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; white-space: normal; } td:first-child, th:first-child { text-align: left; }
tr.before td { color: #666; font-style: italic; }
img { max-width: 100%; border: 1px solid #eee; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 0.8em; }
.panel { border: 1px solid #ccc; border-radius: 4px; padding: 0.6em; min-width: 0; }
.panel-head { margin-bottom: 0.3em; } .facts { color: #555; font-size: 0.85em; margin: 0.3em 0; }
.tokens { white-space: pre-wrap; word-break: break-word; font-family: ui-monospace, monospace; font-size: 0.85em;
          line-height: 1.7; }
.tok { border-radius: 2px; }
.chip { display: inline-block; font-size: 0.75em; padding: 0 0.4em; margin: 0 0.3em 0.2em 0; border-radius: 3px; }
.chip.pass { background: #e3f1e3; color: #1b5e20; } .chip.fail { background: #fbe3e3; color: #8b1a1a; }
.chip.unknown { background: #eee; color: #555; }
.note { color: #555; font-size: 0.9em; max-width: 60em; }
"""


def _html_table(title: str, header: list[str], rows: list[list[str]], before_first: bool) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join(
        f'<tr{" class=before" if before_first and i == 0 else ""}>'
        + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for i, row in enumerate(rows))
    return f"<h3>{html.escape(title)}</h3><table><tr>{head}</tr>{body}</table>"


def _image(path: Path, alt: str) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}"></p>'


def render_page(root: Path, table: Table, images: list[Path], heatmaps: str, run_count: int) -> str:
    tables = "".join(_html_table(title, header, rows, before_first=True)
                     for title, header, rows in table_sections(table))
    curves = "".join(_image(path, path.stem) for path in images) or "<p>No held-out records in metrics.jsonl.</p>"
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    baseline = (f" Δ columns: the variant minus <b>{html.escape(table.baseline)}</b>, prompts paired, with its own "
                "bootstrap interval; an interval that excludes 0 is a gap beyond the noise measured here."
                if table.baseline else "")
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>rtt report: {html.escape(root.name)}</title><style>{STYLE}</style></head>
<body>
<h1>rtt report: {html.escape(str(root))}</h1>
<p class="note">{run_count} run folder(s), read {made}.
Rebuild with <code>rtt report {html.escape(str(root))}</code>.</p>
<h2>Held-out results</h2>
<p class="note">Each variant at its final held-out evaluation (column "step"); "{html.escape(table.rows[0].name)}"
is every run's first evaluation, before any update: one base model, counted once (each prompt's responses of all
runs pooled). Mean [95% interval]: a bootstrap that resamples seeds and held-out prompts (one seed, and the base
model: prompts only).{baseline} Median step time: each run's median seconds per training step (what
<code>rtt train</code> prints), mean over seeds; RTT share: scoring + relevance + advantage time over the summed
step time; wall time: <code>rtt study</code>'s, over all of a run's attempts, else the training loop's
(<code>train_runtime</code>: held-out evaluations included, model loading not; for a run resumed outside a study,
since its last resume).</p>
{tables}
<h2>Learning curves</h2>
<p class="note">Held-out metrics against training steps; line: the variant's mean over seeds x prompts, band:
its 95% interval, the tables' bootstrap at every evaluation (a move inside the band is within the noise).
Rates are drawn from 0 to 1.</p>
{curves}
<h2>Token credit</h2>
{heatmaps}
</body>
</html>
"""
