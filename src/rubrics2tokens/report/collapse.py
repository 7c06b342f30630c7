"""The collapse criterion: when a run's held-out answers have degenerated, so its variant cannot count as a winner.

Stated in docs/study.md ("The intra study") before the runs it judges, from the two hacks 90-step testbed runs
found (docs/testbed.md §4: answers shrinking from 113 to 29 tokens; lowercase repetition with entropy falling from
3.13 to 1.07 and 80% of answers at the length limit) and the collapse of docs/testbed.md §3. A run is degenerate
when, at any held-out evaluation after its first, one of these holds (means over prompts, as the report's table):

- entropy: the mean next-token entropy of its answers is below `ENTROPY_FLOOR` (the base policy: 3.1);
- repetition: more than `REPETITION_MAX` of its answers repeat themselves: a distinct-word ratio below
  `REPEATED_WORDS_RATIO` or a sentence or line said twice (the testbed's own checks, whether or not the
  prompt asked for them; 1% of the base policy's answers do either);
- truncation: the share of answers cut at the length limit is above `TRUNCATION_FLOOR` and more than
  `TRUNCATION_RISE` above the run's first evaluation;
- shrinking: the mean answer length is below `SHRINK_FRACTION` of the run's first evaluation.
"""

from __future__ import annotations

from typing import Any

from rubrics2tokens.report.runs import RunFolder
from rubrics2tokens.verifiers.rules import check_distinct_words, check_no_repeated_sentences

ENTROPY_FLOOR = 2.0
REPETITION_MAX = 0.10
REPEATED_WORDS_RATIO = 0.5
TRUNCATION_FLOOR = 0.5
TRUNCATION_RISE = 0.10
SHRINK_FRACTION = 0.5


def repeats_itself(text: str) -> bool:
    """An answer with too few distinct words (none at all included) or a sentence or line said twice."""
    return (not check_distinct_words(text, min_ratio=REPEATED_WORDS_RATIO).passed
            or not check_no_repeated_sentences(text).passed)


def repetition_share(rows: list[dict[str, Any]]) -> float:
    """The share of held-out answers (rows with their ``text``) that repeat themselves."""
    texts = [row["text"] for row in rows if isinstance(row.get("text"), str)]
    return sum(repeats_itself(text) for text in texts) / len(texts) if texts else 0.0


def degeneration(first: dict[str, float], later: dict[str, float], repetition: float) -> list[str]:
    """The criteria (module docstring) an evaluation meets; ``first`` and ``later``: the run's held-out means
    (length, truncated, entropy) at its first evaluation and at a later one; ``repetition``: `repetition_share`."""
    reasons = []
    if later.get("entropy", ENTROPY_FLOOR) < ENTROPY_FLOOR:
        reasons.append(f"entropy {later['entropy']:.2f} < {ENTROPY_FLOOR}")
    if repetition > REPETITION_MAX:
        reasons.append(f"{repetition:.0%} of answers repeat themselves (> {REPETITION_MAX:.0%})")
    truncated, first_truncated = later.get("truncated", 0.0), first.get("truncated", 0.0)
    if truncated > TRUNCATION_FLOOR and truncated > first_truncated + TRUNCATION_RISE:
        reasons.append(f"truncated {truncated:.2f} (first {first_truncated:.2f})")
    if "length" in first and later.get("length", first["length"]) < SHRINK_FRACTION * first["length"]:
        reasons.append(f"length {later['length']:.0f} < {SHRINK_FRACTION:.0%} of the first {first['length']:.0f}")
    return reasons


def run_degeneration(run: RunFolder) -> dict[int, list[str]]:
    """Held-out step -> the criteria met there, for every evaluation after the run's first that meets one."""
    if len(run.heldout_steps) < 2:
        return {}
    first = run.heldout_means[run.heldout_steps[0]]
    found = {}
    for step in run.heldout_steps[1:]:
        reasons = degeneration(first, run.heldout_means[step], repetition_share(run.heldout_rows(step)))
        if reasons:
            found[step] = reasons
    return found
