"""Token labels from an LLM annotator, for rubrics no rule can check (method.md §5).

The annotator is asked, through the judge client (`LLMJudge.chat_batch`), for its verdict on one
rubric and the exact substrings of the response that decide it, as JSON::

    {"verdict": "NO", "quotes": ["Paris is the capital of Germany"]}

Each quote is located in the response: every exact occurrence, else every occurrence ignoring case
and runs of whitespace. A quote found nowhere is never guessed at: its pair is dropped (a missing span
would silently become a wrong 0 label) and the quote is counted and written to the unmatched report.

Replies are appended to a JSONL file as they arrive (``{"id": pair id, "reply": text}``), so a killed
run asks only what it has not asked yet; requests that got no reply are not stored and are asked again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Protocol, Sequence

from tqdm.auto import tqdm

from rubrics2tokens.data.schema import DataError, PromptRow, Rubric, append_jsonl, read_appended_jsonl
from rubrics2tokens.relevance.labels import LabelledPair

SYSTEM_PROMPT = (
    "You label which parts of a response decide whether it satisfies a rubric. You are given an "
    "instruction, a response written for it, and one rubric. Decide whether the response satisfies the "
    "rubric, and quote the shortest exact substrings of the response whose change would move that verdict, "
    "and nothing else. Copy each quote character for character from the response.\n"
    "If the rubric is NOT satisfied, quote only what causes the failure: each forbidden thing that is present; "
    "the part past a limit (the words, items or paragraphs beyond the allowed number); the place where a "
    "required form is wrong (the first word, the first line, the last line). If something required is missing "
    "or there is too little of it (too few words, items, paragraphs or mentions), quote nothing, because the "
    "parts already there are progress, and set \"stop\" to true: the response ended too early.\n"
    "If the rubric IS satisfied, quote only the parts that specifically achieve it (the required word each "
    "time it appears, the title, the ending phrase, the list markers). If it is a property of the whole "
    "response that every part merely avoids breaking (no commas, all lowercase, a length limit, a language, "
    "a tone), quote nothing.\n"
    "Reply with one JSON object and nothing else: "
    '{"verdict": "YES" or "NO", "quotes": ["...", ...], "stop": true or false}'
)

USER_TEMPLATE = (
    "<instruction>\n{instruction}\n</instruction>\n\n"
    "<response>\n{response}\n</response>\n\n"
    "<rubric>\n{rubric}\n</rubric>\n\n"
    "Does the response satisfy the rubric, and which exact substrings decide it? Reply with the JSON object."
)

# A reply may wrap its JSON in a markdown code fence.
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


class ChatClient(Protocol):
    """What the annotator needs from a judge client (`LLMJudge` has it)."""

    def chat_batch(self, conversations: Sequence[list[dict[str, str]]], max_tokens: int) -> list[str | None]:
        ...


@dataclass(frozen=True)
class Annotation:
    """An annotator's reading of one (rubric, response)."""

    verdict: bool
    quotes: list[str]
    stop: bool = False


@dataclass
class AnnotationReport:
    """What the annotator did: every asked pair ends in exactly one of ``labelled``, ``no_reply``,
    ``unreadable`` or ``with_unmatched``; ``unmatched`` lists each quote that was not found."""

    asked: int = 0
    labelled: int = 0
    no_reply: int = 0
    unreadable: int = 0
    with_unmatched: int = 0
    quotes: int = 0
    unmatched: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (f"annotator: {self.asked} pairs asked, {self.labelled} labelled; {self.no_reply} without a reply, "
                f"{self.unreadable} unreadable replies, {self.with_unmatched} dropped for unmatched quotes "
                f"({len(self.unmatched)} of {self.quotes} quotes not found in their response)")


def build_messages(instruction: str, response: str, rubric: str) -> list[dict[str, str]]:
    """The chat messages asking the annotator about one (rubric, response)."""
    user = USER_TEMPLATE.format(instruction=instruction, response=response, rubric=rubric)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_annotation(reply: str | None) -> Annotation | None:
    """The annotation in ``reply``, or None unless it is exactly a JSON object with a YES/NO ``verdict``, a
    list of non-empty string ``quotes`` and, optionally, a boolean ``stop`` (default false; true only
    with a NO verdict and no quotes); an optional markdown code fence around it is allowed."""
    if reply is None:
        return None
    fenced = _FENCE.match(reply)
    try:
        record = json.loads(fenced.group(1) if fenced else reply)
    except json.JSONDecodeError:
        return None
    if not isinstance(record, dict):
        return None
    verdict = {"YES": True, "NO": False}.get(str(record.get("verdict", "")).strip().upper())
    quotes = record.get("quotes")
    if verdict is None or not isinstance(quotes, list) or not all(isinstance(q, str) and q.strip() for q in quotes):
        return None
    stop = record.get("stop", False)
    if not isinstance(stop, bool) or (stop and (verdict or quotes)):
        return None  # the stop is blamed only for a failure with nothing to quote
    return Annotation(verdict=verdict, quotes=quotes, stop=stop)


