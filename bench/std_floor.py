"""What `training.token_std_floor` changes, per relevance source and partition, on testbed responses (issue 20).

    flock /tmp/rtt-heavy.lock env HF_HUB_OFFLINE=1 python bench/std_floor.py
    python bench/std_floor.py --num-prompts 64 --group-size 4 --floors 0.05 0.01 \\
        --relevance-model runs/relevance/minilm/best --json runs/relevance/std-floor.json

Samples --group-size responses to each of --num-prompts testbed prompts (``generate_rows(N, seed)``; seed 1:
prompts the relevance model was not trained on) with the policy and the RL rollout decoder, scores them
with the verifiers (``RoutingScorer(mode="verifiers")``), and gets each source's weights (oracle, random,
model, contrast) as the trainer does. The token mask is the trainer's (`credit_mask` under the default
``zero_special_tokens``), and a row that flags nothing leaves the average, as in `rtt_token_advantages`.

A z-score divides by max(std, floor), so the floor changes exactly the sets whose population std lies in
(0, floor) (a set of equal values gives 0 either way), and shrinks their credit by std / floor. Each of
--floors is measured on the same responses and weights. Counted over
the sets that reach some token's credit (a set of rows that all flag nothing does not):

- ``intra_sample``: one set per (response, rubric) row that flags something;
- ``inter_sample``: one per (group, rubric), the rows with a known verdict, if one of them flags something;
- ``group_pooled``: one per group, the rubric-averaged rows of the responses with a flagging rubric;
- ``rubric_softmax``: one per (group, rubric): the verdict signs (+1/-1) of the group's rows.

Columns: sets; of them, std 0 (credit 0 either way); damped (0 < std < floor) and their share; the median
and smallest std / floor of the damped sets; the responses whose token advantages change with the floor
(from `rtt_token_advantages` itself without a floor and with it: a check of the set count, it must equal the
responses holding a damped set); and the token-credit mass kept, sum |A_tok| with the floor over sum |A_tok|
without one. Last, for the oracle: how many tokens its flagging rows flag, which says at what response
length a 0/1 row would fall under each floor (f flagged tokens of n: std = sqrt(f/n (1 - f/n)), below 0.05
once n > 399 f, below 0.01 once n > 9999 f).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from testbed_batch import add_batch_options, sample_testbed_batch, source_weights, token_credit


SOURCES = ("oracle", "random", "model", "contrast")
PARTITIONS = ("intra_sample", "inter_sample", "group_pooled", "rubric_softmax")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_batch_options(parser)
    parser.add_argument("--relevance-model", default="runs/relevance/minilm/best", help="for the model source")
    parser.add_argument("--floors", type=float, nargs="+", default=[0.05, 0.01], help="token_std_floor values")
    parser.add_argument("--threshold", type=float, default=0.5, help="relevance_threshold")
    parser.add_argument("--json", type=Path, help="also write the table here")
    return parser.parse_args(argv)


def z_score_sets(partition, signs, weights, valid, rubric_w, group_size):
    """``[(population std, responses whose credit it reaches)]`` for the sets of ``partition`` that take part
    (see the module docstring). signs (B, K) +1/-1/0 unknown; weights (B, K, T); valid (B, T) bool;
    rubric_w (B, K) averaging weights, 0 for a row that flags nothing."""
    batch, width, _ = weights.shape
    groups = [range(start, start + group_size) for start in range(0, batch, group_size)]
    sets = []
    if partition == "intra_sample":
        for i in range(batch):
            sets += [(weights[i, k][valid[i]], {i}) for k in range(width) if rubric_w[i, k] > 0]
    elif partition in ("inter_sample", "rubric_softmax"):
        for group in groups:
            for k in range(width):
                members = [i for i in group if signs[i, k] != 0]
                reached = {i for i in members if rubric_w[i, k] > 0}
                if not reached:
                    continue
                if partition == "inter_sample":
                    values = torch.cat([signs[i, k] * weights[i, k][valid[i]] for i in members])
                else:
                    values = signs[members, k]
                sets.append((values, reached))
    else:  # group_pooled
        total = rubric_w.sum(dim=1)
        pooled = torch.einsum("bkt,bk->bt", weights, rubric_w * signs) / total.clamp(min=1e-12)[:, None]
        for group in groups:
            members = [i for i in group if total[i] > 0]
            if members:
                sets.append((torch.cat([pooled[i][valid[i]] for i in members]), set(members)))
    return [(values.double().std(unbiased=False).item(), rows) for values, rows in sets if values.numel()]


def measure(batch, weights, token_mask, args):
    """``{partition: {floor: figures}}`` for one source's weights, and its (B, K) rows that flag a token."""
    scored = batch.scored
    signs = (2 * scored.verdicts - 1).nan_to_num(0.0)
    # As rtt_token_advantages: a row flagging no token of the mask leaves the average over rubrics.
    flags = ((weights > args.threshold) & token_mask[:, None, :]).any(dim=-1)
    rubric_w = scored.rubric_weights.masked_fill(~flags, 0.0)
    results = {}
    for partition in PARTITIONS:
        sets = z_score_sets(partition, signs, weights.nan_to_num(0.0), token_mask, rubric_w, args.group_size)
        advantages = {floor: token_credit(batch, weights, token_mask, partition, args.threshold, floor)
                      for floor in (0.0, *args.floors)}
        results[partition] = {}
        for floor in args.floors:
            damped = [(std, rows) for std, rows in sets if 0 < std < floor]
            changed = ((advantages[0.0] - advantages[floor]).abs() > 1e-6).any(dim=1)
            ratios = [std / floor for std, _ in damped]
            results[partition][floor] = {
                "sets": len(sets), "std_zero": sum(std == 0 for std, _ in sets), "damped": len(damped),
                "damped_share": len(damped) / len(sets) if sets else 0.0,
                "median_ratio": statistics.median(ratios) if ratios else None, "min_ratio": min(ratios, default=None),
                "responses_changed": int(changed.sum()),
                "responses_with_damped_set": len(set().union(*(rows for _, rows in damped))),
                "credit_kept": (advantages[floor].abs().sum() / advantages[0.0].abs().sum()).item(),
            }
    return results, flags


