"""``rtt rubrics generate``: rubric rows that `rtt train` reads, for a file of plain prompts.

    rtt rubrics generate --prompts prompts.jsonl --out rows.jsonl                      # model-free extraction only
    rtt rubrics generate --prompts prompts.jsonl --out rows.jsonl --base-url http://127.0.0.1:8000/v1 --model NAME
    rtt rubrics generate --prompts prompts.jsonl --out rows.jsonl --local embedded:smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rubrics2tokens.models.loading import DEFAULT_POLICY


def add_rubrics_commands(subparsers: Any) -> None:
    """Add ``rubrics generate`` to the `rtt` command's subparsers."""
    rubrics = subparsers.add_parser("rubrics", help="write rubrics for prompts that have none")
    commands = rubrics.add_subparsers(dest="rubrics_command", required=True)
    generate = commands.add_parser(
        "generate", help="rubric rows for a file of prompts: the constraints the wording states, plus a model's",
        description="Writes one row per prompt in the layout `rtt train` reads (data.source: file). Constraints "
                    "the prompt's wording states in IFEval's phrasings get their code verifier without any model; "
                    "a generator model (--base-url/--model or --local) adds K rubric items with weights, attaching a "
                    "verifier where one fits (checked by the registry: a wrong one goes to the judge and is listed "
                    "in OUT.rejected.jsonl). Rows are appended as prompts complete: rerun the command to continue. "
                    "Prompts without rubrics are listed in OUT.failed.jsonl (delete it to try them again).")
    generate.add_argument("--prompts", required=True,
                          help="JSONL of prompts: {\"id\", \"prompt\"} or {\"id\", \"messages\"} a line, or rows of "
                               "our schema (their rubrics are ignored)")
    generate.add_argument("--out", required=True, help="JSONL of rubric rows to write (continued on a rerun)")
    generate.add_argument("--base-url", default=None,
                          help="OpenAI-compatible API root of a generator model, e.g. http://127.0.0.1:8000/v1 "
                               "(needs --model)")
    generate.add_argument("--model", default=None, help="model name the --base-url server serves")
    generate.add_argument("--local", default=None, metavar="MODEL",
                          help=f"a local generator model instead of a server: a Hugging Face Hub id, a folder or "
                               f"{DEFAULT_POLICY}")
    generate.add_argument("--rubrics-per-prompt", type=int, default=5,
                          help="rubric items the generator writes per prompt, besides the extracted ones")
    generate.add_argument("--no-extraction", action="store_true",
                          help="the generator's rubrics only, without the model-free extraction (needs a generator)")
    generate.add_argument("--attempts", type=int, default=3,
                          help="times a prompt is asked before its unreadable replies put it in OUT.failed.jsonl")
    generate.add_argument("--temperature", type=float, default=0.7,
                          help="generator sampling temperature (above 0, so that asking again can give another reply)")
    generate.add_argument("--max-new-tokens", type=int, default=1024, help="longest generator reply, in tokens")
    generate.add_argument("--concurrency", type=int, default=16,
                          help="server requests in flight at once (also the prompts asked per round)")
    generate.add_argument("--timeout", type=float, default=120.0, help="seconds one server request may take")
    generate.add_argument("--cache", default=None,
                          help="sqlite file keeping the server's readable replies, so the same prompts are not asked "
                               "twice (default: no cache)")
    generate.add_argument("--batch-size", type=int, default=8, help="prompts per generate call of a --local model")
    generate.add_argument("--seed", type=int, default=0, help="sampling seed of a --local model")
    generate.set_defaults(run=_generate)


def _generate(args: argparse.Namespace) -> None:
    from rubrics2tokens.rubrics.generate import generate_rubric_rows, read_prompts

    generator = _generator(args)
    try:
        report = generate_rubric_rows(
            read_prompts(args.prompts), args.out, generator, rubrics_per_prompt=args.rubrics_per_prompt,
            extraction=not args.no_extraction, attempts=args.attempts,
            batch_size=args.batch_size if args.local else args.concurrency)
    finally:
        if generator is not None:
            generator.close()
    print(report.summary(Path(args.out)))


def _generator(args: argparse.Namespace):
    """The generator the options name, or None; contradicting options are a one-line error."""
    if (args.base_url is None) != (args.model is None):
        raise SystemExit("rtt: error: --base-url and --model go together (the server and the model it serves)")
    if args.base_url and args.local:
        raise SystemExit("rtt: error: name one generator: --base-url/--model or --local")
    if args.no_extraction and not (args.base_url or args.local):
        raise SystemExit("rtt: error: --no-extraction needs a generator (--base-url/--model or --local)")
    if args.rubrics_per_prompt < 1 or args.attempts < 1:
        raise SystemExit("rtt: error: --rubrics-per-prompt and --attempts must be at least 1")
    if args.local:
        from rubrics2tokens.models.loading import check_model_name
        from rubrics2tokens.rubrics.generators import LocalGenerator

        check_model_name(args.local)
        return LocalGenerator(args.local, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                              temperature=args.temperature, seed=args.seed)
    if args.base_url:
        from rubrics2tokens.judge import JudgeConfig
        from rubrics2tokens.rubrics.generators import ServerGenerator

        config = JudgeConfig(base_url=args.base_url, model=args.model, max_concurrency=args.concurrency,
                             timeout_s=args.timeout, temperature=args.temperature, max_tokens=args.max_new_tokens)
        return ServerGenerator(config, cache_path=args.cache)
    return None
