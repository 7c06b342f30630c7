"""`rtt report`: tables, curves, heatmaps and report.json rebuilt from run folders alone, written here by hand
following the run-folder contract (metrics.jsonl, heldout/step_<N>.jsonl, config.yaml), as a user who
gathered runs from several machines would have them."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.figure import Figure

from rubrics2tokens.report import write_report
from rubrics2tokens.report.curves import draw_panel
from rubrics2tokens.report.heatmaps import advantage_colour
from rubrics2tokens.report.stats import cell_matrix, difference, estimate

PROMPTS = [f"p{i:02d}" for i in range(12)]
FAMILIES = ["testbed:no_commas", "testbed:min_words"]
EVAL_STEPS = (0, 2, 4)
TOKENS = ["Hello", ",", " world", " <b>"]


def heldout_rows(step: int, passing: set[int], grpo: bool) -> list[dict]:
    """Two samples per prompt; min_words always passes, no_commas passes at the last step for ``passing``."""
    rows = []
    for p, prompt in enumerate(PROMPTS):
        for sample in (0, 1):
            no_commas = int(step == EVAL_STEPS[-1] and p in passing)
            verdicts = [no_commas, 1]
            rows.append({"step": step, "prompt_id": prompt, "sample": sample, "families": FAMILIES,
                         "verdicts": verdicts, "all_pass": int(all(verdicts)), "satisfaction": sum(verdicts) / 2,
                         "length": 10 + p, "truncated": p == 11, "entropy": 2.0 - 0.1 * step, "tokens": TOKENS,
                         "advantages": [0.5] * 4 if grpo else [0.2, -1.5, 0.3, 0.0]})
    return rows


STEP_TIMES = {1: 11.0, 2: 2.0, 3: 2.0, 4: 2.0}  # the first step is slow (warm-up): median 2.0, mean 4.25
TRAIN_RUNTIME = 31.0


def write_run(folder: Path, source: str, seed: int, passing: set[int], rtt_time: float) -> Path:
    """A finished run folder: config.yaml, metrics.jsonl (train records of steps 1-4, held-out records and the
    record Transformers logs when training ends), heldout/step_<N>.jsonl. ``rtt_time``: RTT's time per 2 s
    of step time."""
    (folder / "heldout").mkdir(parents=True)
    training = {"output_dir": str(folder), "seed": seed, "relevance_source": source, "reward_aggregation": "csr"}
    if source == "oracle":
        del training["relevance_source"]  # a resolved config.yaml lists only the training keys a run changed
    config = {"model": {"name_or_path": "tiny"}, "training": training}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    records = []
    for step in range(5):
        if step:
            share = STEP_TIMES[step] / 2.0
            records.append({"step": step, "reward": 0.1 * step, "step_time": STEP_TIMES[step],
                            "rtt/time/scoring_s": share * rtt_time / 2, "rtt/time/relevance_s": share * rtt_time / 4,
                            "rtt/time/advantages_s": share * rtt_time / 4})
        if step in EVAL_STEPS:
            rows = heldout_rows(step, passing, grpo=source == "none")
            with (folder / "heldout" / f"step_{step:06d}.jsonl").open("w") as out:
                out.writelines(json.dumps(row) + "\n" for row in rows)
            # what TRL logs: its entropy weighs tokens over its loss mask; the report reads the records instead
            records.append({"step": step, "heldout/all_pass": float(np.mean([r["all_pass"] for r in rows])),
                            "heldout/satisfaction": 0.0, "heldout/entropy": 9.0})
    records.append({"step": 4, "train_runtime": TRAIN_RUNTIME, "train_samples_per_second": 1.016,
                    "train_steps_per_second": 0.127, "total_flos": 0.0, "train_loss": 0.01})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    return folder


@pytest.fixture
def study(tmp_path) -> Path:
    """grpo-csr passes half the prompts at the end, rtt-csr all of them, rtt-random the same half as GRPO."""
    root = tmp_path / "study"
    for seed in (0, 1):
        write_run(root / "grpo-csr" / f"seed{seed}", "none", seed, set(range(6)), rtt_time=0.2)
        write_run(root / "rtt-csr" / f"seed{seed}", "oracle", seed, set(range(12)), rtt_time=0.4)
    write_run(root / "rtt-random" / "seed0", "random", 0, set(range(6)), rtt_time=0.4)
    return root


def rows_by_variant(report: dict) -> dict[str, dict]:
    return {row["variant"]: row for row in report["table"]["rows"]}


def test_a_variant_gains_over_its_own_first_evaluation_when_its_prompts_differ(study):
    """A pilot round that adds a rubric asks the same prompts with other rubrics: its base differs from the
    others'. Its gain is over its own runs' step 0, not over the folder's pooled "before training" row."""
    first = study / "rtt-random" / "seed0" / "heldout" / "step_000000.jsonl"
    rows = [json.loads(line) for line in first.read_text().splitlines()]
    first.write_text("".join(json.dumps(row | {"verdicts": [1, 1], "satisfaction": 1.0}) + "\n" for row in rows))
    write_report(study)
    rows = rows_by_variant(json.loads((study / "report" / "report.json").read_text()))
    assert rows["rtt-random"]["minus_before_training"]["satisfaction"]["mean"] == pytest.approx(0.75 - 1.0)
    assert rows["grpo-csr"]["minus_before_training"]["satisfaction"]["mean"] == pytest.approx(0.75 - 0.5)


