"""Where the token credit goes (`report.credit_location`, bench/credit_location.py): a hand-built study whose
responses' parts and advantages are chosen, so every share is known exactly."""

from __future__ import annotations

import importlib.util
import json

import pytest
import yaml

from rubrics2tokens.report.credit_location import chosen_steps, credit_location, token_offsets
from rubrics2tokens.report.runs import find_runs
from tests_paths import REPO

# Every prompt of this config has the rubrics no_commas and title; held-out prompt 0 lists them in that order.
CONFIG = {"data": {"source": "testbed", "testbed": {"num_prompts": 4, "seed": 0, "min_rubrics": 2, "max_rubrics": 2,
                                                    "families": ["title", "no_commas"]}},
          "eval": {"source": "testbed", "num_prompts": 2, "seed": 1000, "samples": 1},
          "training": {"max_completion_length": 64}}
PROMPT = "testbed-1000-000000"
FAMILIES = ["testbed:no_commas", "testbed:title"]

# The title passes and credits "<<Hi>>" (tokens 0-2), no_commas fails and blames "," (token 4), the stop ends it.
STOPPED = ("<<Hi>> a, b.", ["<<", "Hi", ">>", " a", ",", " b", ".", "<|im_end|>"])
# Cut at the length limit: no stop token; the title credits token 0, the comma blames token 2.
CUT = ("<<Hi>> a, b", ["<<Hi>>", " a", ",", " b"])


def record(step: int, response: tuple[str, list[str]], advantages: list[float]) -> dict:
    text, tokens = response
    return {"step": step, "prompt_id": PROMPT, "sample": 0, "families": FAMILIES, "verdicts": [0, 1],
            "length": len(tokens), "truncated": tokens[-1] != "<|im_end|>", "entropy": 2.0, "text": text,
            "tokens": tokens, "advantages": advantages}


def write_run(folder, relevance_source: str, records: list[dict]) -> None:
    (folder / "heldout").mkdir(parents=True)
    config = {**CONFIG, "training": {**CONFIG["training"], "relevance_source": relevance_source}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "metrics.jsonl").write_text("")
    for row in records:
        (folder / "heldout" / f"step_{row['step']:06d}.jsonl").write_text(json.dumps(row) + "\n")


@pytest.fixture
def study(tmp_path):
    """intra: two seeds at steps 0 and 10; grpo: one seed at steps 0, 10 and 20 (the last common step is 10)."""
    write_run(tmp_path / "intra" / "seed0", "oracle", [
        record(0, STOPPED, [0.0] * 8),
        record(10, STOPPED, [0.5, 0.5, 0.5, 0.25, -1.0, 0.25, 0.25, -0.5])])
    write_run(tmp_path / "intra" / "seed1", "oracle", [
        record(0, CUT, [0.0] * 4),
        record(10, CUT, [0.25, -0.25, -0.75, 0.0])])
    write_run(tmp_path / "grpo" / "seed0", "none", [record(step, STOPPED, [0.5] * 8) for step in (0, 10, 20)])
    return tmp_path


def parts(eos, blamed, credited, unflagged) -> dict:
    return {"eos": eos, "blamed": blamed, "credited": credited, "unflagged": unflagged}


def test_each_part_gets_its_share_of_the_credit(study):
    runs = find_runs(study)
    assert chosen_steps(runs, "last") == [0, 10]
    assert chosen_steps(runs, "all") == [0, 10, 20]
    results = {(r["variant"], r["step"]): r for r in credit_location(runs, [0, 10])}
    assert list(results) == [("grpo", 0), ("grpo", 10), ("intra", 0), ("intra", 10)]

    intra = results["intra", 10]
    # tokens: stopped eos 7, blamed 4, credited 0-2, unflagged 3, 5, 6; cut blamed 2, credited 0, unflagged 1, 3
    assert intra["token_share"] == parts(1 / 12, 2 / 12, 4 / 12, 5 / 12)
    # negative mass 2.5: the stop 0.5, the commas 1.0 + 0.75, " a" of the cut response 0.25
    assert intra["negative_mass"] == 2.5
    assert intra["negative_share"] == parts(0.2, 0.7, 0.0, 0.1)
    # positive mass 2.5: the titles 1.5 + 0.25, " a", " b", "." of the stopped response 0.75
    assert intra["positive_share"] == parts(0.0, 0.0, 0.7, 0.3)
    assert intra["mean_advantage"] == parts(-0.5, -0.875, 0.4375, 0.1)
    assert (intra["runs"], intra["responses"], intra["mean_length"], intra["truncated_frac"]) == (2, 2, 6.0, 0.5)
    assert intra["verdict_mismatches"] == 0

    grpo = results["grpo", 10]
    assert grpo["negative_share"] == parts(None, None, None, None)  # no negative advantage to place
    assert grpo["positive_share"] == grpo["token_share"] == parts(1 / 8, 1 / 8, 3 / 8, 3 / 8)
    assert grpo["mean_advantage"] == parts(0.5, 0.5, 0.5, 0.5)
    assert results["intra", 0]["positive_share"] == parts(None, None, None, None)
    assert results["intra", 0]["mean_advantage"] == parts(0.0, 0.0, 0.0, 0.0)


def test_a_record_of_another_prompt_set_is_refused(study):
    row = record(10, STOPPED, [0.0] * 8) | {"families": ["testbed:title", "testbed:no_commas"]}
    (study / "intra" / "seed0" / "heldout" / "step_000010.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match="not those its config generates"):
        credit_location(find_runs(study), [10])


def test_a_record_whose_pieces_miss_text_is_left_out_and_counted(study):
    shifted = record(10, STOPPED, [0.0] * 8)
    shifted["text"] += "xy"  # pieces that stop two characters short, as the alignment bug before 2026-12-03 wrote
    folder = study / "intra" / "seed0" / "heldout" / "step_000010.jsonl"
    folder.write_text(folder.read_text() + json.dumps(shifted) + "\n")
    intra = next(r for r in credit_location(find_runs(study), [10]) if r["variant"] == "intra")
    assert (intra["responses"], intra["unaligned"]) == (2, 1)


def test_token_offsets_follow_the_text():
    # "é" split over two tokens: both show it, the second starts one character back; the stop has no text
    assert token_offsets("<<Hé>>", ["<<", "H", "é", "é", ">>", "<|im_end|>"]) == [
        (0, 2), (2, 3), (3, 4), (3, 4), (4, 6), (6, 6)]
    with pytest.raises(ValueError, match="cover 2 of the text's 3"):
        token_offsets("abc", ["ab"])


def test_the_bench_prints_and_writes_the_table(study, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("credit_location_bench", REPO / "bench" / "credit_location.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "out" / "location.json"
    bench.main([str(study), "--steps", "all", "--json", str(out)])
    printed = capsys.readouterr().out
    assert "| intra | 10 | 2 | 2 | 6 | 0.50 | 0.08 / 0.17 / 0.33 / 0.42 | 0.20 / 0.70 / 0.00 / 0.10 " in printed
    assert "| grpo | 20 | 1 | 1 | 8 | 0.00 |" in printed
    written = json.loads(out.read_text())["results"]
    assert [(r["variant"], r["step"]) for r in written] == [("grpo", 0), ("grpo", 10), ("grpo", 20), ("intra", 0),
                                                            ("intra", 10)]
