"""`contrast` relevance against the held-out labels: verdict-blind and verdict-aware weights (issue 20).

    flock /tmp/rtt-heavy.lock env HF_HUB_OFFLINE=1 python bench/contrast_labels.py
    python bench/contrast_labels.py --labels runs/relevance/test.jsonl --num-prompts 300 --seed 1 \\
        --json runs/relevance/contrast-labels.json

The label file must come from ``rtt relevance label --num-prompts N --seed S`` with the same N and S: its
prompts (and the rubric objects contrast needs) are regenerated with ``generate_rows(N, seed=S)``, as that
command makes them. For every labelled response the policy's per-token log-ratio delta (log p with the
rubric minus without it, `ContrastRelevance.log_ratios`) is computed once, and two weightings are scored:

- verdict-blind (the form before issue 20): w from max(delta, 0) whatever the verdict;
- verdict-aware: max(delta, 0) for a pass, max(-delta, 0) for a fail (`contrast_weights`);

both normalized the same way (`contrast_weights`). A pass gets the same weights in both, so only the fail
pairs can differ. Metrics are those of ``rtt relevance evaluate`` (`relevance.metrics.relevance_report`) on
the policy's tokens: a response is tokenized as the policy reads it, the label's character spans go to
those tokens as the oracle maps them (`relevance.alignment`), and a token is flagged above --threshold (the
trainer's ``relevance_threshold``). A response shorter than --max-new-tokens stopped on its own and gets the
EOS token, as at RL time (it enters the per-row normalization); the EOS has no characters, so the metrics
leave it out.

Printed: each form's `rtt relevance evaluate` table; token F1 / span F1 of both per family, over all pairs and
over the fail pairs; what each form blames on the fail pairs (rows that flag a token, flagged tokens and how
many of them the labels blame, the keyword occurrences already present in a failed "include the word"
response, which the labels never blame, and the EOS where the verdict blames the stop); 95% bootstrap
intervals of the differences.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch

from rubrics2tokens.data.synthetic import generate_rows
from rubrics2tokens.models import DEFAULT_POLICY, load_policy
from rubrics2tokens.relevance.alignment import spans_to_token_mask, token_char_spans
from rubrics2tokens.relevance.contrast import DEFAULT_SCALE, ContrastRelevance, contrast_weights
from rubrics2tokens.relevance.labels import load_labels
from rubrics2tokens.relevance.metrics import format_report, relevance_report, summarize
from rubrics2tokens.relevance.sources import RelevanceInputs
from rubrics2tokens.scoring.router import RoutingScorer
from rubrics2tokens.verifiers.rules import find_phrase

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FORMS = ("blind", "aware")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=Path, default=Path("runs/relevance/test.jsonl"))
    parser.add_argument("--num-prompts", type=int, default=300, help="--num-prompts of the label command")
    parser.add_argument("--seed", type=int, default=1, help="--seed of the label command")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="--max-new-tokens of the label command")
    parser.add_argument("--policy", default=DEFAULT_POLICY)
    parser.add_argument("--threshold", type=float, default=0.5, help="flagged above this (relevance_threshold)")
    parser.add_argument("--scale", type=float, default=DEFAULT_SCALE, help="contrast scale, nats")
    parser.add_argument("--responses-per-call", type=int, default=32, help="responses per contrast call")
    parser.add_argument("--bootstrap", type=int, default=200, help="resamples for the intervals of the differences")
    parser.add_argument("--json", type=Path, help="also write both reports here")
    return parser.parse_args(argv)


def labelled_responses(pairs, rows):
    """Group the label pairs by response: ``[(row, response text, [(pair, rubric index k)])]``.

    Pair ids are ``{prompt_id}/{sample}/{k}`` (`label_with_verifiers`), so k is the rubric's slot in its row."""
    grouped = defaultdict(list)
    for pair in pairs:
        prompt_id, sample, k = pair.id.rsplit("/", 2)
        grouped[prompt_id, int(sample)].append((pair, int(k)))
    return [(rows[prompt_id], members[0][0].response, members) for (prompt_id, _), members in grouped.items()]


