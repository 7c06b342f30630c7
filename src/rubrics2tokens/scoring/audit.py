"""``rtt judge audit``'s data side: the rubric questions whose answer a code verifier knows, and the audit run.

Every rubric with a verifier id, on every response of its row, becomes one judge question labelled with the
verifier's verdict; a pair the verifier cannot decide (it gave an unknown verdict, e.g. a dataset rule while
dataset code is not allowed) is left out and counted as ``undecided``. The judge is asked exactly what
`RoutingScorer` would ask it in training (the row's last user turn as the instruction), so the audit measures
the judge a run would use. The counting is `rubrics2tokens.judge.audit`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from rubrics2tokens.data.schema import DataError, PromptRow, read_jsonl
from rubrics2tokens.judge.audit import agreement_report, ask_in_chunks, cost_report
from rubrics2tokens.judge.client import Judge
from rubrics2tokens.judge.prompt import JudgeQuestion
from rubrics2tokens.verifiers.registry import run_verifier

RESPONSE_ID_FIELDS = ("id", "key")
"""The field of a responses line naming its row: ``id``, or ``key`` as `rtt eval run` and ``--policy`` write it."""


class NothingToAudit(ValueError):
    """No rubric of the rows has a code verifier that decides it on the responses given."""


@dataclass(frozen=True)
class LabelledQuestion:
    """A judge question and the answer its code verifier gave."""

    question: JudgeQuestion
    verifier_id: str
    verifier_passed: bool


def read_responses(path: str | Path, rows_by_id: dict[str, PromptRow]) -> list[tuple[PromptRow, str]]:
    """(row, response) for every line of a responses JSONL of ``{"id", "response"}`` lines (several per row
    allowed); a bad line is a `DataError` naming the file, the line and the field."""
    pairs = []
    for number, line in read_jsonl(path):
        field = next((name for name in RESPONSE_ID_FIELDS if name in line), None)
        if field is None:
            raise DataError(path, number, "id", "missing: each line needs the 'id' of the row it answers")
        row = rows_by_id.get(str(line[field]))
        if row is None:
            raise DataError(path, number, field, f"{line[field]!r} is not the id of any row in the rows file")
        if not isinstance(line.get("response"), str):
            raise DataError(path, number, "response", f"must be a string, got {line.get('response')!r}")
        pairs.append((row, line["response"]))
    if not pairs:
        raise DataError(path, 0, "<file>", "no responses")
    return pairs


def labelled_questions(pairs: Sequence[tuple[PromptRow, str]]) -> tuple[list[LabelledQuestion], int]:
    """The questions of every verifier rubric on every response, and how many pairs the verifier left undecided."""
    labelled, undecided = [], 0
    for row, response in pairs:
        for rubric in row.rubrics:
            if rubric.verifier is None:
                continue
            passed = run_verifier(rubric.verifier, response, rubric.kwargs).passed
            if passed is None:
                undecided += 1
                continue
            labelled.append(LabelledQuestion(JudgeQuestion(row.prompt, response, rubric.description),
                                             rubric.verifier, passed))
    return labelled, undecided


def run_audit(judge: Judge, pairs: Sequence[tuple[PromptRow, str]], chunk_size: int = 128,
              progress: Callable[[int, int], None] = lambda answered, total: None) -> dict[str, Any]:
    """The audit of ``judge`` on the (row, response) pairs: ``overall`` and ``by_verifier`` agreement figures
    (`rubrics2tokens.judge.audit`), the judge's cost, and the sizes; `NothingToAudit` when no rubric of the
    rows has a verifier that decides it."""
    labelled, undecided = labelled_questions(pairs)
    if not labelled:
        raise NothingToAudit("no rubric of these rows has a code verifier that decides it on these responses: "
                         "nothing to audit the judge against")
    start = time.perf_counter()
    verdicts = ask_in_chunks(judge, [item.question for item in labelled], chunk_size, progress)
    wall_s = time.perf_counter() - start
    report = agreement_report([item.verifier_id for item in labelled],
                              [item.verifier_passed for item in labelled], verdicts)
    return {**report, "judge_cost": cost_report(judge.stats()), "judge_wall_s": wall_s,
            "responses": len(pairs), "rows_answered": len({row.id for row, _ in pairs}),
            "questions": len(labelled), "undecided": undecided}
