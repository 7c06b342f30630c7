"""``rtt eval score``: score model responses on IFEval or IFBench, strict and loose (MulDimIF: its own scores;
AdvancedIF: through an LLM judge, `rubrics2tokens.cli.advancedif`); ``rtt eval run``: generate the responses with a
model first (resumable), then score them the same way; ``rtt eval compare``: the accuracies of several such output
folders against one, each difference with a paired bootstrap interval.

The responses file is JSONL, one response a line: ``{"key": ..., "response": "..."}`` or
``{"prompt": "...", "response": "..."}`` (the benchmark's prompt key or its exact prompt text). A prompt may
have several responses; its accuracies are averaged over them. Writes ``OUT/verdicts.jsonl`` (one line per
response) and ``OUT/summary.json``, and prints the four accuracies.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from rubrics2tokens.cli.advancedif import BENCHMARK as ADVANCEDIF
from rubrics2tokens.cli.advancedif import add_judge_options, check_judge_options, score_advancedif
from rubrics2tokens.data.schema import DataError, read_jsonl, write_json, write_jsonl
from rubrics2tokens.evaluation.advancedif import AdvancedIFPrompt, load_advancedif
from rubrics2tokens.evaluation.benchmarks import VERIFIER_PREFIXES, BenchmarkPrompt, load_benchmark
from rubrics2tokens.evaluation.compare import (comparisons_json, compare, format_comparisons, format_instruction_rates,
                                              read_prompt_scores)
from rubrics2tokens.evaluation.generate import BACKENDS, DTYPES, MissingBackendError, generate_responses
from rubrics2tokens.evaluation.scoring import format_summary, score_responses, summarize
from rubrics2tokens.models.loading import DEFAULT_POLICY, check_model_name
from rubrics2tokens.verifiers.ifeval import MissingNLTKDataError


CPU_LIMIT = 20  # prompts answered by default without a GPU: a first look, not the benchmark's score
BENCHMARKS = sorted([*VERIFIER_PREFIXES, ADVANCEDIF])
DATA_HELP = ("the benchmark's test file, JSONL (MulDimIF: its test.json), .gz too (default: the copy the package "
             "ships); AdvancedIF, which is not shipped: required, its if_oss_full_data.csv or JSONL with its fields")


def add_eval_commands(subparsers: Any) -> None:
    """Add ``eval score`` and ``eval run`` to the `rtt` command's subparsers."""
    evaluate = subparsers.add_parser("eval", help="evaluate responses on instruction-following benchmarks")
    commands = evaluate.add_subparsers(dest="eval_command", required=True)
    score = commands.add_parser("score", help="score responses on IFEval, IFBench (strict and loose), MulDimIF or "
                                              "AdvancedIF (LLM judge)")
    score.add_argument("--benchmark", required=True, choices=BENCHMARKS, help="the benchmark the responses answer")
    score.add_argument("--responses", required=True,
                       help='JSONL, one {"key" or "prompt": ..., "response": "..."} a line (AdvancedIF: "key", the '
                            "row's 0-based index in the data file)")
    score.add_argument("--out", required=True, help="output folder for verdicts.jsonl and summary.json")
    score.add_argument("--data", default=None, help=DATA_HELP)
    add_judge_options(score)
    score.set_defaults(run=_score)

    run = commands.add_parser("run", help="generate responses with a model (resumable), then score them",
                              description="Defaults are sized for a CPU: one response of at most 512 tokens to "
                                          f"each of the first {CPU_LIMIT} prompts when there is no GPU; the RTT "
                                          "paper's setting is --samples 5 --max-new-tokens 2048 --limit 0 on a GPU.")
    run.add_argument("--benchmark", required=True, choices=BENCHMARKS, help="the benchmark to answer")
    run.add_argument("--model", required=True,
                     help=f"the model that answers: a Hugging Face Hub id, a local folder, or {DEFAULT_POLICY}")
    run.add_argument("--out", required=True,
                     help="output folder for responses.jsonl (kept and continued on a rerun with the same generation "
                          "settings, which are kept in responses.settings.json), verdicts.jsonl and summary.json")
    run.add_argument("--data", default=None, help=DATA_HELP)
    run.add_argument("--samples", type=int, default=1, help="responses per prompt")
    run.add_argument("--temperature", type=float, default=0.7, help="0 decodes greedily")
    run.add_argument("--top-p", type=float, default=0.8, help="nucleus sampling mass")
    run.add_argument("--top-k", type=int, default=20, help="0 disables top-k")
    run.add_argument("--max-new-tokens", type=int, default=512, help="longest response, in tokens")
    run.add_argument("--batch-size", type=int, default=64, help="sequences (prompt x sample) decoded together")
    run.add_argument("--backend", default="static", choices=BACKENDS, help="how responses are decoded")
    run.add_argument("--dtype", default="auto", choices=DTYPES,
                     help="the policy's precision while decoding (auto: bfloat16 where the CPU or GPU computes it "
                          "natively, else float32)")
    run.add_argument("--limit", type=int, default=None,
                     help=f"only the first N prompts; 0 for all (default: all on a GPU, {CPU_LIMIT} without one)")
    run.add_argument("--seed", type=int, default=0, help="sampling seed")
    add_judge_options(run)
    run.set_defaults(run=_run)

    compare_parser = commands.add_parser(
        "compare", help="compare output folders of `eval run`/`eval score` with a paired bootstrap interval",
        description="Each folder's four accuracies, and the instruction-level strict accuracy on the instructions "
                    "whose pass does not depend on answer length, minus the first folder's, on the prompts both "
                    "answered, with a paired bootstrap 95% interval over prompts.")
    compare_parser.add_argument("base", help="the folder the others are compared with (e.g. the base policy's)")
    compare_parser.add_argument("others", nargs="+", help="folders to compare with it")
    compare_parser.add_argument("--json", default=None, help="also write the comparison to this JSON file (with "
                                                             "every folder's pass rate per instruction)")
    compare_parser.add_argument("--per-instruction", action="store_true",
                                help="also print each folder's strict pass rate per instruction id (over all the "
                                     "prompts it answered, shared or not)")
    compare_parser.set_defaults(run=_compare)