def test_report_numbers_are_the_run_folders_numbers(study):
    page = write_report(study)
    assert page == study / "report" / "report.html"
    report = json.loads((study / "report" / "report.json").read_text())
    rows = rows_by_variant(report)
    assert report["table"]["baseline"] == "grpo-csr"
    assert {run["variant"]: run["relevance_source"] for run in report["runs"]} == {
        "grpo-csr": "none", "rtt-csr": "oracle", "rtt-random": "random"}, "RTTConfig's default where a config is silent"
    before, grpo, rtt, random = rows["before training"], rows["grpo-csr"], rows["rtt-csr"], rows["rtt-random"]
    assert before["metrics"]["all_pass"]["mean"] == 0.0 and before["metrics"]["satisfaction"]["mean"] == 0.5
    assert grpo["heldout_steps"] == [4, 4] and grpo["seeds"] == [0, 1]
    assert grpo["metrics"]["all_pass"]["mean"] == pytest.approx(0.5)
    assert grpo["metrics"]["satisfaction"]["mean"] == pytest.approx(0.75)
    assert grpo["metrics"]["all_pass"]["n"] == 24  # (seed, prompt) cells: 2 seeds x 12 prompts
    assert rtt["metrics"]["all_pass"]["mean"] == 1.0 and rtt["metrics"]["pass/testbed:no_commas"]["mean"] == 1.0
    assert grpo["metrics"]["pass/testbed:min_words"]["mean"] == 1.0
    assert grpo["metrics"]["length"]["mean"] == pytest.approx(15.5)
    assert grpo["metrics"]["truncated"]["mean"] == pytest.approx(1 / 12)
    assert grpo["metrics"]["entropy"]["mean"] == pytest.approx(1.6)
    lo, hi = grpo["metrics"]["all_pass"]["lo"], grpo["metrics"]["all_pass"]["hi"]
    assert 0.15 < lo < 0.5 < hi < 0.85, "the interval reflects which prompts were drawn"
    # the gap to GRPO-CSR: RTT's is beyond the interval, random relevance's is exactly none
    assert rtt["minus_baseline"]["all_pass"]["mean"] == pytest.approx(0.5)
    assert rtt["minus_baseline"]["all_pass"]["lo"] > 0
    assert random["minus_baseline"]["all_pass"] == {"mean": 0.0, "lo": 0.0, "hi": 0.0, "n": 12}
    assert grpo["minus_baseline"] == {}
    assert grpo["median_step_time_s"]["mean"] == 2.0
    assert grpo["rtt_time_share"] == pytest.approx(0.1) and rtt["rtt_time_share"] == pytest.approx(0.2)
    curve = report["curves"]["all_pass"]["rtt-csr"]
    assert curve == {"step": [0, 2, 4], "mean": [0.0, 0.0, 1.0], "lo": [0.0, 0.0, 1.0], "hi": [0.0, 0.0, 1.0]}
    grpo_curve = report["curves"]["all_pass"]["grpo-csr"]
    assert (grpo_curve["lo"][-1], grpo_curve["hi"][-1]) == (lo, hi), "the band is the table's interval"
    # curves come from the held-out records, as the table does, not from metrics.jsonl's heldout/* lines
    assert report["curves"]["satisfaction"]["grpo-csr"]["mean"] == pytest.approx([0.5, 0.5, 0.75])
    assert report["curves"]["entropy"]["grpo-csr"]["mean"] == pytest.approx([2.0, 1.8, 1.6])
    assert report["curves"]["length"]["grpo-csr"]["mean"] == pytest.approx([15.5] * 3)
    assert report["curves"]["pass/testbed:no_commas"]["rtt-random"]["mean"] == pytest.approx([0.0, 0.0, 0.5])
    assert report["heatmaps"]["grpo_run"].endswith("grpo-csr/seed0")
    assert report["heatmaps"]["rtt_run"].endswith("rtt-csr/seed0"), "the RTT variant with the best final all-pass"
    assert report["heatmaps"]["steps"] == {"grpo": [0, 4], "rtt": [0, 4]}
    assert report["heatmaps"]["examples"][0] == {"prompt_id": "p00", "sample": 0}
    text = (study / "report" / "report.txt").read_text()
    assert "rtt-csr" in text and "1.00 [1.00,1.00]" in text and "+0.50 [+" in text and "20.0%" in text
    assert "per rubric family (testbed:*)" in text and "  min_words  " in text


