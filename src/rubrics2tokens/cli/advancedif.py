"""``rtt eval score|run --benchmark advancedif``: the judge options, their checks, and scoring through the judge.

AdvancedIF's rubrics are judged by an LLM, named by ``--judge-base-url URL --judge-model NAME`` (an
OpenAI-compatible server, through the judge client: concurrency, retries, an optional verdict cache) or by
``--judge-local MODEL`` (a local Hugging Face model, in this process). ``--model`` of ``rtt eval run`` is the
policy that answers, so the judge has options of its own. The verdicts (one per response: both protocols' verdicts
and the reference protocol's reply) and the summary go to ``OUT`` as the other benchmarks' do.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from rubrics2tokens.evaluation.advancedif import MISSING_DATA, load_advancedif, read_advancedif_responses
from rubrics2tokens.evaluation.advancedif_scoring import (AdvancedIFVerdict, format_advancedif_summary,
                                                          judge_responses, summarize_advancedif)
from rubrics2tokens.judge import Judge, JudgeConfig, LLMJudge, LocalHFJudge
from rubrics2tokens.judge.rubric_set import ChatClient, LocalChat
from rubrics2tokens.models.loading import check_model_name, load_policy
from rubrics2tokens.yaml_config import ConfigError

BENCHMARK = "advancedif"
JUDGE_OPTIONS = ("judge_base_url", "judge_model", "judge_local", "judge_cache")


def add_judge_options(parser: argparse.ArgumentParser) -> None:
    """The options naming the LLM judge of ``--benchmark advancedif``."""
    judge = parser.add_argument_group("judge (--benchmark advancedif only)")
    judge.add_argument("--judge-base-url", default=None,
                       help="root of the judge's OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1 (with "
                            "--judge-model)")
    judge.add_argument("--judge-model", default=None, help="the model name the judge server serves")
    judge.add_argument("--judge-local", default=None,
                       help="judge with a local Hugging Face model instead of a server: a Hub id, a folder, or an "
                            "embedded model name")
    judge.add_argument("--judge-concurrency", type=int, default=16, help="judge requests in flight at once")
    judge.add_argument("--judge-timeout", type=float, default=300.0,
                       help="seconds one judge request may take before it is retried; the all-rubrics reply is "
                            "long (a reason per rubric, and a reasoning model thinks first)")
    judge.add_argument("--judge-cache", default=None,
                       help="sqlite file caching the per-rubric YES/NO verdicts across runs (server judge only)")
    judge.add_argument("--judge-reply-tokens", type=int, default=2048,
                       help="longest reply of the all-rubrics-at-once judge (the reference protocol's JSON)")
    judge.add_argument("--judge-batch-size", type=int, default=8,
                       help="conversations a local judge (--judge-local) answers in one batched generation")


def check_judge_options(args: argparse.Namespace) -> None:
    """A `ConfigError` unless the judge options fit the benchmark: AdvancedIF needs its data and exactly one
    judge, the other benchmarks take no judge."""
    given = [f"--{name.replace('_', '-')}" for name in JUDGE_OPTIONS if getattr(args, name) is not None]
    if args.benchmark != BENCHMARK:
        if given:
            raise ConfigError(f"{', '.join(given)}: the judge options are for --benchmark {BENCHMARK} only; "
                              f"{args.benchmark} is scored by code verifiers")
        return
    if args.data is None:
        raise ConfigError(MISSING_DATA)
    server = args.judge_base_url is not None or args.judge_model is not None
    if args.judge_local is not None and server:
        raise ConfigError("name one judge: --judge-local MODEL, or --judge-base-url URL --judge-model NAME")
    if args.judge_local is None and not (args.judge_base_url and args.judge_model):
        raise ConfigError("AdvancedIF is scored by an LLM judge: give --judge-base-url URL --judge-model NAME (an "
                          "OpenAI-compatible server) or --judge-local MODEL (a local Hugging Face model)")
    if args.judge_local is not None and args.judge_cache is not None:
        raise ConfigError("--judge-cache caches a server judge's verdicts; a local judge (--judge-local) has none")
    for name in ("judge_concurrency", "judge_reply_tokens", "judge_batch_size"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not args.judge_timeout > 0:
        raise ConfigError(f"--judge-timeout must be above 0 seconds, got {args.judge_timeout}")
    if args.judge_local is not None:
        check_model_name(args.judge_local)


def score_advancedif(args: argparse.Namespace) -> tuple[list[AdvancedIFVerdict], dict[str, Any], str]:
    """``rtt eval score --benchmark advancedif``: judge the responses; (verdicts, summary, the summary as text)."""
    check_judge_options(args)
    responses = read_advancedif_responses(args.responses, load_advancedif(args.data))
    with _judges(args) as (judge, chat, judge_name):
        verdicts = judge_responses(responses, judge, chat, args.judge_reply_tokens)
    summary = summarize_advancedif(verdicts, judge_name)
    return verdicts, summary, format_advancedif_summary(summary)


@contextmanager
def _judges(args: argparse.Namespace) -> Iterator[tuple[Judge, ChatClient, str]]:
    """(per-rubric judge, all-rubrics chat client, the judge's name) from the options; one model serves both."""
    if args.judge_local is None:
        config = JudgeConfig(base_url=args.judge_base_url, model=args.judge_model,
                             max_concurrency=args.judge_concurrency, timeout_s=args.judge_timeout,
                             cache_path=args.judge_cache)
        with LLMJudge(config) as judge:
            yield judge, judge, args.judge_model
        return
    if torch.cuda.is_available():
        model, tokenizer = load_policy(args.judge_local, dtype="bfloat16")
        model.to("cuda")
    else:
        model, tokenizer = load_policy(args.judge_local)
    model.eval()
    yield (LocalHFJudge(model, tokenizer, batch_size=args.judge_batch_size),
           LocalChat(model, tokenizer, batch_size=args.judge_batch_size), args.judge_local)
