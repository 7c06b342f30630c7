"""Relevance metrics on hand-computed cases, training (tiny model, resume, SmolLM2), evaluate and show, and a
trained model used in `rtt train`."""

from __future__ import annotations

import html
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests_paths import REPO
from rubrics2tokens.cli.main import main
from rubrics2tokens.config import ConfigError
from rubrics2tokens.data.synthetic import generate_rows
from rubrics2tokens.models import DEFAULT_POLICY, MINILM_BACKBONE
from rubrics2tokens.relevance import training
from rubrics2tokens.relevance.training import loop
from rubrics2tokens.relevance.labels import label_with_verifiers, load_labels, token_labels, write_labels
from rubrics2tokens.relevance.metrics import (auroc, label_runs, matched_spans, predict_pairs, relevance_report,
                                              span_iou, summarize)
from rubrics2tokens.relevance.model import RelevanceModel
from rubrics2tokens.relevance.show import render_html, render_terminal, token_relevance
from rubrics2tokens.relevance.training import (IGNORE_INDEX, RelevanceTrainingConfig, build_examples,
                                               build_model, load_training_config, split_by_prompt,
                                               train_relevance_model)

# ---------------------------------------------------------------- metrics


def test_spans_are_maximal_runs_and_match_one_to_one_at_iou_one_half():
    assert label_runs(torch.tensor([1, 1, 0, 1, 0, 0, 1], dtype=torch.bool)) == [(0, 2), (3, 4), (6, 7)]
    assert label_runs(torch.zeros(3, dtype=torch.bool)) == []
    assert span_iou((0, 4), (2, 6)) == pytest.approx(2 / 6)
    assert matched_spans([(0, 4)], [(0, 2)]) == 1  # IoU exactly 0.5 matches
    assert matched_spans([(0, 4)], [(0, 2), (2, 4)]) == 1  # one predicted span matches one gold span only
    assert matched_spans([(0, 2), (2, 4)], [(0, 4)]) == 1
    assert matched_spans([(0, 5)], [(0, 2)]) == 0  # IoU 0.4


def test_auroc_is_the_chance_a_relevant_token_outranks_an_irrelevant_one():
    assert auroc(torch.tensor([0.9, 0.8, 0.2, 0.1]), torch.tensor([1, 1, 0, 0])) == 1.0
    assert auroc(torch.tensor([0.1, 0.2, 0.8, 0.9]), torch.tensor([1, 1, 0, 0])) == 0.0
    # pairs (positive, negative): (0.8, 0.5) win, (0.8, 0.8) tie, (0.3, 0.5) loss, (0.3, 0.8) loss -> 1.5 / 4
    assert auroc(torch.tensor([0.8, 0.3, 0.5, 0.8]), torch.tensor([1, 1, 0, 0])) == pytest.approx(0.375)
    assert math.isnan(auroc(torch.tensor([0.3, 0.4]), torch.tensor([1, 1])))


def test_token_and_span_metrics_on_a_hand_computed_case():
    predictions = [torch.tensor([0.9, 0.8, 0.1, 0.7, 0.2]), torch.tensor([0.6, 0.1, 0.1])]
    labels = [torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0]), torch.tensor([0.0, 0.0, 1.0])]
    metrics = summarize(predictions, labels, threshold=0.5)
    # tokens: predicted 1 at 0, 1, 3 | 5; gold 1 at 0, 1, 4 | 7 -> TP 2, predicted 4, gold 4
    assert (metrics["token_precision"], metrics["token_recall"], metrics["token_f1"]) == (0.5, 0.5, 0.5)
    # spans: predicted (0,2) (3,4) | (0,1); gold (0,2) (4,5) | (2,3) -> one match of 3 and 3
    assert metrics["span_precision"] == metrics["span_recall"] == pytest.approx(1 / 3)
    assert (metrics["pairs"], metrics["tokens"], metrics["positive_fraction"]) == (2, 8, 0.5)

    report = relevance_report(predictions, labels, ["b", "a"], threshold=0.5)
    assert list(report["families"]) == ["a", "b"]
    assert report["families"]["b"]["token_f1"] == pytest.approx(2 / 3)
    assert report["families"]["a"]["token_f1"] == 0.0 and report["families"]["a"]["span_recall"] == 0.0