def test_the_page_stands_alone_with_curves_and_heatmaps(study):
    page = write_report(study, examples=2).read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 2, "curves.png and families.png, embedded"
    assert all(base64.b64decode(image).startswith(b"\x89PNG\r\n\x1a\n") for image in images)
    assert (study / "report" / "curves.png").stat().st_size < 200_000
    assert not re.search(r'(src|href)="(?!data:)', page), "nothing the page links to"
    assert page.count('class="panel"') == 2 * 4, "two examples x (GRPO, RTT) x (first, last evaluation)"
    r, g, b = advantage_colour(-1.5, 1.5)
    assert f'background:rgb({r},{g},{b});color:#fff" title="-1.500"' in page, "the most negative token: full red"
    assert (r, g, b) == (178, 24, 43) and advantage_colour(1.0, 2.0)[2] > advantage_colour(1.0, 2.0)[0]
    assert " &lt;b&gt;</span>" in page and " <b></span>" not in page, "tokens are escaped"


def test_runs_gathered_by_hand_from_anywhere(study, tmp_path):
    gathered = tmp_path / "gathered"
    shutil.copytree(study / "grpo-csr" / "seed1", gathered / "baseline_from_machine_a")
    shutil.copytree(study / "rtt-csr" / "seed0", gathered / "machine_b" / "rtt-run")
    write_report(gathered)
    report = json.loads((gathered / "report" / "report.json").read_text())
    assert set(rows_by_variant(report)) == {"before training", "baseline_from_machine_a", "machine_b/rtt-run"}
    assert [run["seed"] for run in report["runs"]] == [1, 0], "seeds from each run's config.yaml"
    assert report["table"]["baseline"] == "baseline_from_machine_a"
    assert report["heatmaps"]["rtt_run"].endswith("machine_b/rtt-run")


def test_one_run_folder_still_being_written(study):
    run = study / "rtt-csr" / "seed1"
    metrics = run / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 5, "heldout/all_p')  # a line being appended
    before = metrics.read_bytes()
    write_report(run)
    assert metrics.read_bytes() == before, "the report never changes a run folder's files"
    report = json.loads((run / "report" / "report.json").read_text())
    assert rows_by_variant(report)["rtt-csr"]["metrics"]["all_pass"]["mean"] == 1.0


