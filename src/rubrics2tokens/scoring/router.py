"""Route each rubric to a code verifier or to the LLM judge (method.md §6).

Modes:
    verifiers  code verifiers only; a rubric without a verifier id gets an unknown verdict
    judge      every rubric goes to the judge, even one that has a verifier
    hybrid     a rubric with a verifier id goes to its verifier, the others to the judge

All judge questions of one `score` call go out as one batch, so they run concurrently. A remote judge
(``judge.remote``, e.g. `LLMJudge`) gets that batch from a background thread while the code verifiers
check their rubrics: the verifiers' CPU work (IFEval checks, sandboxed dataset rules) hides inside the
judge's network wait, and a step pays about the longer of the two instead of their sum. Every rubric of every prompt gets a
verdict, however many there are. Judge verdicts carry no deciding spans.
A verifier id that is not registered raises `UnknownVerifierError` in every mode that runs verifiers:
quietly sending a mistyped id to the judge would change what is measured.

The judge of a run config (`build_judge`) is an `LLMJudge` of an OpenAI-compatible server, or, with
``scoring.judge.local_model``, a `LocalHFJudge` that answers in this process, in batches, without a server.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import torch

from rubrics2tokens.data.schema import Rubric
from rubrics2tokens.judge import Judge, JudgeConfig, JudgeQuestion, LLMJudge, LocalHFJudge
from rubrics2tokens.judge.stats import COUNTER_METRICS as JUDGE_COUNTER_METRICS
from rubrics2tokens.models.loading import load_policy
from rubrics2tokens.scoring.scorer import ScoredBatch
from rubrics2tokens.verifiers.base import Verdict
from rubrics2tokens.verifiers.registry import run_verifier

JUDGE_MODES = ("judge", "hybrid")
MODES = ("verifiers", *JUDGE_MODES)


COUNTER_METRICS = (*JUDGE_COUNTER_METRICS, "scoring/unverifiable")
"""The names in `RoutingScorer.stats` that count since the scorer was built (the trainer logs increments)."""


class RoutingScorer:
    """A `RubricScorer` that checks each rubric with its verifier or the judge, according to ``mode``."""

    def __init__(self, judge: Judge | None = None, mode: str = "hybrid"):
        if mode not in MODES:
            raise ValueError(f"unknown scoring mode {mode!r}; expected one of {', '.join(MODES)}")
        if mode in JUDGE_MODES and judge is None:
            raise ValueError(f"scoring mode {mode!r} sends rubrics to a judge, but no judge was given")
        self.judge = judge
        self.mode = mode
        self.unverifiable = 0  # rubrics left unknown because mode 'verifiers' has no judge for them
        # Only a remote judge is asked from a background thread: it waits on the network. A local model
        # judging in a second thread would compete for the same cores (and torch work in a second thread
        # measured a ~50% slower generation afterwards on a CPU).
        remote = getattr(judge, "remote", False)
        self._judge_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtt-judge") if remote else None

    def score(self, prompts: Sequence[str], responses: Sequence[str],
              rubrics: Sequence[Sequence[Rubric]]) -> ScoredBatch:
        judge_questions: list[JudgeQuestion] = []
        judge_slots: set[tuple[int, int]] = set()
        for i, (prompt, response, row) in enumerate(zip(prompts, responses, rubrics, strict=True)):
            for k, rubric in enumerate(row):
                if self._goes_to_judge(rubric):
                    judge_questions.append(JudgeQuestion(prompt, response, rubric.description))
                    judge_slots.add((i, k))
        pending = None
        if judge_questions and self._judge_thread is not None:
            pending = self._judge_thread.submit(self.judge.judge_batch, judge_questions)
        verdicts: list[list[Verdict | None]] = [
            [None if (i, k) in judge_slots else self._verify(rubric, response) for k, rubric in enumerate(row)]
            for i, (response, row) in enumerate(zip(responses, rubrics))]  # while a remote judge answers
        if judge_questions:
            answers = pending.result() if pending is not None else self.judge.judge_batch(judge_questions)
            for (i, k), passed in zip(sorted(judge_slots), answers, strict=True):
                verdicts[i][k] = Verdict(passed=passed, spans=None)
        return ScoredBatch.from_verdicts(verdicts, rubrics)

    def stats(self) -> dict[str, float]:
        """The judge's counters and latencies (`rubrics2tokens.judge.JudgeStats`) and ``scoring/unverifiable``;
        the names in `COUNTER_METRICS` are cumulative counts."""
        judge_stats = self.judge.stats() if self.judge is not None else {}
        return {**judge_stats, "scoring/unverifiable": float(self.unverifiable)}

    def _goes_to_judge(self, rubric: Rubric) -> bool:
        return self.mode == "judge" or (self.mode == "hybrid" and rubric.verifier is None)

    def _verify(self, rubric: Rubric, response: str) -> Verdict:
        if rubric.verifier is None:
            self.unverifiable += 1
            return Verdict.unknown()
        return run_verifier(rubric.verifier, response, rubric.kwargs)


def scorer_from_config(mode: str, judge_config: JudgeConfig | None = None,
                       device: torch.device | str | None = None) -> RoutingScorer:
    """A `RoutingScorer` for ``mode``, with the judge of ``judge_config`` (`build_judge`) when the mode needs one."""
    needs_judge = mode in JUDGE_MODES
    if needs_judge and judge_config is None:
        raise ValueError(f"scoring mode {mode!r} needs a judge configuration (base_url and model, or local_model)")
    return RoutingScorer(judge=build_judge(judge_config, device) if needs_judge else None, mode=mode)


def build_judge(config: JudgeConfig, device: torch.device | str | None = None) -> LLMJudge | LocalHFJudge:
    """The judge ``config`` names: its ``local_model`` loaded in this process on ``device`` (default: the GPU of
    this process when there is one, in bfloat16, else the CPU in float32), or an `LLMJudge` of its server."""
    if not config.local_model:
        return LLMJudge(config)
    if device is None:
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if torch.cuda.is_available() else "cpu"
    dtype = "float32" if torch.device(device).type == "cpu" else "bfloat16"
    model, tokenizer = load_policy(config.local_model, dtype=dtype)
    return LocalHFJudge(model.to(device).eval(), tokenizer, batch_size=config.local_batch_size,
                        max_new_tokens=config.max_tokens)
