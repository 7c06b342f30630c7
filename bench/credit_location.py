"""Where each variant's token credit goes (issue 23 item 4: why the intra policy writes longer).

    python bench/credit_location.py runs/study_intra --json docs/credit-location.json
    python bench/credit_location.py runs/study_intra --steps all

Reads the held-out records of every run of a study (``<variant>/seed<k>/heldout/step_<N>.jsonl``; nothing is
sampled or trained) and splits each response's tokens into the stop token (EOS), the tokens the verifiers blame
under a failed rubric, those they credit under a passed one, and the rest
(`rubrics2tokens.report.credit_location`). Per variant and step, pooled over seeds: the share of the negative
and of the positive advantage mass on each part, the mean advantage per token of each part, the share of the
tokens in each part, and the mean length and truncated fraction, to set against the length curves
(`bench/heldout_steps.py`). --steps: ``last`` (default: step 0 and the last step every run evaluated),
``all`` (every evaluation step), or steps separated by commas.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rubrics2tokens.report.credit_location import chosen_steps, credit_location, format_table
from rubrics2tokens.report.runs import find_runs


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", help="a study folder (or one run folder)")
    parser.add_argument("--steps", default="last", help="last, all, or steps separated by commas (0,20)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    runs = find_runs(args.study)
    results = credit_location(runs, chosen_steps(runs, args.steps))
    print(format_table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"study": args.study, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