def test_runs_without_heldout_evaluation_still_report_their_cost(tmp_path):
    run = tmp_path / "old-run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "step_time": 3.0, "rtt/time/scoring_s": 0.3}) + "\n")
    write_report(run)
    text = (run / "report" / "report.txt").read_text()
    assert "3.0" in text and "10.0%" in text
    assert "No token-credit view: no run has held-out responses" in (run / "report" / "report.html").read_text()


def test_rtt_report_command(study, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "rubrics2tokens.cli.main", "report", str(study),
                             "--baseline", "rtt-random"], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (study / "report" / "report.txt").read_text().strip() in result.stdout
    assert "Δ all-pass vs rtt-random" in result.stdout and str(study / "report" / "report.html") in result.stdout
    (tmp_path / "empty").mkdir()
    missing = subprocess.run([sys.executable, "-m", "rubrics2tokens.cli.main", "report", str(tmp_path / "empty")],
                             capture_output=True, text=True, timeout=300, env=env)
    assert missing.returncode == 2 and "no run folder" in missing.stderr and "Traceback" not in missing.stderr


def test_bootstrap_interval_over_seeds_and_prompts():
    rows = [[{"prompt_id": f"q{p}", "all_pass": int(p < 5)} for p in range(10)] for _ in range(3)]
    matrix = cell_matrix(rows, [f"q{p}" for p in range(10)], "all_pass")
    assert matrix.shape == (3, 10)
    spread = estimate(matrix)
    assert spread.mean == 0.5 and 0.1 < spread.lo < 0.5 < spread.hi < 0.9
    constant = estimate(np.ones((3, 10)))
    assert (constant.mean, constant.lo, constant.hi) == (1.0, 1.0, 1.0)
    seeds_disagree = estimate(np.array([[1.0] * 10, [0.0] * 10]))
    assert seeds_disagree.lo == 0.0 and seeds_disagree.hi == 1.0, "seeds are resampled too"
    gap = difference(np.ones((3, 10)), matrix)
    assert gap.mean == 0.5 and gap.excludes_zero()
    assert not difference(matrix, matrix).excludes_zero()


def base_model_rows(seed: int) -> list[dict]:
    """Step 0 of a run with this seed: the base model's responses, which pass on prompts that depend on the
    sampling seed (so runs of different seeds sample differently, runs of one seed identically)."""
    return [{"step": 0, "prompt_id": prompt, "sample": sample, "families": FAMILIES[:1],
             "verdicts": [int((p + sample + seed) % 3 == 0)], "all_pass": int((p + sample + seed) % 3 == 0),
             "satisfaction": float((p + sample + seed) % 3 == 0), "length": 10, "truncated": False, "entropy": 2.0}
            for p, prompt in enumerate(PROMPTS) for sample in (0, 1)]


def test_before_training_counts_the_base_model_once(tmp_path):
    """issue 20 defect 5: every run's step-0 evaluation is the same base model on the same held-out prompts;
    pooled as independent (run, prompt) cells, more variants beside it narrowed the "before training"
    interval. The base model is one run: its interval is the bootstrap over prompts of each prompt's mean
    over every step-0 response, and duplicate evaluations change nothing."""
    def study_of(variants: list[str]) -> dict:
        root = tmp_path / "-".join(variants)
        for variant in variants:
            for seed in (0, 1, 2):
                folder = write_run(root / variant / f"seed{seed}", "none" if "grpo" in variant else "oracle",
                                   seed, set(range(6)), rtt_time=0.2)
                (folder / "heldout" / "step_000000.jsonl").write_text(
                    "".join(json.dumps(row) + "\n" for row in base_model_rows(seed)))
        write_report(root)
        return rows_by_variant(json.loads((root / "report" / "report.json").read_text()))["before training"]

    alone, beside_others = study_of(["grpo-csr"]), study_of(["grpo-csr", "rtt-csr", "rtt-random"])
    assert beside_others["metrics"] == alone["metrics"], "two more variants add no evidence about the base model"
    pooled = cell_matrix([[row for seed in (0, 1, 2) for row in base_model_rows(seed)]], PROMPTS, "all_pass")
    assert alone["metrics"]["all_pass"] == estimate(pooled).to_json()
    assert alone["metrics"]["all_pass"]["n"] == len(PROMPTS), "one cell per prompt: the base model is one run"


