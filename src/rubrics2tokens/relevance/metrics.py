"""How good a relevance model is: token and span metrics, overall and per rubric family.

Every metric is computed on the response tokens of (rubric, response) pairs, the way the model is
used in RL (`RelevanceModel.predict`: all windows of a response, averaged), and micro-averaged:
counts are summed over all pairs of a group before dividing.

- **Token precision / recall / F1**: a token is predicted relevant when its relevance is above the
  model's threshold; gold labels are the verifier's spans mapped to tokens (`labels.token_labels`).
- **AUROC**: the chance that a random relevant token gets a higher relevance than a random irrelevant
  one (ties count half), from the ranks of all tokens (Mann-Whitney U); threshold-free.
- **Span precision / recall / F1**: a span is a maximal run of consecutive relevant tokens of one
  pair (gold: labelled 1; predicted: above the threshold). A predicted span matches a gold span of
  the same pair when their intersection over union, in tokens, is at least 0.5; matching is
  one-to-one, best IoU first. Precision = matched / predicted spans, recall = matched / gold spans.

A ratio with nothing to count (no predicted span, say) is 1: nothing was claimed, nothing was wrong.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Sequence

import torch

from rubrics2tokens.relevance.labels import LabelledPair, token_labels
from rubrics2tokens.relevance.model import RelevanceModel

MIN_SPAN_IOU = 0.5

Span = tuple[int, int]
"""Half-open token range ``[start, end)``."""


def label_runs(mask: torch.Tensor) -> list[Span]:
    """The maximal runs of True in a ``(N,)`` boolean mask, as ``[start, end)`` token ranges."""
    edges = torch.cat([torch.zeros(1), mask.float(), torch.zeros(1)]).diff()
    starts = (edges == 1).nonzero().flatten().tolist()
    ends = (edges == -1).nonzero().flatten().tolist()
    return list(zip(starts, ends))


def span_iou(a: Span, b: Span) -> float:
    overlap = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    return overlap / (max(a[1], b[1]) - min(a[0], b[0]))


def matched_spans(predicted: Sequence[Span], gold: Sequence[Span], min_iou: float = MIN_SPAN_IOU) -> int:
    """How many predicted spans match a gold span one-to-one (IoU >= ``min_iou``, best IoU first)."""
    candidates = sorted(((span_iou(p, g), i, j) for i, p in enumerate(predicted) for j, g in enumerate(gold)
                         if span_iou(p, g) >= min_iou), reverse=True)
    used_predicted, used_gold = set(), set()
    for _, i, j in candidates:
        if i not in used_predicted and j not in used_gold:
            used_predicted.add(i)
            used_gold.add(j)
    return len(used_predicted)


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Rank-based AUROC of ``(N,)`` scores against ``(N,)`` 0/1 labels; NaN when one class is absent."""
    positive = labels.bool()
    n_positive, n_negative = int(positive.sum()), int((~positive).sum())
    if n_positive == 0 or n_negative == 0:
        return math.nan
    # Tied scores share the average of the ranks they occupy.
    _, inverse, counts = torch.unique(scores.double(), return_inverse=True, return_counts=True)
    first_rank = counts.cumsum(0) - counts + 1
    ranks = (first_rank + (counts - 1) / 2)[inverse]
    u_statistic = ranks[positive].sum().item() - n_positive * (n_positive + 1) / 2
    return u_statistic / (n_positive * n_negative)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 1.0


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def summarize(predictions: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], threshold: float
              ) -> dict[str, Any]:
    """All metrics of one group of pairs: pair i has relevance ``predictions[i]`` ``(N_i,)`` and 0/1
    gold ``labels[i]`` ``(N_i,)``."""
    scores, gold = torch.cat(list(predictions)), torch.cat(list(labels)).bool()
    predicted = scores > threshold
    true_positives = int((predicted & gold).sum())
    token_precision = _ratio(true_positives, int(predicted.sum()))
    token_recall = _ratio(true_positives, int(gold.sum()))
    n_predicted_spans = n_gold_spans = n_matched = 0
    for pair_scores, pair_labels in zip(predictions, labels):
        predicted_spans, gold_spans = label_runs(pair_scores > threshold), label_runs(pair_labels.bool())
        n_predicted_spans += len(predicted_spans)
        n_gold_spans += len(gold_spans)
        n_matched += matched_spans(predicted_spans, gold_spans)
    span_precision, span_recall = _ratio(n_matched, n_predicted_spans), _ratio(n_matched, n_gold_spans)
    area = auroc(scores, gold)
    return {
        "pairs": len(labels), "tokens": len(gold), "positive_fraction": gold.float().mean().item(),
        "token_precision": token_precision, "token_recall": token_recall,
        "token_f1": _f1(token_precision, token_recall),
        "auroc": None if math.isnan(area) else area,
        "span_precision": span_precision, "span_recall": span_recall, "span_f1": _f1(span_precision, span_recall),
    }


