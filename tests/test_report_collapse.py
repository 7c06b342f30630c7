"""The collapse criterion of the intra study (report/collapse.py) and the report's columns built on it: degenerate
runs, the gain over the base model, and satisfaction without the quality rubrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rubrics2tokens.report import write_report
from rubrics2tokens.report.collapse import degeneration, repeats_itself, repetition_share
from rubrics2tokens.report.runs import find_runs
from rubrics2tokens.report.table import build_table, format_table

CLEAN = ("The river runs past the old mill. Children play on its banks in summer. "
         "In winter the water freezes and the town skates on it.")
LOOP = "journey of life " * 30
FAMILIES = ["testbed:no_commas", "testbed:min_words", "testbed:distinct_words"]
BASE = {"length": 100.0, "truncated": 0.2, "entropy": 3.1}


def test_repeats_itself_flags_loops_and_repeated_lines_not_a_clean_answer():
    assert repeats_itself(LOOP)
    assert repeats_itself("Drink water every day.\nDrink water every day.")
    assert repeats_itself("")  # no word at all: the stop, nothing said
    assert not repeats_itself(CLEAN)
    assert repetition_share([{"text": CLEAN}, {"text": LOOP}, {"text": CLEAN}, {"text": CLEAN}]) == 0.25


@pytest.mark.parametrize(("later", "repetition", "expected"), [
    ({"length": 95.0, "truncated": 0.25, "entropy": 3.0}, 0.05, []),
    ({"length": 95.0, "truncated": 0.25, "entropy": 1.9}, 0.0, ["entropy"]),
    ({"length": 95.0, "truncated": 0.25, "entropy": 3.0}, 0.11, ["repeat"]),
    ({"length": 120.0, "truncated": 0.55, "entropy": 3.0}, 0.0, ["truncated"]),
    ({"length": 49.0, "truncated": 0.0, "entropy": 3.0}, 0.0, ["length"]),
    ({"length": 128.0, "truncated": 0.9, "entropy": 1.0}, 0.8, ["entropy", "repeat", "truncated"]),
])
def test_each_criterion_fires_on_its_own(later, repetition, expected):
    reasons = degeneration(BASE, later, repetition)
    assert len(reasons) == len(expected)
    assert all(word in reason for word, reason in zip(expected, reasons))


def test_truncation_counts_only_above_the_floor_and_above_the_first_evaluation():
    long_base = {"length": 110.0, "truncated": 0.55, "entropy": 3.1}
    assert degeneration(long_base, {"length": 110.0, "truncated": 0.6, "entropy": 3.1}, 0.0) == []
    assert degeneration(long_base, {"length": 110.0, "truncated": 0.7, "entropy": 3.1}, 0.0)
    assert degeneration(BASE, {"length": 100.0, "truncated": 0.45, "entropy": 3.1}, 0.0) == []


def _rows(step: int, text: str, passed: list[int]) -> list[dict]:
    return [{"step": step, "prompt_id": f"p{p}", "sample": sample, "families": FAMILIES, "verdicts": passed,
             "all_pass": int(all(passed)), "satisfaction": sum(passed) / len(passed), "length": 100,
             "truncated": False, "entropy": 3.0, "text": text}
            for p in range(6) for sample in (0, 1)]


def _run(folder: Path, steps: dict[int, list[dict]], source: str) -> None:
    (folder / "heldout").mkdir(parents=True)
    config = {"training": {"relevance_source": source, "token_partition": "intra_sample", "seed": 0}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "metrics.jsonl").write_text(json.dumps({"step": 1, "step_time": 1.0}) + "\n")
    for step, rows in steps.items():
        (folder / "heldout" / f"step_{step:06d}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_the_table_names_degenerate_runs_gains_and_constraints(tmp_path):
    start = _rows(0, CLEAN, [0, 1, 1])
    _run(tmp_path / "grpo" / "seed0", {0: start, 10: _rows(10, CLEAN, [1, 1, 1])}, "none")
    _run(tmp_path / "intra" / "seed0", {0: start, 10: _rows(10, LOOP, [1, 1, 0])}, "oracle")
    table = build_table(find_runs(tmp_path))
    rows = {row.name: row for row in table.rows}
    assert rows["grpo"].degenerate == {}
    assert list(rows["intra"].degenerate) == ["intra/seed0"]
    assert "repeat themselves" in rows["intra"].degenerate["intra/seed0"][10][0]
    # constraints: the mean over the rubrics that are not quality rubrics (no_commas, min_words)
    assert rows["before training"].metrics["constraints"].mean == pytest.approx(0.5)
    assert rows["intra"].metrics["constraints"].mean == pytest.approx(1.0)
    assert rows["grpo"].gain["satisfaction"].mean == pytest.approx(1 / 3)
    assert rows["intra"].delta["constraints"].mean == pytest.approx(0.0)
    text = format_table(table)
    assert "degenerate runs" in text and "1/1" in text and "0/1" in text
    assert "intra/seed0 at step 10: 100% of answers repeat themselves" in text

    write_report(tmp_path)
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    by_variant = {row["variant"]: row for row in report["table"]["rows"]}
    assert by_variant["intra"]["degenerate_runs"]["intra/seed0"]["10"]
    assert by_variant["grpo"]["minus_before_training"]["satisfaction"]["mean"] == pytest.approx(1 / 3)
    assert {run["variant"]: run["token_partition"] for run in report["runs"]} == {"grpo": "intra_sample",
                                                                                  "intra": "intra_sample"}