def contrast_inputs(tokenizer, chunk, max_new_tokens, scorer):
    """`RelevanceInputs` for a chunk of labelled responses, and each response's character-token spans."""
    ids, token_spans = [], []
    for _, response, _ in chunk:
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
        text, spans = token_char_spans(tokenizer, response_ids)
        assert text == response, "the policy's tokens must decode to the labelled text"
        stopped = len(response_ids) < max_new_tokens
        ids.append(response_ids + [tokenizer.eos_token_id] * stopped)
        token_spans.append(spans)
    width = max(map(len, ids))
    completion_ids = torch.full((len(ids), width), tokenizer.pad_token_id)
    completion_mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, row in enumerate(ids):
        completion_ids[i, :len(row)], completion_mask[i, :len(row)] = torch.tensor(row), 1
    rows = [row for row, _, _ in chunk]
    scored = scorer.score([row.prompt for row in rows], [response for _, response, _ in chunk],
                          [row.rubrics for row in rows])
    return RelevanceInputs(completion_ids, completion_mask, scored, [row.messages for row in rows]), token_spans


def score_pairs(args, responses, tokenizer, contrast):
    """One record per label pair: its family, verdict, response index, gold token labels, both forms' weights
    on the response's tokens, their weight on the EOS where the verdict blames the stop of a response that
    stopped, and for a failed keyword rubric the tokens of the keyword occurrences already there."""
    scorer, records, start = RoutingScorer(mode="verifiers"), [], time.perf_counter()
    for first in range(0, len(responses), args.responses_per_call):
        chunk = responses[first:first + args.responses_per_call]
        inputs, token_spans = contrast_inputs(tokenizer, chunk, args.max_new_tokens, scorer)
        log_ratios = contrast.log_ratios(inputs)
        for i, (row, response, members) in enumerate(chunk):
            length = len(token_spans[i])  # the response's own tokens; an EOS after them is not in the metrics
            stopped = int(inputs.completion_mask[i].sum()) > length
            for pair, k in members:
                assert bool(inputs.scored.verdicts[i, k]) == pair.verdict, f"{pair.id}: the verifier changed its mind"
                weights = {"blind": contrast_weights(log_ratios[i, k], True, args.scale),
                           "aware": contrast_weights(log_ratios[i, k], pair.verdict, args.scale)}
                keyword = row.rubrics[k].kwargs.get("keyword") if pair.family.endswith("include_keyword") else None
                records.append({
                    "family": pair.family.removeprefix("testbed:"), "verdict": pair.verdict, "response": first + i,
                    "gold": spans_to_token_mask(pair.spans, token_spans[i], length),
                    "weights": {form: w[:length] for form, w in weights.items()},
                    "stop_eos": {form: float(w[-1]) for form, w in weights.items()} if pair.stop and stopped else None,
                    "progress": (spans_to_token_mask(find_phrase(response, keyword), token_spans[i], length).bool()
                                 if keyword and not pair.verdict else None)})
        print(f"{first + len(chunk)}/{len(responses)} responses, {time.perf_counter() - start:.0f} s", flush=True)
    return records


def report(records, form, threshold):
    """`relevance_report` of one form over some records."""
    return relevance_report([r["weights"][form] for r in records], [r["gold"] for r in records],
                            [r["family"] for r in records], threshold)


def main(argv=None):
    args = parse_args(argv)
    load_at_start, start = os.getloadavg(), time.perf_counter()
    pairs = load_labels(args.labels)
    rows = {row.id: row for row in generate_rows(args.num_prompts, seed=args.seed)}
    responses = labelled_responses(pairs, rows)
    model, tokenizer = load_policy(args.policy)
    records = score_pairs(args, responses, tokenizer, ContrastRelevance(model.eval(), tokenizer))
    fails = [r for r in records if not r["verdict"]]
    reports = {form: report(records, form, args.threshold) for form in FORMS}
    fail_reports = {form: report(fails, form, args.threshold) for form in FORMS}
    for form in FORMS:
        print(f"\n{form}, all pairs\n{format_report(reports[form])}")
    print(side_by_side(reports, fail_reports))
    blame = blame_on_fails(fails, args.threshold)
    print(blame["table"])
    intervals = bootstrap_differences(records, args.threshold, args.bootstrap)
    print(intervals["table"])
    wall = time.perf_counter() - start
    print(f"\n{len(pairs)} pairs ({len(fails)} fail) on {len(responses)} responses; wall {wall:.0f} s; "
          f"load average at start {load_at_start[0]:.2f}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"all": reports, "fails": fail_reports, "blame": blame["figures"],
                                         "bootstrap": intervals["figures"], "wall_s": wall,
                                         "load_average_at_start": load_at_start[0]}, indent=2))


