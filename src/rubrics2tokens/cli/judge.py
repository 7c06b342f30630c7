"""``rtt judge audit``: how far a judge agrees with the code verifiers, before a training run relies on it.

The judge is asked every rubric question whose answer a code verifier knows (each verifier rubric of a row, on
each response of that row) and its verdicts are compared with the verifiers' (`rubrics2tokens.scoring.audit`,
counted in `rubrics2tokens.judge.audit`). The responses are given (``--responses``), or sampled from a policy
into that file first (``--policy``; resumable, as ``rtt eval run``).
"""

from __future__ import annotations

import argparse
from typing import Any

from tqdm.auto import tqdm

from rubrics2tokens.data.row_formats import load_prompt_rows
from rubrics2tokens.data.schema import PromptRow, by_unique_id, write_json
from rubrics2tokens.evaluation.benchmarks import BenchmarkPrompt
from rubrics2tokens.evaluation.generate import generate_responses
from rubrics2tokens.judge import JudgeConfig, LLMJudge
from rubrics2tokens.judge.audit import format_report
from rubrics2tokens.models.loading import DEFAULT_POLICY, check_model_name
from rubrics2tokens.scoring.audit import NothingToAudit, read_responses, run_audit
from rubrics2tokens.scoring.router import build_judge

DESCRIPTION = """\
Asks the judge the rubric questions whose answer a code verifier knows (every rubric with a verifier id, on
every response of its row; pairs the verifier cannot decide are left out) and reports how often it agrees, per
verifier and overall: n (questions asked), accuracy, Cohen's kappa, false_pass (judge YES where the verifier
fails, as a share of the verifier's fails), false_fail (judge NO where it passes, as a share of its passes) and
unknown (the share of questions the judge gave no YES/NO verdict). accuracy, kappa, false_pass and false_fail
are computed over the answered questions only; unknown is reported apart. Then the judge's requests, retries,
latency percentiles and tokens (when the server reports usage). The judge is asked without a verdict cache, so
its latency is its own."""


def add_judge_commands(subparsers: Any) -> None:
    """Add ``judge audit`` to the `rtt` command's subparsers."""
    judge = subparsers.add_parser("judge", help="check an LLM judge against the code verifiers")
    commands = judge.add_subparsers(dest="judge_command", required=True)
    audit = commands.add_parser("audit", help="agreement of a judge with the code verifiers on rows and responses",
                                description=DESCRIPTION)
    audit.add_argument("--rows", required=True, metavar="FILE",
                       help="JSONL of prompt rows with rubrics (our schema or HIR-16K's)")
    audit.add_argument("--responses", required=True, metavar="FILE",
                       help='JSONL, one {"id": row id, "response": "..."} a line, several per row allowed ("key" '
                            "may stand for \"id\"); with --policy, the file the sampled responses go to (continued on "
                            "a rerun with the same settings)")
    audit.add_argument("--json", default=None, metavar="FILE", help="also write the report to this JSON file")
    audit.add_argument("--base-url", default=None, metavar="URL",
                       help="the judge server's OpenAI-compatible API root (with --model)")
    audit.add_argument("--model", default=None, metavar="NAME",
                       help="the model name the judge server serves (with --base-url)")
    audit.add_argument("--api-key-env", default="OPENAI_API_KEY",
                       help="environment variable holding the server's API key (none sent when it is not set)")
    audit.add_argument("--max-concurrency", type=int, default=16, help="most requests to the server in flight")
    audit.add_argument("--timeout-s", type=float, default=60.0, help="limit of one request, retried past it")
    audit.add_argument("--local", default=None, metavar="MODEL",
                       help=f"a local Hugging Face model as the judge instead of a server (e.g. {DEFAULT_POLICY})")
    audit.add_argument("--local-batch-size", type=int, default=8,
                       help="questions the local judge answers in one batched generation")
    audit.add_argument("--max-tokens", type=int, default=8, help="the judge's reply length limit (one word expected)")
    audit.add_argument("--policy", default=None, metavar="MODEL",
                       help="sample the responses from this model into --responses first (a Hub id, a folder, or "
                            f"{DEFAULT_POLICY})")
    audit.add_argument("--samples", type=int, default=2, help="with --policy: responses per row")
    audit.add_argument("--temperature", type=float, default=0.7, help="with --policy: sampling temperature")
    audit.add_argument("--max-new-tokens", type=int, default=256, help="with --policy: longest response, in tokens")
    audit.add_argument("--seed", type=int, default=0, help="with --policy: sampling seed")
    audit.set_defaults(run=_audit)


def _audit(args: argparse.Namespace) -> None:
    config = _judge_config(args)
    for model in (config.local_model, args.policy):
        if model:
            check_model_name(model)  # a misspelt name fails before responses are sampled or a model loads
    rows = load_prompt_rows(args.rows)
    rows_by_id = by_unique_id(enumerate(rows, start=1), args.rows)  # a response names the row it answers
    if args.policy:
        _sample_responses(args, rows)
    pairs = read_responses(args.responses, rows_by_id)
    judge = build_judge(config)
    try:
        with tqdm(desc="judging", unit="question") as bar:
            def show(answered: int, total: int) -> None:
                bar.total = total
                bar.update(answered - bar.n)

            report = run_audit(judge, pairs, progress=show)
    except NothingToAudit as error:
        raise SystemExit(f"rtt: error: {args.rows}: {error}") from None
    finally:
        if isinstance(judge, LLMJudge):  # its event loop thread; a local judge holds nothing to release
            judge.close()
    report["judge"] = {"local_model": config.local_model} if config.local_model else {
        "base_url": config.base_url, "model": config.model}
    print(f"{report['questions']} questions on {report['responses']} responses to {report['rows_answered']} rows "
          f"({report['undecided']} left out: the verifier could not decide); judged in {report['judge_wall_s']:.1f}s")
    print(format_report(report))
    if args.json:
        print(f"wrote {write_json(report, args.json)}")


def _judge_config(args: argparse.Namespace) -> JudgeConfig:
    """The judge the options name: a server (--base-url and --model) or a local model (--local), exactly one."""
    server = args.base_url is not None or args.model is not None
    if server == (args.local is not None):
        raise SystemExit("rtt: error: name one judge: --base-url URL --model NAME (a server) or --local MODEL")
    if server and not (args.base_url and args.model):
        raise SystemExit("rtt: error: a judge server needs both --base-url and --model")
    if args.local:
        return JudgeConfig(local_model=args.local, local_batch_size=args.local_batch_size, max_tokens=args.max_tokens)
    return JudgeConfig(base_url=args.base_url, model=args.model, api_key_env=args.api_key_env,
                       max_concurrency=args.max_concurrency, timeout_s=args.timeout_s, max_tokens=args.max_tokens)


def _sample_responses(args: argparse.Namespace, rows: list[PromptRow]) -> None:
    """``--samples`` responses of ``--policy`` to every row, appended to ``--responses`` (kept on a rerun)."""
    prompts = [BenchmarkPrompt(benchmark="rows", key=row.id, prompt=row.prompt, instruction_ids=(), kwargs=(),
                               messages=tuple(row.messages)) for row in rows]
    generate_responses(prompts, args.policy, args.responses, samples=args.samples, temperature=args.temperature,
                       max_new_tokens=args.max_new_tokens, seed=args.seed)