def test_nothing_to_find_and_nothing_found_is_perfect():
    metrics = summarize([torch.tensor([0.1, 0.2])], [torch.tensor([0.0, 0.0])], threshold=0.5)
    assert metrics["token_f1"] == metrics["span_f1"] == 1.0 and metrics["auroc"] is None


# ---------------------------------------------------------------- data and configuration

RESPONSES = [
    "today the river was quiet, and the light was warm.\nsee you soon.",
    "Imagine a quiet morning at home\nwith friends. see you soon.",
    "the window was green, the journey long, the home warm.\nthank you for reading.",
    "first we walked to the river. then home.\nthat is all for now.",
]


@pytest.fixture(scope="module")
def label_files(tmp_path_factory):
    """Verifier labels of hand-written responses: a training file and a held-out file (other prompts)."""
    directory = tmp_path_factory.mktemp("labels")
    rows = generate_rows(16, seed=0, min_rubrics=2, max_rubrics=3,
                         families=["no_commas", "include_keyword", "end_with_phrase"])
    pairs = label_with_verifiers(rows, {row.id: [RESPONSES[i % len(RESPONSES)]] for i, row in enumerate(rows)})
    train = [pair for pair in pairs if int(pair.prompt_id[-2:]) < 12]
    held_out = [pair for pair in pairs if int(pair.prompt_id[-2:]) >= 12]
    return write_labels(train, directory / "train.jsonl"), write_labels(held_out, directory / "test.jsonl")


def write_config(tmp_path, **values):
    path = tmp_path / "relevance.yaml"
    path.write_text("\n".join(f"{key}: {json.dumps(value)}" for key, value in values.items()) + "\n")
    return path


def test_the_split_holds_out_whole_prompts(label_files):
    pairs = load_labels(label_files[0])
    train, held_out = split_by_prompt(pairs, eval_fraction=0.25, seed=0)
    assert len(train) + len(held_out) == len(pairs)
    assert not {pair.prompt_id for pair in train} & {pair.prompt_id for pair in held_out}
    assert len({pair.prompt_id for pair in held_out}) == 3  # 25% of 12 prompts


def test_config_errors_name_the_file_and_key(tmp_path, label_files):
    with pytest.raises(ConfigError, match="unknown key.*'learnig_rate'.*did you mean 'learning_rate'"):
        load_training_config(write_config(tmp_path, train_file="x.jsonl", learnig_rate=1e-4))
    with pytest.raises(ConfigError, match="pos_weight must be 'auto' or a number > 0"):
        load_training_config(write_config(tmp_path, train_file="x.jsonl"), ["pos_weight=-1"])
    with pytest.raises(ConfigError, match="train_file is required"):
        load_training_config(write_config(tmp_path, epochs=1))
    config = load_training_config(write_config(tmp_path, train_file=str(label_files[0]), eval_file="t.jsonl"),
                                  ["pos_weight=2", "max_steps=3"])
    assert (config.pos_weight, config.max_steps, config.eval_file) == (2.0, 3, str(tmp_path / "t.jsonl"))
    with pytest.raises(ConfigError, match="shares 12 prompt id"):  # a held-out file made of training prompts
        training.load_pairs(RelevanceTrainingConfig(train_file=str(label_files[0]), eval_file=str(label_files[0])))


