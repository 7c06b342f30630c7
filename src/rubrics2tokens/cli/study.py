"""``rtt study STUDY.yaml``: train every (variant, seed) of a study, resumably, then write its report;
``rtt report DIR``: the report of one run folder or of a folder of runs."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rubrics2tokens.report import REPORT_DIR, write_report

if TYPE_CHECKING:  # imported where used: `rtt --help` does not load the study runner
    from rubrics2tokens.study.spec import Study


def add_study_commands(subparsers: Any) -> None:
    """Add ``study`` and ``report`` to the `rtt` command's subparsers."""
    study = subparsers.add_parser("study", help="train a grid of config variants x seeds (resumable), then report")
    study.add_argument("study", help="study YAML: base run config, variants (key=value overrides), seeds")
    study.add_argument("--jobs", type=int, default=1, help="runs trained at once (1: one after another)")
    study.add_argument("--out", default=None, help="study folder (default: the study file's output_dir)")
    study.add_argument("--keep-checkpoints", action="store_true",
                       help="keep a finished run's checkpoints (default: delete them; its model is in final/)")
    study.add_argument("--dry-run", action="store_true",
                       help="check every run's config and show what would run, train nothing")
    study.add_argument("--variants", nargs="+", default=None, metavar="NAME",
                       help="train only these variants' runs, in the study file's order (the others stay as they "
                            "are; the report covers every run on disk)")
    study.set_defaults(run=_study)

    report = subparsers.add_parser("report", help="tables, learning curves and token-credit heatmaps of run folders")
    report.add_argument("dir", help="one run folder, or a folder of runs (searched for metrics.jsonl)")
    report.add_argument("--out", default=None, help=f"output folder (default: DIR/{REPORT_DIR})")
    report.add_argument("--baseline", default=None,
                        help="variant the Δ columns subtract (default: the GRPO-CSR variant, else the first GRPO one)")
    report.add_argument("--examples", type=int, default=3, help="held-out responses shown as heatmaps")
    report.set_defaults(run=_report)


def _print_report(directory: Path, **options: Any) -> Path:
    page = write_report(directory, **options)
    print((page.parent / "report.txt").read_text(encoding="utf-8"))
    print(f"report: {page}  (also report.json and the curves as PNG in {page.parent}/)")
    return page


def _report(args: argparse.Namespace) -> None:
    try:
        _print_report(Path(args.dir), out=args.out, baseline=args.baseline, examples=args.examples)
    except ValueError as error:  # an unknown --baseline
        raise SystemExit(f"rtt report: error: {error}") from None


def _only_variants(study: Study, names: list[str]) -> Study:
    """``study`` with only the runs of the variants ``names`` (each must be one of the study's)."""
    known = list(dict.fromkeys(run.variant for run in study.runs))
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"rtt study: error: --variants: {', '.join(unknown)} not in {study.path} "
                         f"(its variants: {', '.join(known)})")
    return dataclasses.replace(study, runs=tuple(run for run in study.runs if run.variant in names))


def _stop_on_sigterm(*_: Any) -> None:
    raise SystemExit(143)  # unwinds run_study, which stops its runs; their checkpoints stay for a rerun


def _study(args: argparse.Namespace) -> None:
    from rubrics2tokens.study import load_study, run_study
    from rubrics2tokens.study.runner import StudyBusyError, run_state
    from rubrics2tokens.study.spec import write_run_configs

    study = load_study(args.study, args.out)
    if args.variants:
        study = _only_variants(study, args.variants)
    if args.dry_run:
        states = {run: run_state(run) for run in study.runs}
        write_run_configs(study, started={run.folder for run, state in states.items() if state != "new"})
        for run in study.runs:
            print(f"{run.name:32s} {states[run]:12s} rtt train {run.config_path}"
                  f"{' --resume' if states[run] == 'interrupted' else ''}")
        print(f"{len(study.runs)} runs; every config checked; nothing trained (--dry-run)")
        return
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        failed = run_study(study, jobs=args.jobs, keep_checkpoints=args.keep_checkpoints)
    except StudyBusyError as error:
        raise SystemExit(f"rtt study: error: {error}") from None
    try:
        _print_report(study.output_dir)
    except FileNotFoundError as error:  # no run got as far as its first log record
        print(f"rtt study: no report: {error}", file=sys.stderr)
    if failed:
        print(f"rtt study: {len(failed)} run(s) failed: {', '.join(run.name for run in failed)}; "
              f"rerun the same command to retry them (finished runs are skipped)", file=sys.stderr)
        raise SystemExit(1)
