"""IFEval as a label set for `rtt judge audit`: rows whose rubrics are IFEval's instructions, and the published
responses the package ships with IFEval's official verdicts.

    python bench/ifeval_judge_labels.py --out /tmp/ifeval-audit             # all 541 prompts
    python bench/ifeval_judge_labels.py --out /tmp/ifeval-audit --limit 100
    rtt judge audit --rows /tmp/ifeval-audit/rows.jsonl --responses /tmp/ifeval-audit/responses.jsonl \\
        --local embedded:smollm2-135m-instruct

Writes ``OUT/rows.jsonl``: one row per IFEval prompt (the test set the package ships), each instruction a rubric
whose text is the instruction's own description (``build_description`` of its IFEval class, with the prompt's
arguments) and whose verifier is ``ifeval:<instruction id>`` with those arguments; and ``OUT/responses.jsonl``: the
response of `rubrics2tokens.resources.ifeval_reference_file` to each prompt (``{"id", "response"}`` lines). The
verifiers' strict verdicts on these responses are IFEval's official ones (tests/test_ifeval.py checks that).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from pathlib import Path

from rubrics2tokens.data.schema import write_jsonl
from rubrics2tokens.evaluation.benchmarks import load_benchmark
from rubrics2tokens.resources import ifeval_reference_file
from rubrics2tokens.verifiers.ifeval import IFEVAL_PREFIX, RANDOM_SEED, instruction_registries


def instruction_text(instruction_id: str, kwargs: dict) -> str:
    """IFEval's own description of one instruction with these arguments (seeded: a class draws what is unset)."""
    random.seed(RANDOM_SEED)
    checker = instruction_registries()[IFEVAL_PREFIX][instruction_id](instruction_id)
    return checker.build_description(**{name: value for name, value in kwargs.items() if value is not None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for rows.jsonl and responses.jsonl")
    parser.add_argument("--limit", type=int, default=0, help="only the first N prompts (0: all 541)")
    args = parser.parse_args()
    prompts = load_benchmark("ifeval")
    prompts = prompts[:args.limit] if args.limit else prompts
    with gzip.open(ifeval_reference_file("strict"), "rt", encoding="utf-8") as reference:
        responses = {line["prompt"]: line["response"] for line in map(json.loads, reference)}
    rows = [{"id": item.key, "prompt": item.prompt, "source": "ifeval",
             "rubrics": [{"description": instruction_text(instruction, kwargs)}
                         for instruction, kwargs in zip(item.instruction_ids, item.kwargs)],
             "ground_truth": {"instruction_id_list": list(item.verifier_ids), "kwargs": list(item.kwargs)}}
            for item in prompts]
    out = Path(args.out)
    write_jsonl(rows, out / "rows.jsonl")
    write_jsonl([{"id": item.key, "response": responses[item.prompt]} for item in prompts], out / "responses.jsonl")
    print(f"wrote {len(rows)} rows ({sum(len(row['rubrics']) for row in rows)} rubrics) and their responses to {out}")


if __name__ == "__main__":
    main()
