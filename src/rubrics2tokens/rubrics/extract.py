"""Model-free rubric extraction: the constraints a prompt's own wording states in a form IFEval's checkers know
("Do not use any commas", "at least 300 words", "End your response with "..."", "wrap your entire response in
double quotation marks"), each as a rubric with its verifier and arguments, weight 1.

It is deterministic and needs no model, so the verifiable part of a prompt file gets its rubrics offline. The
rules are one finder per instruction id (`rules_wording`, `rules_keywords`, `rules_format`); every attachment
they produce still passes `attachment_problem`, so a rule that reads a prompt wrongly into an argument its
checker cannot use drops that rubric (with a warning) instead of writing it. docs/rubrics.md measures the rules
on IFEval.
"""

from __future__ import annotations

import logging

from rubrics2tokens.data.schema import Rubric
from rubrics2tokens.rubrics import rules_format, rules_keywords, rules_wording
from rubrics2tokens.rubrics.attach import attachment_problem
from rubrics2tokens.rubrics.descriptions import describe
from rubrics2tokens.rubrics.rules_keywords import Finder

logger = logging.getLogger(__name__)

RULES: dict[str, Finder] = {**rules_wording.RULES, **rules_keywords.RULES, **rules_format.RULES}
"""Verifier id -> the finder of its constraints in a prompt's wording."""

EXTRACTED_WEIGHT = 1.0


def extract_rubrics(prompt: str) -> list[Rubric]:
    """The rubrics the wording of ``prompt`` states, in `RULES` order, each verifier and arguments once."""
    rubrics: list[Rubric] = []
    for verifier, find in RULES.items():
        for kwargs in find(prompt):
            rubric = Rubric(description=describe(verifier, kwargs), verifier=verifier, kwargs=kwargs,
                            weight=EXTRACTED_WEIGHT)
            if rubric in rubrics:
                continue
            problem = attachment_problem(verifier, kwargs)
            if problem is not None:
                logger.warning("extraction dropped a rubric its checker cannot hold: %s", problem)
                continue
            rubrics.append(rubric)
    return rubrics
