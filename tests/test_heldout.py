"""Held-out evaluation inside training: fixed sampling seed, per-response records, metric names, collapse warnings."""

from __future__ import annotations

import json
import logging

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerControl, TrainerState

from rubrics2tokens.cli.summary import heldout_lines
from rubrics2tokens.data.dataset import to_trl_dataset
from rubrics2tokens.data.synthetic import generate_rows
from rubrics2tokens.scoring.router import RoutingScorer
from rubrics2tokens.trainer import RTTConfig, RTTGRPOTrainer
from rubrics2tokens.trainer.heldout import (HeldoutWriter, collapse_signals, heldout_name, heldout_seed,
                                             unmasked_completion_mask)


def make_trainer(model_dir, output_dir, **overrides) -> RTTGRPOTrainer:
    settings = dict(output_dir=str(output_dir), per_device_train_batch_size=4, num_generations=2,
                    per_device_eval_batch_size=4, max_completion_length=12, max_steps=2, use_cpu=True, report_to=[],
                    seed=0, reward_aggregation="csr", relevance_source="oracle", bf16=False, logging_steps=1,
                    eval_strategy="steps", eval_steps=1, eval_on_start=True, save_strategy="no")
    settings.update(overrides)
    return RTTGRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir), scorer=RoutingScorer(mode="verifiers"),
                          args=RTTConfig(**settings), processing_class=AutoTokenizer.from_pretrained(model_dir),
                          train_dataset=to_trl_dataset(generate_rows(8, seed=3)),
                          eval_dataset=to_trl_dataset(generate_rows(4, seed=9)))


def read_records(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_training_writes_a_record_per_held_out_response_at_every_evaluation(tiny_model_dir, tmp_path):
    trainer = make_trainer(tiny_model_dir, tmp_path / "run")
    trainer.train()
    files = sorted(path.name for path in (tmp_path / "run" / "heldout").iterdir())
    assert files == ["step_000000.jsonl", "step_000001.jsonl", "step_000002.jsonl"]
    records = read_records(tmp_path / "run" / "heldout" / "step_000002.jsonl")
    assert len(records) == 4 * 2  # 4 held-out prompts x num_generations_eval
    assert {r["prompt_id"] for r in records} == {row.id for row in generate_rows(4, seed=9)}
    for record in records:
        assert record["step"] == 2 and record["sample"] in (0, 1)
        assert len(record["tokens"]) == len(record["advantages"]) == record["length"] <= 12
        assert len(record["verdicts"]) == len(record["families"])
        assert 0 < record["entropy"] < 7  # nats; a near-uniform tiny model over ~400 tokens stays below log(400)
        assert record["truncated"] == (record["length"] == 12 or not record["tokens"][-1] == "<|im_end|>")
    logged = [entry for entry in trainer.state.log_history if "eval_rubrics/satisfaction" in entry]
    assert [entry["step"] for entry in logged] == [0, 1, 2]


def test_records_describe_truncated_responses_that_mask_truncated_completions_drops(tiny_model_dir, tmp_path):
    trainer = make_trainer(tiny_model_dir, tmp_path / "run", max_steps=1, mask_truncated_completions=True)
    trainer.train()
    records = read_records(tmp_path / "run" / "heldout" / "step_000001.jsonl")
    truncated = [record for record in records if record["truncated"]]
    assert truncated, "a random tiny model runs into a 12-token limit"
    for record in truncated:  # TRL's loss mask is 0 on these; the record still has every token
        assert record["length"] == len(record["tokens"]) == 12 and record["text"] and record["entropy"] > 0
    ids = torch.tensor([[5, 2, 7, 0], [5, 6, 7, 8], [2, 0, 0, 0]])
    assert unmasked_completion_mask(ids, [2]).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]


def test_the_same_weights_sample_the_same_held_out_responses(tiny_model_dir, tmp_path):
    trainer = make_trainer(tiny_model_dir, tmp_path / "run", max_steps=1, learning_rate=0.0)
    trainer.train()  # lr 0: the weights at step 0 and step 1 are the same, so must be the samples
    first = read_records(tmp_path / "run" / "heldout" / "step_000000.jsonl")
    last = read_records(tmp_path / "run" / "heldout" / "step_000001.jsonl")
    assert [r["tokens"] for r in first] == [r["tokens"] for r in last]
    assert len({tuple(r["tokens"]) for r in first}) > 1, "different prompts and samples, different responses"
    assert heldout_seed(0, ["a", "b"]) == heldout_seed(0, ["a", "b"]) != heldout_seed(1, ["a", "b"])
    # sampling a held-out batch leaves the training's random stream where it was
    batch = [dict(row) for row in trainer.eval_dataset for _ in range(2)]
    trainer.model.eval()
    torch.manual_seed(5)
    trainer._generate_and_score_completions(batch)
    after_sampling = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(after_sampling, torch.rand(3))