def locate_quote(response: str, quote: str) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of ``quote`` in ``response``: every exact occurrence; if there is
    none, every occurrence ignoring case and treating any run of whitespace as one space; else ``[]``."""
    exact = _occurrences(response, quote)
    if exact:
        return exact
    text, origin = _normalize(response)
    needle, _ = _normalize(quote.strip())
    # A normalized span [i, j) covers the original characters origin[i] .. origin[j - 1].
    return [(origin[start], origin[end - 1] + 1) for start, end in _occurrences(text, needle)]


def _occurrences(text: str, needle: str) -> list[tuple[int, int]]:
    spans, start = [], text.find(needle) if needle else -1
    while start != -1:
        spans.append((start, start + len(needle)))
        start = text.find(needle, start + len(needle))
    return spans


def _normalize(text: str) -> tuple[str, list[int]]:
    """``text`` lower-cased with whitespace runs collapsed to one space, and for each of its characters
    the index of the original character it came from (lower-casing may lengthen a character)."""
    chars, origin = [], []
    for index, char in enumerate(text):
        if char.isspace():
            if chars and chars[-1] == " ":
                continue
            char = " "
        for piece in char.lower():
            chars.append(piece)
            origin.append(index)
    return "".join(chars), origin


def label_with_annotator(rows: Sequence[PromptRow], responses: Mapping[str, Sequence[str]], annotator: ChatClient,
                         replies_path: str | Path, skip_ids: set[str] = frozenset(), max_tokens: int = 512,
                         chunk_size: int = 64) -> tuple[list[LabelledPair], AnnotationReport]:
    """Annotate every (response, rubric) pair whose id is not in ``skip_ids`` (those the verifiers
    labelled); ids and families as in `label_with_verifiers`, ``source="annotator"``.

    Questions go to the annotator ``chunk_size`` at a time (each chunk concurrently); every reply is
    appended to ``replies_path`` as its chunk returns, and pairs already there are not asked again.
    """
    todo: dict[str, tuple[PromptRow, str, Rubric]] = {}
    for row in rows:
        for sample, response in enumerate(responses.get(row.id, ())):
            if not response.strip():
                continue
            for k, rubric in enumerate(row.rubrics):
                if f"{row.id}/{sample}/{k}" not in skip_ids:
                    todo[f"{row.id}/{sample}/{k}"] = (row, response, rubric)
    replies = _ask_missing(todo, annotator, replies_path, max_tokens, chunk_size)
    return _pairs_from_replies(todo, replies)


def _ask_missing(todo: Mapping[str, tuple[PromptRow, str, Rubric]], annotator: ChatClient, replies_path: str | Path,
                 max_tokens: int, chunk_size: int) -> dict[str, str]:
    """Pair id -> reply for every pair of ``todo`` that has one, asking only those not in ``replies_path``."""
    replies = read_replies(replies_path)
    to_ask = [pair_id for pair_id in todo if pair_id not in replies]
    Path(replies_path).parent.mkdir(parents=True, exist_ok=True)
    with open(replies_path, "a", encoding="utf-8") as out, \
            tqdm(total=len(todo), initial=len(todo) - len(to_ask), desc="annotating", unit="pair") as progress:
        for start in range(0, len(to_ask), chunk_size):
            chunk = to_ask[start:start + chunk_size]
            conversations = [build_messages(row.prompt, response, rubric.description)
                             for row, response, rubric in (todo[pair_id] for pair_id in chunk)]
            answered = {pair_id: reply for pair_id, reply in zip(chunk, annotator.chat_batch(conversations, max_tokens))
                        if reply is not None}
            append_jsonl(out, [{"id": pair_id, "reply": reply} for pair_id, reply in answered.items()])
            replies.update(answered)
            progress.update(len(chunk))
    return replies


def _pairs_from_replies(todo: Mapping[str, tuple[PromptRow, str, Rubric]], replies: Mapping[str, str]
                        ) -> tuple[list[LabelledPair], AnnotationReport]:
    """A labelled pair for every readable reply whose quotes are all found, and the report of the rest."""
    pairs, report = [], AnnotationReport(asked=len(todo))
    for pair_id, (row, response, rubric) in todo.items():
        if pair_id not in replies:
            report.no_reply += 1
            continue
        annotation = parse_annotation(replies[pair_id])
        if annotation is None:
            report.unreadable += 1
            continue
        found = {quote: locate_quote(response, quote) for quote in annotation.quotes}
        missing = [quote for quote, spans in found.items() if not spans]
        report.quotes += len(annotation.quotes)
        report.unmatched.extend({"id": pair_id, "quote": quote} for quote in missing)
        if missing:
            report.with_unmatched += 1
            continue
        report.labelled += 1
        spans = _merge([span for quote_spans in found.values() for span in quote_spans])
        pairs.append(LabelledPair(id=pair_id, prompt_id=row.id, rubric=rubric.description, family=rubric.family,
                                  response=response, verdict=annotation.verdict, spans=spans, source="annotator",
                                  stop=annotation.stop))
    return pairs, report


def read_replies(path: str | Path) -> dict[str, str]:
    """Pair id -> the annotator's reply text, from a replies file (a missing file is empty)."""
    replies = {}
    for row, record in read_appended_jsonl(path):
        if not isinstance(record.get("id"), str) or not isinstance(record.get("reply"), str):
            raise DataError(path, row, "id" if not isinstance(record.get("id"), str) else "reply", "must be a string")
        replies[record["id"]] = record["reply"]
    return replies


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted spans with overlapping or touching ones joined."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
