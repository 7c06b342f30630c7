"""`rtt rubrics generate`: rubric rows for a file of prompts, appended to the output as each prompt completes.

For every prompt: the model-free extraction's rubrics (`extract_rubrics`), then, with a generator, K rubric items
from the model (told the extracted ones, which it should not repeat). A reply that cannot be read is asked again,
up to ``attempts`` times; a prompt whose replies all fail (or, without a generator, whose wording states no
constraint the extraction knows) gets no row: it is listed in ``OUT.failed.jsonl`` with the replies, never
guessed at. An attachment that fails `attachment_problem` sends its rubric to the judge and is listed in
``OUT.rejected.jsonl``.

Resuming: a prompt is done once its row is in the output or it is listed as failed; a rerun asks only the others
(delete the failed list to try its prompts again). Rows are appended whole and flushed (`append_jsonl`), a line cut
short by a kill is dropped on the next run (`read_appended_jsonl`), and a prompt's rejected attachments are written
before its row, those of a prompt without a row being dropped on the next run, so that nothing is lost or repeated.
The settings (generator, K, extraction) are kept in ``OUT.settings.json``; a rerun with others is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, TextIO

from rubrics2tokens.data.kept_settings import keep_settings
from rubrics2tokens.data.schema import (DataError, PromptRow, Rubric, append_jsonl, by_unique_id, parse_row,
                                        read_appended_jsonl, read_jsonl, write_jsonl)
from rubrics2tokens.rubrics.extract import extract_rubrics
from rubrics2tokens.rubrics.generators import Generator
from rubrics2tokens.rubrics.replies import UnreadableReply, build_messages, read_reply

logger = logging.getLogger(__name__)

GENERATED_SOURCE = "generated"
"""The ``source`` of the written rows (an input's own source could name a HIR-16K type, whose layout differs)."""


@dataclass
class GenerationReport:
    """What a run did: ``done_before`` prompts were already done, the others each got a row or failed."""

    prompts: int = 0
    done_before: int = 0
    rows: int = 0
    rubrics: int = 0
    verifier_rubrics: int = 0
    failed: int = 0
    rejected: int = 0

    def summary(self, out: Path) -> str:
        judged = self.rubrics - self.verifier_rubrics
        lines = [f"wrote {self.rows} rows to {out} ({self.rubrics} rubrics: {self.verifier_rubrics} with a code "
                 f"verifier, {judged} for the judge); {self.done_before} of {self.prompts} prompts were done before"]
        if self.failed:
            lines.append(f"{self.failed} prompts got no rubrics: listed in {failed_path(out)}")
        if self.rejected:
            lines.append(f"{self.rejected} verifier attachments were rejected (their rubrics go to the judge): "
                         f"{rejected_path(out)}")
        return "\n".join(lines)


def failed_path(out: Path) -> Path:
    return out.with_suffix(".failed.jsonl")


def rejected_path(out: Path) -> Path:
    return out.with_suffix(".rejected.jsonl")


def read_prompts(path: str | Path) -> list[PromptRow]:
    """The prompts of a JSONL file: rows of our schema (any rubrics they have are ignored) or just ``id`` and
    ``prompt`` or ``messages``; ids must be unique (they say which prompts a rerun has done)."""
    def parse(record: dict[str, Any], number: int) -> PromptRow:
        # the schema's own checks of id, prompt and messages, with a placeholder where the rubrics go
        fields = {name: value for name, value in record.items() if name not in ("rubrics", "ground_truth")}
        return parse_row({**fields, "rubrics": ["(to be written)"], "id": record.get("id", f"row-{number}")},
                         path, number)

    numbered = ((number, parse(record, number)) for number, record in read_jsonl(path))
    prompts = list(by_unique_id(numbered, path).values())
    if not prompts:
        raise DataError(path, 0, "<file>", "no prompts")
    return prompts


def generate_rubric_rows(prompts: list[PromptRow], out: str | Path, generator: Generator | None = None,
                         rubrics_per_prompt: int = 5, extraction: bool = True, attempts: int = 3,
                         batch_size: int = 16) -> GenerationReport:
    """Append a rubric row for every prompt not done yet to ``out`` (see the module's docstring)."""
    if generator is None and not extraction:
        raise ValueError("with no generator, the extraction is all there is: it cannot be turned off")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    keep_settings(out, {"generator": None if generator is None else generator.name,
                          "rubrics_per_prompt": None if generator is None else rubrics_per_prompt,
                          "extraction": extraction})
    done = {str(record.get("id")) for _, record in read_appended_jsonl(out)}
    done |= {str(record.get("id")) for _, record in read_appended_jsonl(failed_path(out))}
    _drop_rejections_without_row(out, done)
    report = GenerationReport(prompts=len(prompts), done_before=sum(row.id in done for row in prompts))
    todo = [row for row in prompts if row.id not in done]
    with _Writer(out, report) as writer:
        for batch in _chunks(todo, batch_size):
            extracted = {row.id: extract_rubrics(row.prompt) if extraction else [] for row in batch}
            if generator is None:
                for row in batch:
                    if extracted[row.id]:
                        writer.row(row, extracted[row.id], [])
                    else:
                        writer.failed(row, "the wording states no constraint the extraction knows (and no "
                                           "generator was given)", [])
                continue
            _generate_batch(batch, extracted, generator, rubrics_per_prompt, attempts, writer)
    return report


def _generate_batch(batch: list[PromptRow], extracted: dict[str, list[Rubric]], generator: Generator, count: int,
                    attempts: int, writer: "_Writer") -> None:
    conversations = {row.id: build_messages(row.messages, extracted[row.id], count) for row in batch}
    replies: dict[str, list[str | None]] = {row.id: [] for row in batch}
    problems: dict[str, str] = {}
    pending = batch
    for attempt in range(attempts):
        answers = generator.ask([conversations[row.id] for row in pending], attempt)
        still_pending = []
        for row, answer in zip(pending, answers):
            replies[row.id].append(answer)
            try:
                read = read_reply(answer, count)
            except UnreadableReply as error:
                problems[row.id] = str(error)
                still_pending.append(row)
                continue
            generator.keep(conversations[row.id], answer)
            writer.row(row, extracted[row.id] + _not_extracted(read.rubrics, extracted[row.id]), read.rejected)
        pending = still_pending
        if not pending:
            return
    for row in pending:
        writer.failed(row, f"no readable reply in {attempts} attempts (last: {problems[row.id]})", replies[row.id])


def _not_extracted(rubrics: list[Rubric], extracted: list[Rubric]) -> list[Rubric]:
    """The model's rubrics less those whose verifier and arguments the extraction attached already."""
    attached = [(rubric.verifier, rubric.kwargs) for rubric in extracted]
    return [rubric for rubric in rubrics if rubric.verifier is None or (rubric.verifier, rubric.kwargs) not in attached]


class _Writer:
    """Appends rows, failures and rejected attachments durably, and counts them in the report. A side file is
    opened (created) only when it gets a line."""

    def __init__(self, out: Path, report: GenerationReport):
        self._paths = {"rows": out, "failed": failed_path(out), "rejected": rejected_path(out)}
        self._files: dict[str, TextIO] = {}
        self._report = report

    def __enter__(self) -> "_Writer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        for file in self._files.values():
            file.close()

    def _append(self, kind: str, records: list[dict[str, Any]]) -> None:
        if records:
            if kind not in self._files:
                self._files[kind] = open(self._paths[kind], "a", encoding="utf-8")
            append_jsonl(self._files[kind], records)

    def row(self, prompt: PromptRow, rubrics: list[Rubric], rejected: list[dict[str, Any]]) -> None:
        self._append("rejected", [{"id": prompt.id, **rejection} for rejection in rejected])
        row = PromptRow(id=prompt.id, prompt=prompt.prompt, messages=prompt.messages, rubrics=rubrics,
                        source=GENERATED_SOURCE)
        self._append("rows", [row.to_json()])
        self._report.rows += 1
        self._report.rubrics += len(rubrics)
        self._report.verifier_rubrics += sum(rubric.verifier is not None for rubric in rubrics)
        self._report.rejected += len(rejected)

    def failed(self, prompt: PromptRow, problem: str, replies: list[str | None]) -> None:
        self._append("failed", [{"id": prompt.id, "prompt": prompt.prompt, "problem": problem, "replies": replies}])
        self._report.failed += 1


def _chunks(rows: list[PromptRow], size: int) -> Iterator[list[PromptRow]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _drop_rejections_without_row(out: Path, done: set[str]) -> None:
    """A kill between a prompt's rejected attachments and its row leaves rejections of a prompt the rerun asks
    again: drop them, so that the rerun's own are not listed twice."""
    path = rejected_path(out)
    records = [record for _, record in read_appended_jsonl(path)]
    kept = [record for record in records if str(record.get("id")) in done]
    if len(kept) < len(records):
        write_jsonl(kept, path)