def test_eval_metrics_get_held_out_names():
    assert heldout_name("eval_rubrics/all_pass") == "heldout/all_pass"
    assert heldout_name("eval_rubrics/pass/testbed/no_commas") == "heldout/pass/testbed/no_commas"
    assert heldout_name("eval_completions/clipped_ratio") == "heldout/truncated_frac"
    assert heldout_name("eval_completions/mean_length") == "heldout/mean_length"
    assert heldout_name("eval_entropy") == "heldout/entropy"
    assert heldout_name("reward") == "reward" and heldout_name("rubrics/all_pass") == "rubrics/all_pass"


def _evaluate(writer, step, entropies, truncated):
    """One held-out evaluation through the callback: responses of 10 tokens with these entropies and flags."""
    writer.buffer = [{"step": step, "length": 10, "entropy": e, "truncated": t} for e, t in zip(entropies, truncated)]
    writer.on_evaluate(None, TrainerState(global_step=step), TrainerControl())


def test_collapse_warnings_read_every_response_and_compare_with_the_first_evaluation_on_disk(tmp_path, caplog):
    assert collapse_signals([{"length": 30, "entropy": 1.0, "truncated": True},
                             {"length": 10, "entropy": 3.0, "truncated": False}]) == (1.5, 0.5)  # per token
    writer = HeldoutWriter(tmp_path)
    with caplog.at_level(logging.WARNING):
        _evaluate(writer, 0, [3.0, 3.0], [False, False])
        _evaluate(writer, 10, [2.0, 2.0], [False, False])
        assert not caplog.records
        resumed = HeldoutWriter(tmp_path)  # a resumed run: its first evaluation is still step 0's file
        _evaluate(resumed, 20, [1.2, 1.2], [False, False])
        assert "entropy 1.200 is below 50% of its first value 3.000" in caplog.text
        caplog.clear()
        _evaluate(resumed, 30, [2.5, 2.5, 2.5], [True, True, False])
        assert "67% of held-out responses hit the length limit" in caplog.text and "entropy" not in caplog.text
    assert sorted(path.name for path in (tmp_path / "heldout").iterdir())[0] == "step_000000.jsonl"


def test_a_base_policy_that_already_runs_long_is_said_once_and_no_collapse_warning_follows(tmp_path, caplog):
    """The demo's first trial: 75% truncated at step 0 warned "the policy may be collapsing" before any training,
    and again at step 10 where nothing had risen (issue 19)."""
    writer = HeldoutWriter(tmp_path)
    with caplog.at_level(logging.INFO, logger="rubrics2tokens.trainer.heldout"):
        _evaluate(writer, 0, [3.0] * 4, [True, True, True, False])
        assert [record.levelno for record in caplog.records] == [logging.INFO]
        assert "before training, 75% of held-out responses already hit the length limit" in caplog.text
        caplog.clear()
        _evaluate(writer, 10, [3.0] * 4, [True, True, True, False])
        assert not caplog.records, "no rise over step 0: nothing to warn about"
        _evaluate(writer, 20, [3.0] * 4, [True, True, True, True])
        assert "100% of held-out responses hit the length limit" in caplog.text and "75% at the first" in caplog.text


def _write_heldout(folder, step, all_pass):
    (folder / "heldout").mkdir(parents=True, exist_ok=True)
    rows = [{"step": step, "prompt_id": f"p{p}", "sample": s, "families": ["testbed:no_commas"],
             "verdicts": [passed], "all_pass": passed, "satisfaction": float(passed), "length": 40 + p,
             "truncated": False, "entropy": 2.0, "tokens": [], "advantages": []}
            for p, passed in enumerate(all_pass) for s in range(2)]
    (folder / "heldout" / f"step_{step:06d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_the_summary_reports_a_change_only_beyond_its_interval(tmp_path):
    _write_heldout(tmp_path / "gain", 0, [0] * 12)
    _write_heldout(tmp_path / "gain", 10, [1] * 12)
    text = "\n".join(heldout_lines(tmp_path / "gain"))
    assert "12 prompts never trained on, 2 samples each" in text
    assert "all-pass      0.000 [0.000, 0.000]" in text and "+1.000 [+1.000, +1.000]" in text
    assert "beyond the 95% interval: all-pass rose, satisfaction rose" in text
    _write_heldout(tmp_path / "noise", 0, [0, 1] * 6)
    _write_heldout(tmp_path / "noise", 10, [1, 0] * 6)
    assert "no held-out change is beyond its 95% interval" in "\n".join(heldout_lines(tmp_path / "noise"))
    assert "no evaluation was run" in heldout_lines(tmp_path / "none")[0]
