"""Turn (prompt, response, rubrics) into a verdict matrix, and expose it to TRL as a reward function.

`RubricScorer` is the interface every verdict source implements (`scoring.router.RoutingScorer`
sends each rubric to its code verifier or to the LLM judge). `RubricReward` wraps a scorer as a TRL
reward function: TRL calls it with the batch's completions and dataset columns, it returns one
response reward per completion and keeps the full verdict matrix for the token-level term.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import torch

from rubrics2tokens.advantages import response_rewards
from rubrics2tokens.data.schema import Rubric, rubrics_from_json
from rubrics2tokens.verifiers.base import Span, Verdict

logger = logging.getLogger(__name__)


@dataclass
class ScoredBatch:
    """Verdicts for B responses with up to K rubrics each (rows padded to the longest rubric list).

    verdicts:       (B, K) float, 1 pass, 0 fail, NaN unknown or padding slot.
    rubric_weights: (B, K) float, the rubric importances (0 on padding slots).
    spans:          per row, per rubric: the deciding character spans, or None when not known.
    rubrics:        per row, the rubrics themselves (texts for a relevance model, families for logs).
    stops:          (B, K) bool, the verdict flags the stop (`Verdict.stop`); False on padding slots.
    """

    verdicts: torch.Tensor
    rubric_weights: torch.Tensor
    spans: list[list[tuple[Span, ...] | None]]
    rubrics: list[list[Rubric]]
    stops: torch.Tensor

    @property
    def families(self) -> list[list[str]]:
        return [[rubric.family for rubric in row] for row in self.rubrics]

    @classmethod
    def from_verdicts(cls, verdicts: Sequence[Sequence[Verdict]], rubrics: Sequence[Sequence[Rubric]]
                      ) -> "ScoredBatch":
        width = max((len(row) for row in rubrics), default=0)
        matrix = torch.full((len(rubrics), width), float("nan"))
        weights = torch.zeros((len(rubrics), width))
        stops = torch.zeros((len(rubrics), width), dtype=torch.bool)
        for i, (row_verdicts, row_rubrics) in enumerate(zip(verdicts, rubrics, strict=True)):
            for k, (verdict, rubric) in enumerate(zip(row_verdicts, row_rubrics, strict=True)):
                if verdict.passed is not None:
                    matrix[i, k] = float(verdict.passed)
                weights[i, k] = rubric.weight
                stops[i, k] = verdict.stop
        return cls(verdicts=matrix, rubric_weights=weights,
                   spans=[[v.spans for v in row] for row in verdicts],
                   rubrics=[list(row) for row in rubrics], stops=stops)


class RubricScorer(Protocol):
    """Checks every rubric of every response. ``responses[i]`` answers ``prompts[i]``."""

    def score(self, prompts: Sequence[str], responses: Sequence[str],
              rubrics: Sequence[Sequence[Rubric]]) -> ScoredBatch: ...


def completion_text(completion: Any) -> str:
    """TRL passes a completion as text, or (conversational data) as a list of messages."""
    if isinstance(completion, str):
        return completion
    return "".join(message["content"] for message in completion if message.get("role") == "assistant")


def prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    return next((m["content"] for m in reversed(prompt) if m["role"] == "user"), prompt[-1]["content"])


class RubricReward:
    """A TRL reward function: ``reward(prompts, completions, rubrics_json, ...) -> list[float]``.

    The dataset needs a ``rubrics_json`` column (`schema.rubrics_to_json`). The reward is AON or CSR
    of the known verdicts (None, i.e. unscorable, when no verdict is known). The scored batch of the
    last call stays in ``last`` for the token-level term.
    """

    __name__ = "rubrics"  # TRL names reward columns after the function

    def __init__(self, scorer: RubricScorer, aggregation: str = "aon"):
        self.scorer = scorer
        self.aggregation = aggregation
        self.last: ScoredBatch | None = None

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any],
                 rubrics_json: Sequence[str] | None = None, **_: Any) -> list[float | None]:
        if rubrics_json is None:
            raise ValueError("the training dataset needs a 'rubrics_json' column; build it with "
                             "rubrics2tokens.data.dataset.to_trl_dataset(rows)")
        rubrics = [rubrics_from_json(text) for text in rubrics_json]
        scored = self.scorer.score([prompt_text(p) for p in prompts], [completion_text(c) for c in completions],
                                   rubrics)
        self.last = scored
        rewards = response_rewards(scored.verdicts, self.aggregation, scored.rubric_weights)
        return [None if torch.isnan(r) else float(r) for r in rewards]