def _run(args: argparse.Namespace) -> None:
    check_judge_options(args)  # before generating: a judge missing after an hour of generation would waste it
    prompts = _load_prompts(args.benchmark, args.data)
    limit = args.limit if args.limit is not None else (0 if torch.cuda.is_available() else CPU_LIMIT)
    if limit and limit < len(prompts):
        print(f"answering the first {limit} of {len(prompts)} {args.benchmark} prompts "
              f"({'--limit' if args.limit is not None else 'no GPU; --limit 0 for all'})")
        prompts = prompts[:limit]
    check_model_name(args.model)  # before the output folder gets the settings of a run that cannot start
    responses = Path(args.out) / "responses.jsonl"
    try:
        generate_responses(prompts, args.model, responses, samples=args.samples, temperature=args.temperature,
                           top_p=args.top_p, top_k=args.top_k, max_new_tokens=args.max_new_tokens,
                           batch_size=args.batch_size, backend=args.backend, seed=args.seed,
                           dtype=args.dtype)
    except MissingBackendError as error:
        raise SystemExit(f"rtt: error: {error}") from None
    args.responses = str(responses)  # from here on, exactly `rtt eval score` on the file just written
    _score(args)


def _compare(args: argparse.Namespace) -> None:
    folders = [args.base, *args.others]
    names = [Path(folder).name for folder in folders]
    if len(set(names)) < len(set(folders)):  # two folders called "eval" in different runs: name them by path
        names = [str(folder) for folder in folders]
    scores = {name: read_prompt_scores(folder) for name, folder in zip(names, folders)}
    comparisons = {}
    for name, folder in zip(names[1:], args.others):
        try:
            comparisons[name] = compare(scores[names[0]], scores[name])
        except ValueError as error:
            raise SystemExit(f"rtt: error: {args.base} and {folder}: {error}") from None
    print(format_comparisons(names[0], comparisons))
    if args.per_instruction:
        print(format_instruction_rates(scores))
    if args.json:
        Path(args.json).write_text(comparisons_json(names[0], comparisons, scores) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")


def _load_prompts(benchmark: str, data: str | None) -> list[BenchmarkPrompt] | list[AdvancedIFPrompt]:
    return load_advancedif(data) if benchmark == ADVANCEDIF else load_benchmark(benchmark, data)


def _score(args: argparse.Namespace) -> None:
    if args.benchmark == ADVANCEDIF:
        verdicts, summary, text = score_advancedif(args)
    else:
        check_judge_options(args)
        items = read_responses(args.responses, load_benchmark(args.benchmark, args.data))
        try:
            verdicts = score_responses(items)
        except MissingNLTKDataError as error:
            raise SystemExit(f"rtt: error: {error}") from None
        summary = summarize(args.benchmark, verdicts)
        text = format_summary(summary)
    out = Path(args.out)
    write_jsonl((verdict.to_json() for verdict in verdicts), out / "verdicts.jsonl")
    write_json(summary, out / "summary.json")
    print(text)
    print(f"wrote {out / 'verdicts.jsonl'} and {out / 'summary.json'}")


def read_responses(path: str | Path, benchmark: list[BenchmarkPrompt]) -> list[tuple[BenchmarkPrompt, str]]:
    """(prompt, response) pairs from a responses JSONL; a malformed row or unknown prompt is a `DataError`."""
    by_key = {item.key: item for item in benchmark}
    by_prompt = {item.prompt: item for item in benchmark}
    pairs = []
    for number, row in read_jsonl(path):
        if not isinstance(row.get("response"), str):
            raise DataError(path, number, "response", f"must be a string, got {row.get('response')!r}")
        pairs.append((_find_prompt(row, by_key, by_prompt, path, number), row["response"]))
    return pairs


def _find_prompt(row: dict[str, Any], by_key: dict[str, BenchmarkPrompt], by_prompt: dict[str, BenchmarkPrompt],
                 path: str | Path, number: int) -> BenchmarkPrompt:
    """The benchmark prompt a row answers: by ``key`` (or MulDimIF's ``id``) when given (then ``prompt``, if also
    given, must match)."""
    if "key" in row or "id" in row:
        key = row.get("key", row.get("id"))
        item = by_key.get(str(key))
        if item is None:
            raise DataError(path, number, "key", f"{key!r} is not a prompt key of the benchmark")
        if "prompt" in row and row["prompt"] != item.prompt:
            raise DataError(path, number, "prompt", f"does not match the benchmark's prompt for key {item.key!r}")
        return item
    if "prompt" in row:
        item = by_prompt.get(row["prompt"])
        if item is None:
            raise DataError(path, number, "prompt", f"not a prompt of the benchmark: {str(row['prompt'])[:80]!r}")
        return item
    raise DataError(path, number, "key", "missing: each row needs the benchmark's 'key' or its 'prompt' text")
