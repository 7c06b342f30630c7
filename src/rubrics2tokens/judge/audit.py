"""How far a judge agrees with the code verifiers: the counting behind ``rtt judge audit``.

The audit asks the judge rubric questions whose answer a code verifier knows and compares the two per question.
Here are the pieces that know nothing of rows or verifiers (`rubrics2tokens.scoring.audit` builds the labelled
questions): the agreement counts of one group of questions and their figures, the judge's cost figures from its
`JudgeStats`, and the report as text.

How an unknown verdict (a reply that is neither YES nor NO, or none at all) counts: ``unknown`` is its share of
all questions; ``accuracy``, ``kappa``, ``false_pass`` and ``false_fail`` are computed over the answered questions
only, so a judge that rarely answers is not scored on its silences twice. A figure without a denominator (no
answered question, no verifier fail for ``false_pass``...) is ``None``, as is ``kappa`` when chance agreement is
certain (judge and verifiers both constant and equal).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from rubrics2tokens.judge.client import Judge
from rubrics2tokens.judge.prompt import JudgeQuestion

FIGURES = ("n", "accuracy", "kappa", "false_pass", "false_fail", "unknown")
"""The agreement figures of one group of questions, in the order the report shows them."""


@dataclass
class Agreement:
    """The 2x3 table of one group of questions: judge YES / NO / unknown against verifier pass / fail."""

    yes_pass: int = 0
    yes_fail: int = 0
    no_pass: int = 0
    no_fail: int = 0
    unknown_pass: int = 0
    unknown_fail: int = 0

    def add(self, verifier_passed: bool, verdict: bool | None) -> None:
        judge = "unknown" if verdict is None else "yes" if verdict else "no"
        name = f"{judge}_{'pass' if verifier_passed else 'fail'}"
        setattr(self, name, getattr(self, name) + 1)

    def figures(self) -> dict[str, Any]:
        """``FIGURES`` plus ``answered`` and the table itself (``counts``)."""
        answered_pass, answered_fail = self.yes_pass + self.no_pass, self.yes_fail + self.no_fail
        answered = answered_pass + answered_fail
        unknown = self.unknown_pass + self.unknown_fail
        n = answered + unknown
        return {"n": n,
                "accuracy": _share(self.yes_pass + self.no_fail, answered),
                "kappa": self.kappa(),
                "false_pass": _share(self.yes_fail, answered_fail),
                "false_fail": _share(self.no_pass, answered_pass),
                "unknown": _share(unknown, n),
                "answered": answered,
                "counts": {name: getattr(self, name) for name in self.__dataclass_fields__}}

    def kappa(self) -> float | None:
        """Cohen's kappa of the answered questions, from whole counts so that exact cases come out exact:
        (N·agree - E) / (N² - E) with E = yes·pass + no·fail, the agreement chance alone would give, times N."""
        answered = self.yes_pass + self.yes_fail + self.no_pass + self.no_fail
        judge_yes, verifier_pass = self.yes_pass + self.yes_fail, self.yes_pass + self.no_pass
        chance = judge_yes * verifier_pass + (answered - judge_yes) * (answered - verifier_pass)
        if answered == 0 or chance == answered * answered:
            return None
        return (answered * (self.yes_pass + self.no_fail) - chance) / (answered * answered - chance)


def _share(count: int, total: int) -> float | None:
    return count / total if total else None


def agreement_report(verifier_ids: Sequence[str], verifier_passed: Sequence[bool],
                     verdicts: Sequence[bool | None]) -> dict[str, Any]:
    """``{"overall": figures, "by_verifier": {verifier id: figures}}`` of questions given as three aligned lists:
    the verifier that knows each answer, its verdict, and the judge's verdict."""
    overall, by_verifier = Agreement(), defaultdict(Agreement)
    for verifier_id, passed, verdict in zip(verifier_ids, verifier_passed, verdicts, strict=True):
        overall.add(passed, verdict)
        by_verifier[verifier_id].add(passed, verdict)
    return {"overall": overall.figures(),
            "by_verifier": {name: by_verifier[name].figures() for name in sorted(by_verifier)}}


def cost_report(stats: dict[str, float]) -> dict[str, Any]:
    """What the judge spent, from its `JudgeStats`: requests (a local judge: questions generated), retries,
    questions left without a reply, latency percentiles (a local judge: per batched generation), and tokens;
    the token counts are ``None`` when no reply reported them, and ``usage_complete`` says whether all did."""
    tokens = {"prompt": int(stats["judge/prompt_tokens"]), "completion": int(stats["judge/completion_tokens"])}
    metered = sum(tokens.values()) > 0  # a reply that reports usage reports its prompt's tokens at least
    return {"requests": int(stats["judge/calls"]), "retries": int(stats["judge/retries"]),
            "failures": int(stats["judge/failures"]),
            "latency_s": {f"p{percent}": stats[f"judge/latency_p{percent}_s"] for percent in (50, 90, 99)},
            "tokens": tokens if metered else None, "usage_complete": stats["judge/replies_without_usage"] == 0}


def ask_in_chunks(judge: Judge, questions: Sequence[JudgeQuestion], chunk_size: int,
                  progress: Callable[[int, int], None] = lambda answered, total: None) -> list[bool | None]:
    """The judge's verdicts on ``questions``, asked ``chunk_size`` at a time so that progress can be shown
    (``progress`` gets the questions answered so far and their total, before the first chunk and after each)."""
    verdicts: list[bool | None] = []
    progress(0, len(questions))
    for start in range(0, len(questions), chunk_size):
        verdicts.extend(judge.judge_batch(questions[start:start + chunk_size]))
        progress(len(verdicts), len(questions))
    return verdicts


def format_report(report: dict[str, Any]) -> str:
    """The audit as a table (overall first, then one line per verifier) and the judge's cost."""

    def cell(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    width = max(len("overall"), *(len(name) for name in report["by_verifier"]))
    lines = [f"{'':{width}s}  " + "  ".join(f"{name:>10s}" for name in FIGURES)]
    groups: Iterable[tuple[str, dict]] = [("overall", report["overall"]), *report["by_verifier"].items()]
    for name, figures in groups:
        lines.append(f"{name:{width}s}  " + "  ".join(f"{cell(figures[key]):>10s}" for key in FIGURES))
    cost = report["judge_cost"]
    latency = cost["latency_s"]
    lines.append(f"judge: {cost['requests']} requests, {cost['retries']} retries, {cost['failures']} without reply; "
                 f"latency p50 {latency['p50']:.3f}s p90 {latency['p90']:.3f}s p99 {latency['p99']:.3f}s")
    if cost["tokens"] is None:
        lines.append("tokens: not reported (no reply of the server carried usage)")
    else:
        partial = "" if cost["usage_complete"] else " (some replies carried no usage: a lower bound)"
        lines.append(f"tokens: {cost['tokens']['prompt']} prompt, {cost['tokens']['completion']} completion{partial}")
    return "\n".join(lines)