def test_examples_label_response_tokens_only_in_every_window(tiny_model_dir, label_files):
    config = RelevanceTrainingConfig(train_file=str(label_files[0]), backbone=str(tiny_model_dir), max_length=80)
    model = build_model(config)
    pair = max(load_labels(label_files[0]), key=lambda pair: len(pair.response))
    examples = build_examples(model, [pair])
    ids, expected = token_labels(model, pair)
    assert len(examples) > 1, "a response longer than max_length is windowed"
    seen = torch.zeros(len(ids))
    for example, encoded in zip(examples, model.encode_pair(pair.rubric, ids)):
        assert example.input_ids == encoded.input_ids and len(example.labels) == len(example.input_ids) <= 80
        width = encoded.window.stop - encoded.window.start
        window = example.labels[encoded.response_start:encoded.response_start + width]
        assert window == expected[encoded.window].tolist()
        assert all(label == IGNORE_INDEX for label in example.labels[:encoded.response_start])  # template
        seen[encoded.window] = 1
    assert seen.all()


def test_minilm_sees_line_breaks_and_capitals_also_after_saving(tmp_path):
    model = build_model(RelevanceTrainingConfig(train_file="x", backbone=MINILM_BACKBONE))
    ids, offsets = model.tokenize_response("One\ntwo")
    assert model.tokenizer.convert_ids_to_tokens(ids) == ["^", "one", "\n", "two"]
    assert offsets == [(0, 1), (0, 3), (3, 4), (4, 7)]  # the mark points at the capital it stands for
    loaded = RelevanceModel.load(model.save(tmp_path / "minilm"))
    assert loaded.tokenize_response("One\ntwo") == (ids, offsets)
    assert loaded.model.get_input_embeddings().num_embeddings >= len(loaded.tokenizer)
    plain = build_model(RelevanceTrainingConfig(train_file="x", backbone=MINILM_BACKBONE, visible_line_breaks=False,
                                                visible_case=False))
    assert plain.tokenizer.convert_ids_to_tokens(plain.tokenize_response("One\ntwo")[0]) == ["one", "two"]


# ---------------------------------------------------------------- training, resuming, evaluating, showing


def tiny_config(tmp_path, label_files, backbone, **values) -> RelevanceTrainingConfig:
    return RelevanceTrainingConfig(**{
        "train_file": str(label_files[0]), "eval_file": str(label_files[1]), "backbone": str(backbone),
        "output_dir": str(tmp_path / "run"), "max_steps": 12, "batch_size": 4, "learning_rate": 3e-3,
        "warmup_fraction": 0.1, "eval_every": 4, "save_every": 1, "log_every": 1, **values})


@pytest.fixture(scope="module")
def trained(tiny_model_dir, label_files, tmp_path_factory):
    """A tiny relevance model trained for 12 steps: its config and its best folder."""
    config = tiny_config(tmp_path_factory.mktemp("trained"), label_files, tiny_model_dir)
    return config, train_relevance_model(config)


def records(config):
    lines = (Path(config.output_dir) / training.METRICS_FILE).read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_training_learns_and_keeps_the_best_checkpoint_by_span_f1(trained):
    config, best = trained
    log = records(config)
    losses = [record["loss"] for record in log if "loss" in record]
    assert [record["step"] for record in log if "loss" in record] == list(range(1, 13))
    # Batches differ a lot in their share of relevant tokens (blame/credit labels are sparse), so the loss of
    # single batches is noisy: compare the loss over every training pair before and after training instead.
    examples = training.build_examples(RelevanceModel.load(best), load_labels(config.train_file))
    batch = training.collate(examples, RelevanceModel.load(best).tokenizer.pad_token_id)

    def loss_of(model: RelevanceModel) -> float:
        with torch.no_grad():
            logits = model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[..., 0]
        return training.token_loss(logits, batch["labels"], pos_weight=1.0).item()

    fresh = training.build_model(config)
    assert loss_of(RelevanceModel.load(best)) < loss_of(fresh), "training lowered the loss"
    assert all(math.isfinite(loss) for loss in losses)
    evaluations = [record for record in log if "eval/span_f1" in record]
    assert [record["step"] for record in evaluations] == [4, 8, 12]
    saved = json.loads((best / "eval_metrics.json").read_text())
    assert saved["overall"]["span_f1"] == max(record["eval/span_f1"] for record in evaluations)
    model = RelevanceModel.load(best)
    (relevance,) = model.predict([(["The response contains no commas."], model.tokenize_response("a, b")[0])])
    assert relevance.shape[0] == 1 and 0 <= relevance.min() <= relevance.max() <= 1


