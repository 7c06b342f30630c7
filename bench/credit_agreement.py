"""Credit agreement (issue 23 item 2): how far each relevance source's token credit is from the oracle's, on the
same testbed responses and verdicts, per partition, without any RL run.

    flock /tmp/rtt-heavy.lock env HF_HUB_OFFLINE=1 python bench/credit_agreement.py \\
        --relevance-model runs/relevance/minilm/best runs/relevance/smollm2/best --json docs/credit-agreement.json

Samples --group-size responses to each of --num-prompts testbed prompts (seed 1: prompts the relevance model
was not trained on) with the policy and the rollout decoder, scores them with the verifiers, and computes each
source's token advantages as the trainer does (`testbed_batch`: its weights, the trainer's credit mask,
`rtt_token_advantages` with --floor as ``token_std_floor``). Each is compared with the oracle's under the same
partition by `rubrics2tokens.relevance.agreement` (see its docstring for the definitions): the mean
per-response cosine of the token parts (the response-level part removed) over the responses where the oracle
gives token credit, the same without removing it, and the shares of the source's negative credit on
oracle-blamed tokens and of its positive credit on oracle-credited tokens. The oracle against itself is the
sanity row (cosine 1, shares 1). The `model` source runs when --relevance-model is a folder; contrast costs one
policy forward per (response, rubric).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

from testbed_batch import add_batch_options, sample_testbed_batch, source_weights, token_credit

from rubrics2tokens.relevance.agreement import credit_agreement, oracle_token_sets, summarize_agreement

SOURCES = ("oracle", "random", "shuffled", "contrast", "model")
PARTITIONS = ("intra_sample", "signed")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_batch_options(parser)
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    parser.add_argument("--partitions", nargs="+", default=list(PARTITIONS))
    parser.add_argument("--relevance-model", nargs="+", default=[],
                        help="folders of trained relevance models, for the model source (one row each, named "
                             "model:FOLDER, the folder above best/)")
    parser.add_argument("--threshold", type=float, default=0.5, help="relevance_threshold")
    parser.add_argument("--floor", type=float, default=0.01, help="token_std_floor")
    parser.add_argument("--json", type=Path, help="also write the table here")
    return parser.parse_args(argv)


def model_sources(folders: list[str]) -> dict[str, str]:
    """``model:NAME`` -> folder for each relevance model; NAME is the folder, or the one above a best/ or last/."""
    names = {}
    for folder in folders:
        path = Path(folder)
        names[f"model:{path.parent.name if path.name in ('best', 'last') else path.name}"] = folder
    return names


def agreement_table(batch, sources, partitions, seed, relevance_models=None, threshold=0.5, floor=0.01):
    """``{source: {partition: summarize_agreement(...)}}`` against the oracle, and each source's seconds.
    ``sources`` name `SOURCES` or ``model:NAME`` rows, whose folders ``relevance_models`` gives."""
    oracle_weights, oracle_mask = source_weights(batch, "oracle", seed)
    blamed, credited = oracle_token_sets(batch.scored.verdicts, oracle_weights, oracle_mask, threshold)
    oracle = {partition: token_credit(batch, oracle_weights, oracle_mask, partition, threshold, floor)
              for partition in partitions}
    table, timings = {}, {}
    for name in sources:
        start = time.perf_counter()
        weights, mask = ((oracle_weights, oracle_mask) if name == "oracle"
                         else source_weights(batch, name.split(":")[0], seed, (relevance_models or {}).get(name)))
        compared = mask | oracle_mask  # the oracle's credit mask adds a blamed stop token to the others'
        table[name] = {partition: summarize_agreement(credit_agreement(
            token_credit(batch, weights, mask, partition, threshold, floor), oracle[partition], blamed, credited,
            compared)) for partition in partitions}
        timings[name] = time.perf_counter() - start
    return table, timings


def format_table(table):
    lines = ["| source | partition | responses | cosine (token part) | raw cosine | negative credit on blamed "
             "| positive credit on credited |", "|---|---|---:|---:|---:|---:|---:|"]
    for name, partitions in table.items():
        for partition, r in partitions.items():
            cells = ["-" if math.isnan(r[key]) else f"{r[key]:.3f}"
                     for key in ("cosine", "raw_cosine", "negative_on_blamed", "positive_on_credited")]
            lines.append(f"| {name} | {partition} | {r['responses']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    models = model_sources(args.relevance_model)
    sources = [row for name in args.sources for row in (models if name == "model" else [name])]
    if "model" in args.sources and not models:
        print("model source skipped: no --relevance-model")
    load_at_start, start = os.getloadavg(), time.perf_counter()
    batch = sample_testbed_batch(args.policy, args.num_prompts, args.seed, args.group_size, args.max_new_tokens,
                                 args.regime)
    print(f"sampled {batch.describe()}, {time.perf_counter() - start:.0f} s", flush=True)
    table, timings = agreement_table(batch, sources, args.partitions, args.seed, models,
                                     args.threshold, args.floor)
    wall = time.perf_counter() - start
    print(format_table(table))
    print(f"\n{args.num_prompts} prompts x {args.group_size} responses, seed {args.seed}, token_std_floor "
          f"{args.floor}; wall {wall:.0f} s (per source: {', '.join(f'{n} {t:.0f} s' for n, t in timings.items())}); "
          f"load average at start {load_at_start[0]:.2f}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"table": table, "responses": batch.describe(), "wall_s": wall,
                                         "seconds_per_source": timings, "load_average_at_start": load_at_start[0],
                                         "settings": {k: str(v) for k, v in vars(args).items()}}, indent=2) + "\n")


if __name__ == "__main__":
    main()
