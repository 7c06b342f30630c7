"""The `rtt` command."""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import random
import sys

from rubrics2tokens.cli.evaluate import add_eval_commands
from rubrics2tokens.cli.judge import add_judge_commands
from rubrics2tokens.cli.parser import RttParser
from rubrics2tokens.cli.relevance import add_relevance_commands
from rubrics2tokens.cli.rubrics import add_rubrics_commands
from rubrics2tokens.cli.study import add_study_commands
from rubrics2tokens.config import ConfigError, load_run_config
from rubrics2tokens.data.schema import DataError
from rubrics2tokens.data.kept_settings import SettingsMismatch
from rubrics2tokens.models.loading import ModelNotFoundError
from rubrics2tokens.verifiers.ifeval import MissingNLTKDataError


def _train(args: argparse.Namespace) -> None:
    from rubrics2tokens.cli.train import run_training  # heavy imports (torch, TRL) only when training

    verbosity = "quiet" if args.quiet else "verbose" if args.verbose else "normal"
    run_training(load_run_config(args.config, args.overrides), resume=args.resume, verbosity=verbosity)


def _testbed(args: argparse.Namespace) -> None:
    from rubrics2tokens.data.synthetic import write_testbed

    path = write_testbed(args.out, args.num_prompts, seed=args.seed, min_rubrics=args.min_rubrics,
                         max_rubrics=args.max_rubrics, families=args.families, quality_rubrics=args.quality_rubrics)
    print(f"wrote {args.num_prompts} prompts to {path}")


def _families(_: argparse.Namespace) -> None:
    from rubrics2tokens.data.synthetic import FAMILIES

    width = max(map(len, FAMILIES))
    for name, family in FAMILIES.items():
        print(f"{name:{width}s} {family.description(family.sample_kwargs(random.Random(0)))}")


def build_parser() -> argparse.ArgumentParser:
    parser = RttParser(prog="rtt", description="Rubrics to Tokens: RL with token-level rubric credit.")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {importlib.metadata.version('rubrics2tokens')}")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a policy with RTT-GRPO from a YAML run config")
    train.add_argument("config", help="YAML run config, e.g. configs/demo.yaml")
    train.add_argument("overrides", nargs="*", metavar="key=value",
                       help="override config keys, e.g. training.max_steps=20 training.relevance_source=none")
    train.add_argument("--resume", action="store_true",
                       help="continue from the last complete checkpoint in training.output_dir")
    loudness = train.add_mutually_exclusive_group()
    loudness.add_argument("--quiet", action="store_true",
                          help="only the progress bar, warnings and the end-of-run summary")
    loudness.add_argument("--verbose", action="store_true",
                          help="also every logged metric of each step (all of them go to metrics.jsonl anyway)")
    train.set_defaults(run=_train)

    data = commands.add_parser("data", help="data utilities").add_subparsers(dest="data_command", required=True)
    testbed = data.add_parser("testbed", help="write generated constraint prompts as JSONL (HIR-16K schema)")
    testbed.add_argument("--out", required=True, help="output JSONL path")
    testbed.add_argument("--num-prompts", type=int, default=256, help="prompts to generate")
    testbed.add_argument("--seed", type=int, default=0, help="seed of the prompts, their rules and rule arguments")
    testbed.add_argument("--min-rubrics", type=int, default=2, help="fewest rubrics (rules) in one prompt")
    testbed.add_argument("--max-rubrics", type=int, default=5, help="most rubrics (rules) in one prompt")
    testbed.add_argument("--families", nargs="*", default=None,
                         help="rule families to draw from, as `rtt data families` lists them (default: all but the "
                              "quality families)")
    testbed.add_argument("--quality-rubrics", nargs="*", default=(),
                         help="quality families to add to every prompt: no_repeated_sentences, distinct_words, "
                              "end_with_sentence, length_floor (docs/testbed.md §4; default: none)")
    testbed.set_defaults(run=_testbed)
    families = data.add_parser("families", help="list the testbed rule families")
    families.set_defaults(run=_families)
    add_eval_commands(commands)
    add_rubrics_commands(commands)
    add_judge_commands(commands)
    add_relevance_commands(commands)
    add_study_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    level = "WARNING" if getattr(args, "quiet", False) else os.environ.get("RTT_LOG_LEVEL", "INFO")
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # The report's first plot on a machine builds matplotlib's font cache, which it announces (and lists each font
    # file it cannot read) under INFO and WARNING: nothing for a user to act on, in the middle of a run's summary.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    try:
        args.run(args)
    # a user's input or setup at fault: one line, exit code 2, no traceback
    except (ConfigError, DataError, FileNotFoundError, SettingsMismatch, MissingNLTKDataError,
            ModelNotFoundError) as error:
        print(f"rtt: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
