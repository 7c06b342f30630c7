"""Would a per-family threshold lift a relevance model's span F1? (issue 23 item 1: labels, layout, window or
threshold, which one holds the count families back?)

    python bench/relevance_thresholds.py configs/relevance_smollm2.yaml --model runs/relevance/smollm2/best \
        --test runs/relevance/test3000/test.jsonl --json docs/relevance-thresholds.json

The thresholds are chosen on the pairs the training run held out (its config's ``eval_fraction`` and ``seed``:
the split its ``best/`` checkpoint was picked on) and scored on ``--test``, label pairs of other prompts (only
the families the model was trained on), so no threshold is tuned on the pairs it is scored on. Per family: span
F1 on the test pairs at the model's own threshold (0.5), at the one threshold best overall on the held-out split,
and at the family's own best one there (the overall one for a family with fewer than `MIN_TUNING_PAIRS` held-out
pairs).
Config overrides (``key=value``) go after the config, as for ``rtt relevance train``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rubrics2tokens.relevance.labels import load_labels
from rubrics2tokens.relevance.metrics import family_groups, predict_pairs, summarize
from rubrics2tokens.relevance.model import RelevanceModel
from rubrics2tokens.relevance.training.config import load_training_config
from rubrics2tokens.relevance.training.data import load_pairs

GRID = [round(0.05 * step, 2) for step in range(1, 20)]  # 0.05 ... 0.95
MIN_TUNING_PAIRS = 10  # a family with fewer held-out pairs takes the overall threshold (one pair would decide it)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="the relevance training config the model was trained with")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of that config, as it was trained")
    parser.add_argument("--model", required=True, help="the trained model's folder (e.g. its best/)")
    parser.add_argument("--test", required=True, type=Path, help="label JSONL of prompts the model never saw")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the table here")
    return parser.parse_args(argv)


def by_family(pairs, predictions, labels):
    """family -> (predictions, labels) of its pairs, plus "overall" -> all of them."""
    return {"overall": (predictions, labels), **family_groups(predictions, labels, [pair.family for pair in pairs])}


def span_f1(group, threshold: float) -> float:
    return summarize(*group, threshold)["span_f1"]


def best_threshold(group) -> float:
    """The grid threshold with the highest span F1 (ties: the one nearest 0.5)."""
    return max(GRID, key=lambda threshold: (span_f1(group, threshold), -abs(threshold - 0.5)))


def main(argv=None):
    args = parse_args(argv)
    model = RelevanceModel.load(args.model).to_inference()
    trained, held_out = load_pairs(load_training_config(args.config, args.overrides))
    trained_families = {pair.family for pair in [*trained, *held_out]}
    test = [pair for pair in load_labels(args.test) if pair.family in trained_families]
    print(f"{len(test)} test pairs of the {len(trained_families)} families the model was trained on")
    shared = {pair.prompt_id for pair in [*trained, *held_out]} & {pair.prompt_id for pair in test}
    if shared:
        raise SystemExit(f"{args.test} shares {len(shared)} prompt id(s) with the model's training file: label "
                         "prompts of a testbed seed it was not trained on")
    tuning = by_family(held_out, *predict_pairs(model, held_out, args.batch_size))
    scored = by_family(test, *predict_pairs(model, test, args.batch_size))
    overall = best_threshold(tuning["overall"])
    rows = {}
    for family, group in scored.items():
        tuned_pairs = len(tuning[family][0]) if family in tuning else 0
        own = best_threshold(tuning[family]) if tuned_pairs >= MIN_TUNING_PAIRS else overall
        rows[family] = {"held_out_pairs": tuned_pairs,
                        "test_pairs": len(group[0]), "auroc": summarize(*group, 0.5)["auroc"],
                        "span_f1_model": span_f1(group, model.config.threshold),
                        "overall_threshold": overall, "span_f1_overall_threshold": span_f1(group, overall),
                        "family_threshold": own, "span_f1_family_threshold": span_f1(group, own)}
    print(f"{'family':<32} {'tuned':>5} {'test':>5} {'AUROC':>6} {'F1@' + str(model.config.threshold):>7} "
          f"{'F1@' + str(overall):>7} {'own t':>5} {'F1@own':>7}")
    for family, row in rows.items():
        auroc = "-" if row["auroc"] is None else f"{row['auroc']:.3f}"
        print(f"{family:<32} {row['held_out_pairs']:>5} {row['test_pairs']:>5} {auroc:>6} "
              f"{row['span_f1_model']:>7.3f} {row['span_f1_overall_threshold']:>7.3f} "
              f"{row['family_threshold']:>5.2f} {row['span_f1_family_threshold']:>7.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": args.model, "test": str(args.test), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