def test_a_single_rtt_run_shows_its_own_token_credit(study):
    """issue 19: the demo is one RTT run, no GRPO run beside it; its held-out records carry every token's
    advantage, so its report shows them: the same responses at the first and the last evaluation."""
    run = study / "rtt-csr" / "seed0"
    page = write_report(run, examples=2).read_text()
    shown = json.loads((run / "report" / "report.json").read_text())["heatmaps"]
    assert shown == {"rtt_run": str(run), "steps": {"rtt": [0, 4]},
                     "examples": [{"prompt_id": "p00", "sample": 0}, {"prompt_id": "p01", "sample": 0}]}
    assert page.count('class="panel"') == 2 * 2, "two examples x (first, last evaluation)"
    assert "No token-credit" not in page
    r, g, b = advantage_colour(-1.5, 1.5)
    assert f'background:rgb({r},{g},{b});color:#fff" title="-1.500"' in page, "coloured by its advantage"
    assert '<span class="chip fail">✗ testbed:no_commas</span>' in page, "the step-0 verdicts"
    assert '<span class="chip pass">✓ testbed:no_commas</span>' in page, "the step-4 verdicts"


def test_a_plain_grpo_run_says_why_it_has_no_token_credit(study):
    run = study / "grpo-csr" / "seed0"
    page = write_report(run).read_text()
    assert json.loads((run / "report" / "report.json").read_text())["heatmaps"] == {}
    assert 'class="panel"' not in page
    assert "No token-credit view: every run here is plain GRPO (relevance_source none)" in page


def test_rate_curves_span_0_to_1_with_interval_bands():
    """issue 19: a move of all-pass from 0.094 to 0.125, inside its interval, drawn on an auto-scaled axis
    looked steep; rates are drawn on 0..1, with the band of their 95% interval."""
    curves = {"rtt": {"step": [0, 10], "mean": [0.094, 0.125], "lo": [0.03, 0.05], "hi": [0.17, 0.2]}}
    axes = Figure().subplots(1, 3)
    for axis, key in zip(axes, ("all_pass", "pass/testbed:no_commas", "length")):
        draw_panel(axis, key, curves, {"rtt": "C0"})
    assert axes[0].get_ylim() == (0.0, 1.0) and axes[1].get_ylim() == (0.0, 1.0)
    assert axes[2].get_ylim()[1] < 0.5, "a length, not a rate: its axis fits its values"
    band = axes[0].collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(0.03) and band[:, 1].max() == pytest.approx(0.2)


def test_cost_columns_say_what_the_terminal_says(study):
    """issue 19: the terminal prints the median step time, the report printed the mean under no name; the wall
    time column was empty for a run `rtt study` did not run."""
    run = study / "rtt-csr" / "seed0"
    write_report(run)
    row = rows_by_variant(json.loads((run / "report" / "report.json").read_text()))["rtt-csr"]
    assert row["median_step_time_s"]["mean"] == 2.0, "the median of 11, 2, 2, 2 s (their mean is 4.25)"
    assert row["wall_s"]["mean"] == TRAIN_RUNTIME, "the train_runtime Transformers logs when training ends"
    health = (run / "report" / "report.txt").read_text().split("held-out health and cost\n")[1].split("\n\n")[0]
    header, _, _, row_text = health.splitlines()
    assert "median step time (s)  RTT share  wall time/run (s)" in header
    assert row_text.split()[-3:] == ["2.0", "20.0%", "31"], "one run: its values, no interval over one run"
    (run / "finished.json").write_text(json.dumps({"wall_s": 95.0}))
    write_report(run)
    row = rows_by_variant(json.loads((run / "report" / "report.json").read_text()))["rtt-csr"]
    assert row["wall_s"]["mean"] == 95.0, "`rtt study`'s wall time, over every attempt, comes first"