def test_an_interrupted_run_resumes_to_the_same_model(trained, tiny_model_dir, label_files, tmp_path, monkeypatch):
    config = tiny_config(tmp_path, label_files, tiny_model_dir)
    real_step, calls = training.train_step, []

    def killed_at_step_seven(*args, **kwargs):
        if len(calls) == 6:
            raise KeyboardInterrupt  # stands in for a kill: no chance to save anything
        calls.append(1)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", killed_at_step_seven)
    with pytest.raises(KeyboardInterrupt):
        train_relevance_model(config)
    monkeypatch.setattr(loop, "train_step", real_step)
    with pytest.raises(ConfigError, match="--resume"):
        train_relevance_model(config)
    train_relevance_model(config, resume=True)

    assert [record["step"] for record in records(config) if "loss" in record] == list(range(1, 13))
    resumed = torch.load(Path(config.output_dir) / "last" / training.STATE_FILE, weights_only=False)
    uninterrupted = torch.load(Path(trained[0].output_dir) / "last" / training.STATE_FILE,
                               weights_only=False)
    assert resumed["step"] == uninterrupted["step"] == 12
    torch.testing.assert_close(resumed["model"], uninterrupted["model"])


def test_evaluate_prints_the_family_table_and_writes_json(trained, label_files, tmp_path, capsys):
    _, best = trained
    out = tmp_path / "metrics.json"
    main(["relevance", "evaluate", "--model", str(best), "--labels", str(label_files[1]), "--out", str(out)])
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert set(report["families"]) == {pair.family for pair in load_labels(label_files[1])}
    for family in [*report["families"], "overall"]:
        assert family in printed
    assert report["overall"]["pairs"] == len(load_labels(label_files[1]))