def main(argv=None):
    args = parse_args(argv)
    load_at_start, start = os.getloadavg(), time.perf_counter()
    batch = sample_testbed_batch(args.policy, args.num_prompts, args.seed, args.group_size, args.max_new_tokens,
                                 args.regime)
    print(f"sampled {batch.describe()}, {time.perf_counter() - start:.0f} s", flush=True)

    table, timings = {}, {}
    for name in SOURCES:
        source_start = time.perf_counter()
        weights, token_mask = source_weights(batch, name, args.seed, args.relevance_model)
        table[name], flags = measure(batch, weights, token_mask, args)
        timings[name] = time.perf_counter() - source_start
        if name == "oracle":
            flagged = ((weights > args.threshold) & token_mask[:, None, :]).sum(dim=-1)[flags].tolist()
        print(f"{name}: {timings[name]:.0f} s", flush=True)

    wall = time.perf_counter() - start
    print(format_table(table))
    print(oracle_counts(flagged, args.floors))
    print(f"\n{args.num_prompts} prompts x {args.group_size} responses, floors {args.floors}; wall {wall:.0f} s "
          f"(per source: {', '.join(f'{n} {t:.0f} s' for n, t in timings.items())}); load average at start "
          f"{load_at_start[0]:.2f}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"table": table, "oracle_flagged_tokens": flagged, "wall_s": wall,
                                         "load_average_at_start": load_at_start[0]}, indent=2))


def format_table(table):
    lines = ["", "| source | partition | floor | sets | std 0 | damped (0 < std < floor) | median / min std/floor "
                 "| responses changed (check) | credit kept |", "|---|---|---:|---:|---:|---:|---|---|---:|"]
    for name, partitions in table.items():
        for partition, floors in partitions.items():
            for floor, r in floors.items():
                ratio = "-" if r["median_ratio"] is None else f"{r['median_ratio']:.2f} / {r['min_ratio']:.2f}"
                lines.append(f"| {name} | {partition} | {floor} | {r['sets']} | {r['std_zero']} | {r['damped']} "
                             f"({r['damped_share']:.1%}) | {ratio} | {r['responses_changed']} "
                             f"({r['responses_with_damped_set']}) | {r['credit_kept']:.3f} |")
    return "\n".join(lines)


def oracle_counts(flagged, floors):
    """How many tokens the oracle's flagging rows flag, binned, with the response length past which a 0/1 row
    with the bin's fewest flagged tokens falls under each floor: f of n tokens has std sqrt(p (1 - p)), p = f / n,
    below the floor once p < (1 - sqrt(1 - 4 floor^2)) / 2."""
    per_token = [1 / ((1 - (1 - 4 * floor ** 2) ** 0.5) / 2) for floor in floors]  # 399 for 0.05, 9999 for 0.01
    bins = (("1", 1, 1), ("2-4", 2, 4), ("5-10", 5, 10), (">10", 11, float("inf")))
    cells = []
    for name, low, high in bins:
        count = sum(low <= f <= high for f in flagged)
        past = " / ".join(f"{round(tokens * low)}" for tokens in per_token)
        cells.append(f"{name}: {count} ({count / len(flagged):.0%}, damped past {past} tokens)")
    return (f"\noracle rows that flag something: {len(flagged)}; median {statistics.median(flagged):g} flagged "
            f"tokens; rows by flagged tokens (damped past, for floors {' / '.join(map(str, floors))}): "
            f"{', '.join(cells)}")


if __name__ == "__main__":
    main()