def side_by_side(reports, fail_reports):
    """Markdown: token F1 / span F1 of both forms per family, over all pairs and over the fail pairs only."""
    lines = ["", "| family | pairs | fails | blind: token F1 / span F1 | aware: token F1 / span F1 "
                 "| fails only, blind | fails only, aware |", "|---|---:|---:|---|---|---|---|"]
    for name in [*reports["blind"]["families"], "overall"]:
        found = [source[form]["overall"] if name == "overall" else source[form]["families"].get(name)
                 for source in (reports, fail_reports) for form in FORMS]
        cells = ["-" if m is None else f"{m['token_f1']:.3f} / {m['span_f1']:.3f}" for m in found]
        lines.append(f"| {name} | {found[0]['pairs']} | {found[2]['pairs'] if found[2] else 0} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def blame_on_fails(fails, threshold):
    """What each form blames on the fail pairs: rows that flag a token, flagged tokens and how many of them the
    labels blame; for failed keyword rubrics, how many of the keyword tokens already there (progress, never
    blamed by the labels) are flagged; for verdicts that blame the stop, how often the EOS is flagged."""
    keyword_fails = [r for r in fails if r["progress"] is not None]
    stop_fails = [r for r in fails if r["stop_eos"] is not None]
    figures = {}
    for form in FORMS:
        flagged = [r["weights"][form] > threshold for r in fails]
        figures[form] = {
            "rows_flagging": sum(bool(f.any()) for f in flagged), "tokens_flagged": sum(int(f.sum()) for f in flagged),
            "tokens_flagged_blamed": sum(int((f & r["gold"].bool()).sum()) for f, r in zip(flagged, fails)),
            "keyword_tokens_flagged": sum(int(((r["weights"][form] > threshold) & r["progress"]).sum())
                                          for r in keyword_fails),
            "eos_flagged": sum(r["stop_eos"][form] > threshold for r in stop_fails)}
    keyword_tokens = sum(int(r["progress"].sum()) for r in keyword_fails)
    lines = ["", f"fail pairs: {len(fails)}; failed keyword rubrics: {len(keyword_fails)}, {keyword_tokens} keyword "
                 f"tokens already there; stop-blaming fails on responses that stopped: {len(stop_fails)}",
             "| form | fail rows flagging a token | tokens flagged | of them blamed by the labels "
             "| keyword tokens flagged | EOS flagged |", "|---|---:|---:|---:|---:|---:|"]
    for form, f in figures.items():
        share = f["tokens_flagged_blamed"] / f["tokens_flagged"] if f["tokens_flagged"] else 0.0
        lines.append(f"| {form} | {f['rows_flagging']} | {f['tokens_flagged']} | {f['tokens_flagged_blamed']} "
                     f"({share:.0%}) | {f['keyword_tokens_flagged']} of {keyword_tokens} | {f['eos_flagged']} "
                     f"of {len(stop_fails)} |")
    return {"figures": figures, "table": "\n".join(lines)}


def bootstrap_differences(records, threshold, resamples):
    """95% intervals of aware minus blind (token F1, span F1; all pairs and fail pairs), resampling responses
    with their pairs (paired: both forms on the same resample)."""
    by_response = defaultdict(list)
    for record in records:
        by_response[record["response"]].append(record)
    keys, generator = list(by_response), random.Random(0)
    differences = defaultdict(list)
    for _ in range(resamples):
        sample = [r for key in generator.choices(keys, k=len(keys)) for r in by_response[key]]
        for subset, members in (("all", sample), ("fails", [r for r in sample if not r["verdict"]])):
            scores = {form: summarize([r["weights"][form] for r in members], [r["gold"] for r in members],
                                      threshold) for form in FORMS}
            for metric in ("token_f1", "span_f1"):
                differences[subset, metric].append(scores["aware"][metric] - scores["blind"][metric])
    figures = {f"{subset} {metric}": [statistics.quantiles(values, n=40)[0], statistics.quantiles(values, n=40)[-1]]
               for (subset, metric), values in differences.items()}
    lines = ["", f"aware - blind, 95% interval over {resamples} resamples of the responses:"]
    lines += [f"  {name}: [{low:+.3f}, {high:+.3f}]" for name, (low, high) in figures.items()]
    return {"figures": figures, "table": "\n".join(lines)}


if __name__ == "__main__":
    main()