def test_the_threshold_bench_tunes_on_the_held_out_split_and_scores_on_other_prompts(trained, label_files,
                                                                                    tmp_path, capsys):
    """bench/relevance_thresholds.py: thresholds from the training run's held-out split, F1 on a test file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("relevance_thresholds", REPO / "bench" / "relevance_thresholds.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    _, best = trained
    config = write_config(tmp_path, train_file=str(label_files[0]), eval_fraction=0.25, seed=0)
    out = tmp_path / "thresholds.json"
    bench.main([str(config), "--model", str(best), "--test", str(label_files[1]), "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    test = load_labels(label_files[1])
    _, held_out = split_by_prompt(load_labels(label_files[0]), eval_fraction=0.25, seed=0)
    assert set(rows) == {"overall", *(pair.family for pair in test)}
    assert (rows["overall"]["test_pairs"], rows["overall"]["held_out_pairs"]) == (len(test), len(held_out))
    for row in rows.values():
        assert row["family_threshold"] in bench.GRID and 0 <= row["span_f1_family_threshold"] <= 1
    assert "overall" in capsys.readouterr().out
    predictions, labels = predict_pairs(RelevanceModel.load(best), test)
    group = (predictions, labels)
    assert bench.span_f1(group, bench.best_threshold(group)) == max(bench.span_f1(group, t) for t in bench.GRID)
    for shared in (label_files[0], label_files[1]):  # scoring on trained or tuning pairs is refused
        with pytest.raises(SystemExit, match="shares"):
            bench.main([str(write_config(tmp_path, train_file=str(label_files[0]), eval_file=str(label_files[1]))),
                        "--model", str(best), "--test", str(shared)])


def test_show_renders_every_character_and_escapes_html(trained, tmp_path, capsys):
    _, best = trained
    model = RelevanceModel.load(best)
    response = "<script>alert(1)</script> & the river,\nsee you soon."
    pieces = token_relevance(model, "No <b>commas</b>.", response)
    assert "".join(text for text, _ in pieces) == response
    page = render_html("No <b>commas</b>.", pieces, threshold=0.5)
    assert "<script" not in page and "</script" not in page and "<b>" not in page and "&lt;b&gt;" in page
    body = re.search(r'<div class="response">(.*)</div>', page, re.DOTALL).group(1)
    values = re.findall(r"<rt>([^<]*)</rt>", body)  # each token's value is printed, not hidden in a tooltip
    assert values and all(0 <= float(value) <= 1 for value in values)
    text = re.sub(r"<[^>]+>", "", re.sub(r"<rt>[^<]*</rt>", "", body))
    assert html.unescape(text) == response  # escaped text holds no "<" to confuse tags
    terminal = render_terminal("No commas.", pieces, threshold=0.5)
    assert "\x1b[38;2;0;0;0;48;2;" in terminal and "river" in terminal

    html_path = tmp_path / "show.html"
    main(["relevance", "show", "--model", str(best), "--rubric", "No commas.", "--response", "a, b",
          "--verdict", "fail", "--html", str(html_path)])
    printed = capsys.readouterr().out  # not a terminal: plain text, no colour escapes
    assert printed.startswith("Rubric: No commas.\nVerdict: fail\n") and "\x1b" not in printed
    assert re.search(r"^ *\d\.\d{3}  ','$", printed, re.MULTILINE), "every token's value is listed"
    page = html_path.read_text()
    assert page.startswith("<!DOCTYPE html>") and '<strong>Verdict:</strong> <span class="fail">fail</span>' in page


@pytest.mark.slow
def test_smollm2_trains_as_a_token_classifier(label_files):
    config = RelevanceTrainingConfig(train_file=str(label_files[0]), backbone=DEFAULT_POLICY)
    model = build_model(config)
    assert type(model.model).__name__ == "LlamaForTokenClassification"
    assert model.tokenize_response("a\nb")[1] == [(0, 1), (1, 2), (2, 3)], "its own tokens already hold line breaks"
    batch = training.collate(build_examples(model, load_labels(label_files[0])[:2]), model.tokenizer.pad_token_id)
    # plain SGD keeps this test light (no AdamW state for 135M weights); the step is the training loop's own
    optimizer = torch.optim.SGD(model.model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    before = training.train_step(model, optimizer, scheduler, batch, pos_weight=1.0, max_grad_norm=1.0)
    with torch.no_grad():
        logits = model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[..., 0]
    assert training.token_loss(logits, batch["labels"], pos_weight=1.0).item() < before, "the step lowered the loss"


def test_rtt_train_takes_its_token_relevance_from_a_trained_model(trained, tiny_model_dir, tmp_path):
    """The demo config with ``relevance_source: model``: a relevance model from `rtt relevance train` in RL."""
    _, best = trained
    output = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "rubrics2tokens.cli.main", "train", str(REPO / "configs" / "demo.yaml"),
         f"model.name_or_path={tiny_model_dir}", "training.relevance_source=model", f"training.relevance_model={best}",
         f"training.output_dir={output}", "training.max_steps=2", "training.max_completion_length=12",
         "training.overlong_penalty_tokens=0",
         "training.save_steps=10"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    steps = [record for record in map(json.loads, (output / "metrics.jsonl").read_text().splitlines())
             if "rubrics/satisfaction" in record]
    assert [record["step"] for record in steps] == [1, 2]
    assert all(record["rtt/time/relevance_s"] > 0 for record in steps), "the relevance model ran every step"
    assert any(record["rtt/token_adv/abs_mean"] > 0 for record in steps), "its relevance gave a token signal"
    share = re.search(r"RTT's share: scoring [\d.]+%, relevance ([\d.]+)%, advantages [\d.]+%", result.stdout)
    expected = 100 * sum(r["rtt/time/relevance_s"] for r in steps) / sum(r["step_time"] for r in steps)
    assert share and float(share.group(1)) == pytest.approx(expected, abs=0.06)