def family_groups(predictions: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], families: Sequence[str]
                  ) -> dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """family -> (predictions, labels) of its pairs, families sorted."""
    members: dict[str, list[int]] = defaultdict(list)
    for index, family in enumerate(families):
        members[family].append(index)
    return {family: ([predictions[i] for i in indices], [labels[i] for i in indices])
            for family, indices in sorted(members.items())}


def relevance_report(predictions: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], families: Sequence[str],
                     threshold: float) -> dict[str, Any]:
    """``{"threshold", "overall": metrics, "families": {family: metrics}}`` (see `summarize`)."""
    return {
        "threshold": threshold,
        "overall": summarize(predictions, labels, threshold),
        "families": {family: summarize(*group, threshold)
                     for family, group in family_groups(predictions, labels, families).items()},
    }


@torch.no_grad()
def predict_pairs(model: RelevanceModel, pairs: Sequence[LabelledPair], batch_size: int = 64
                  ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(predictions, labels): pair i's relevance ``(N_i,)`` and its 0/1 gold labels ``(N_i,)`` on the model's
    response tokens. All rubrics of a response go in one request, as at RL time."""
    rubrics_of: dict[str, list[int]] = defaultdict(list)  # response -> indices of its pairs
    for index, pair in enumerate(pairs):
        rubrics_of[pair.response].append(index)
    requests = [([pairs[i].rubric for i in indices], model.tokenize_response(response)[0],
                 [pairs[i].verdict for i in indices]) for response, indices in rubrics_of.items()]
    predictions: list[torch.Tensor] = [torch.empty(0)] * len(pairs)
    for relevance, indices in zip(model.predict(requests, batch_size), rubrics_of.values()):
        for row, index in enumerate(indices):
            predictions[index] = relevance[row]
    return predictions, [token_labels(model, pair)[1] for pair in pairs]


def evaluate_model(model: RelevanceModel, pairs: Sequence[LabelledPair], batch_size: int = 64) -> dict[str, Any]:
    """Run the model on every pair and report its metrics at the model's threshold."""
    predictions, labels = predict_pairs(model, pairs, batch_size)
    return relevance_report(predictions, labels, [pair.family for pair in pairs], model.config.threshold)


COLUMNS = (("pairs", "pairs", "{:d}"), ("tokens", "tokens", "{:d}"), ("positive_fraction", "pos", "{:.2f}"),
           ("token_precision", "tok P", "{:.3f}"), ("token_recall", "tok R", "{:.3f}"), ("token_f1", "tok F1", "{:.3f}"),
           ("auroc", "AUROC", "{:.3f}"), ("span_precision", "span P", "{:.3f}"),
           ("span_recall", "span R", "{:.3f}"), ("span_f1", "span F1", "{:.3f}"))


def format_report(report: dict[str, Any]) -> str:
    """The report as a text table: one line per family, then the overall line."""
    rows = [*report["families"].items(), ("overall", report["overall"])]
    name_width = max(len(name) for name, _ in rows)
    header = " ".join([f"{'family':<{name_width}}", *(f"{title:>8}" for _, title, _ in COLUMNS)])
    lines = [header, "-" * len(header)]
    for name, metrics in rows:
        cells = ["-" if metrics[key] is None else form.format(metrics[key]) for key, _, form in COLUMNS]
        lines.append(" ".join([f"{name:<{name_width}}", *(f"{cell:>8}" for cell in cells)]))
    lines.insert(len(lines) - 1, "-" * len(header))
    return f"threshold {report['threshold']}\n" + "\n".join(lines)
