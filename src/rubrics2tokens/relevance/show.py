"""Look at one (rubric, response): the relevance of every token as a heatmap.

`token_relevance` cuts the response into pieces that cover it exactly: model tokens with their
relevance, and the text between tokens (whitespace a tokenizer drops) with none. `render_terminal`
colours the pieces' backgrounds with 24-bit ANSI escapes (for a terminal only: in a file or a pipe they are
noise); `render_plain` marks the tokens above the threshold with brackets and lists every token's value;
`render_html` writes a standalone page (inline CSS, no script) with each token's value printed above it. All
three show the rubric and, when given, the verdict; tokens above the model's threshold are underlined.
"""

from __future__ import annotations

import html

from rubrics2tokens.relevance.model import RelevanceModel

Piece = tuple[str, float | None]
"""A piece of the response text and its relevance (None: text between tokens)."""

LOW_COLOUR = (238, 238, 238)  # relevance 0: light grey
HIGH_COLOUR = (229, 57, 53)  # relevance 1: red
LEGEND_STEPS = (0.0, 0.25, 0.5, 0.75, 1.0)


def token_relevance(model: RelevanceModel, rubric: str, response: str, verdict: bool | None = None) -> list[Piece]:
    """The response as consecutive pieces with the model's relevance for ``rubric`` (RL-time inference);
    ``verdict`` is needed by a verdict-conditioned model."""
    ids, offsets = model.tokenize_response(response)
    (relevance,) = model.predict([([rubric], ids, [verdict])])
    pieces: list[Piece] = []
    position = 0
    for (start, end), weight in zip(offsets, relevance[0].tolist()):
        start = max(start, position)  # tokens that share a character (byte-level BPE) show it once
        if end <= start:
            continue
        if start > position:
            pieces.append((response[position:start], None))
        pieces.append((response[start:end], weight))
        position = end
    if position < len(response):
        pieces.append((response[position:], None))
    return pieces


def heat_colour(weight: float) -> tuple[int, int, int]:
    """The background for a relevance in [0, 1]: a linear blend from `LOW_COLOUR` to `HIGH_COLOUR`."""
    weight = min(max(weight, 0.0), 1.0)
    return tuple(round(low + (high - low) * weight) for low, high in zip(LOW_COLOUR, HIGH_COLOUR))


# ---------------------------------------------------------------- terminal


def _ansi(text: str, weight: float, threshold: float) -> str:
    """Black text on the heat colour; line breaks stay outside the colour (no colour bleeding to the edge)."""
    red, green, blue = heat_colour(weight)
    style = f"\x1b[38;2;0;0;0;48;2;{red};{green};{blue}{';4' if weight > threshold else ''}m"
    return "\n".join(f"{style}{line}\x1b[0m" if line else "" for line in text.split("\n"))


def _header(rubric: str, verdict: bool | None) -> str:
    return f"Rubric: {rubric}\n" + ("" if verdict is None else f"Verdict: {'pass' if verdict else 'fail'}\n")


def render_terminal(rubric: str, pieces: list[Piece], threshold: float, verdict: bool | None = None) -> str:
    body = "".join(text if weight is None else _ansi(text, weight, threshold) for text, weight in pieces)
    legend = " ".join(_ansi(f" {step:.2f} ", step, threshold=1.0) for step in LEGEND_STEPS)
    return (f"{_header(rubric, verdict)}\n{body}\n\nrelevance: {legend}   "
            f"\x1b[4munderlined\x1b[0m: above the threshold {threshold}")


# ---------------------------------------------------------------- plain text (a file or a pipe)


def render_plain(rubric: str, pieces: list[Piece], threshold: float, verdict: bool | None = None) -> str:
    """The response with [brackets] around the tokens above the threshold, then one line per token: its
    relevance and its text (as a Python literal, so whitespace shows)."""
    body = "".join(f"[{text}]" if weight is not None and weight > threshold else text for text, weight in pieces)
    values = "\n".join(f"{weight:6.3f}  {text!r}" for text, weight in pieces if weight is not None)
    return (f"{_header(rubric, verdict)}\nResponse ([...]: relevance above the threshold {threshold}):\n{body}\n\n"
            f"relevance  token\n{values}")


# ---------------------------------------------------------------- HTML

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Token relevance</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; color: #222; }}
.response {{ white-space: pre-wrap; font-family: ui-monospace, monospace; line-height: 1.8;
             border: 1px solid #ccc; border-radius: 4px; padding: 1em; }}
.token {{ border-radius: 2px; }}
.relevant {{ text-decoration: underline; }}
.legend span {{ padding: 0.1em 0.6em; margin-right: 0.3em; font-family: ui-monospace, monospace; }}
rt {{ font-size: 0.6em; color: #555; }}
.pass {{ color: #2e7d32; }} .fail {{ color: #c62828; }}
</style>
</head>
<body>
<h1>Token relevance</h1>
<p><strong>Rubric:</strong> {rubric}</p>
{verdict}<p class="legend">relevance: {legend} &nbsp; <span class="relevant">underlined</span>: above the threshold {threshold};
the number above each token is its relevance</p>
<div class="response">{body}</div>
</body>
</html>
"""


def _html_token(text: str, weight: float, threshold: float, annotate: bool = True) -> str:
    """The token on its heat colour with its value printed above it (a ruby annotation: no hovering needed);
    line breaks stay outside the annotation, so the value sits on the token's first line."""
    red, green, blue = heat_colour(weight)
    classes = "token relevant" if weight > threshold else "token"
    style = f'class="{classes}" style="background: rgb({red}, {green}, {blue})"'
    lines, shown = [], False
    for line in text.split("\n"):
        if line and annotate and not shown:
            lines.append(f"<ruby><span {style}>{html.escape(line)}</span><rt>{weight:.2f}</rt></ruby>")
            shown = True
        elif line:
            lines.append(f"<span {style}>{html.escape(line)}</span>")
        else:
            lines.append("")
    return "\n".join(lines)


def render_html(rubric: str, pieces: list[Piece], threshold: float, verdict: bool | None = None) -> str:
    """A standalone HTML page of the heatmap; every piece of text is escaped."""
    body = "".join(html.escape(text) if weight is None else _html_token(text, weight, threshold)
                   for text, weight in pieces)
    legend = "".join(_html_token(f"{step:.2f}", step, threshold=1.0, annotate=False) for step in LEGEND_STEPS)
    word = "" if verdict is None else "pass" if verdict else "fail"
    shown_verdict = f'<p><strong>Verdict:</strong> <span class="{word}">{word}</span></p>\n' if word else ""
    return PAGE.format(rubric=html.escape(rubric), verdict=shown_verdict, legend=legend, threshold=threshold,
                       body=body)
