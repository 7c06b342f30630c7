"""How often `rtt rubrics generate` attaches IFEval's own instructions to IFEval's prompts: recall and precision
per instruction id.

    python bench/rubric_extraction.py                                       # model-free extraction, 541 prompts
    python bench/rubric_extraction.py --local embedded:smollm2-135m-instruct --no-extraction --limit 40
    python bench/rubric_extraction.py --base-url http://127.0.0.1:8000/v1 --model NAME --no-extraction

Writes IFEval's prompts (the test set the package ships) as a plain prompt file (``{"id", "prompt"}`` lines), runs
``rtt rubrics generate`` on it with the options given, and compares the verifiers of each written row with the
prompt's true instructions (ids and kwargs). Per instruction id:

- recall: the share of the true instructions for which the row carries that verifier with the right arguments (a
  prompt that got no row recovers none of its instructions);
- precision: the share of the attached verifiers of that id that match a true instruction of the prompt.

Right arguments: the same argument names (unset ones aside), and each value equal: numbers and relations exactly;
keywords, forbidden words, a keyword, a letter and a paragraph's first word without regard to case (the checkers
ignore it), lists of them as sets; free text (an end phrase, a postscript marker, the request to repeat, a section
marker, a language code) exactly after stripping surrounding whitespace and quotes.

The extraction rules were written from the prompts at even positions of the file (0, 2, 4, ...); the table also
shows recall and precision on each half.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rubrics2tokens.cli.main import main as rtt
from rubrics2tokens.data.schema import read_jsonl
from rubrics2tokens.evaluation.benchmarks import load_benchmark

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CASE_FREE_ARGUMENTS = {"keywords", "forbidden_words", "keyword", "letter", "first_word"}


def _value(name: str, value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip().strip("\"'“”‘’").strip()
        return value.lower() if name in CASE_FREE_ARGUMENTS else value
    if isinstance(value, list):
        return frozenset(_value(name, item) for item in value)
    return value


def same_arguments(truth: dict[str, Any], attached: dict[str, Any]) -> bool:
    """Whether an attached verifier's arguments are the true instruction's (the module's definition)."""
    truth = {name: value for name, value in truth.items() if value is not None}
    attached = {name: value for name, value in attached.items() if value is not None}
    return truth.keys() == attached.keys() and all(_value(name, truth[name]) == _value(name, attached[name])
                                                   for name in truth)


def score(rows: dict[str, list[tuple[str, dict]]], benchmark: list, positions: range | list) -> dict[str, Counter]:
    """Counters per verifier id: ``truth``, ``recovered``, ``attached``, ``matched``, over the prompts at
    ``positions`` of the benchmark."""
    counts = {name: Counter() for name in ("truth", "recovered", "attached", "matched")}
    for position in positions:
        item = benchmark[position]
        truth = list(zip(item.verifier_ids, item.kwargs))
        attached = rows.get(item.key, [])
        for verifier, kwargs in truth:
            counts["truth"][verifier] += 1
            counts["recovered"][verifier] += any(verifier == other and same_arguments(kwargs, other_kwargs)
                                                 for other, other_kwargs in attached)
        for verifier, kwargs in attached:
            counts["attached"][verifier] += 1
            counts["matched"][verifier] += any(verifier == other and same_arguments(other_kwargs, kwargs)
                                               for other, other_kwargs in truth)
    return counts


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.3f}" if whole else "-"


def table(counts: dict[str, Counter], halves: dict[str, dict[str, Counter]]) -> str:
    ids = sorted(set(counts["truth"]) | set(counts["attached"]))
    lines = [f"{'instruction id':52s} {'truth':>5s} {'found':>5s} {'recall':>6s} {'attached':>8s} {'not in truth':>12s}"
             f" {'precision':>9s}"]
    for verifier in ids:
        truth, found = counts["truth"][verifier], counts["recovered"][verifier]
        attached, matched = counts["attached"][verifier], counts["matched"][verifier]
        lines.append(f"{verifier.removeprefix('ifeval:'):52s} {truth:5d} {found:5d} {_share(found, truth):>6s} "
                     f"{attached:8d} {attached - matched:12d} {_share(matched, attached):>9s}")
    for label, part in {"all": counts, **halves}.items():
        truth, found = sum(part["truth"].values()), sum(part["recovered"].values())
        attached, matched = sum(part["attached"].values()), sum(part["matched"].values())
        lines.append(f"{'total (' + label + ')':52s} {truth:5d} {found:5d} {_share(found, truth):>6s} {attached:8d} "
                     f"{attached - matched:12d} {_share(matched, attached):>9s}")
    return "\n".join(lines)


def _machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return f"{model}, {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=0, help="only the first N prompts (0: all 541)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the prompt file and the rows (default: a "
                                                               "temporary one; an existing one continues)")
    parser.add_argument("--json", type=Path, default=None, help="also write the counts here")
    args, generate_options = parser.parse_known_args(argv)  # the rest goes to `rtt rubrics generate`

    benchmark = load_benchmark("ifeval")
    positions = range(args.limit or len(benchmark))
    folder = args.out or Path(tempfile.mkdtemp(prefix="rubric-extraction-"))
    folder.mkdir(parents=True, exist_ok=True)
    prompts, out = folder / "prompts.jsonl", folder / "rows.jsonl"
    prompts.write_text("".join(json.dumps({"id": benchmark[position].key, "prompt": benchmark[position].prompt}) + "\n"
                               for position in positions), encoding="utf-8")

    load = os.getloadavg()[0]
    start = time.perf_counter()
    rtt(["rubrics", "generate", "--prompts", str(prompts), "--out", str(out), *generate_options])
    wall_s = time.perf_counter() - start

    rows = {str(record["id"]): [(verifier, kwargs) for verifier, kwargs in zip(
        record["ground_truth"]["instruction_id_list"], record["ground_truth"]["kwargs"]) if verifier is not None]
        for _, record in read_jsonl(out)} if out.is_file() else {}
    counts = score(rows, benchmark, positions)
    halves = {"rules' half": score(rows, benchmark, positions[::2]),
              "other half": score(rows, benchmark, positions[1::2])}
    print(f"\nrtt rubrics generate {' '.join(generate_options) or '(model-free extraction)'} on the first "
          f"{len(positions)} IFEval prompts: {wall_s:.1f} s on {_machine()}, load {load:.2f} at start; "
          f"{len(rows)} rows")
    print(table(counts, halves))
    result = {"options": generate_options, "prompts": len(positions), "rows": len(rows), "wall_s": wall_s,
              "machine": _machine(), "load_at_start": load,
              "counts": {label: {name: dict(counter) for name, counter in part.items()}
                         for label, part in {"all": counts, **halves}.items()}}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
