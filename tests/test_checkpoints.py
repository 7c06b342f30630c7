"""Which checkpoint a resume starts from, and what happens to a save a kill cut short."""

from __future__ import annotations

import json

from rubrics2tokens.checkpoints import (checkpoints, drop_incomplete_checkpoints, export_model,
                                        last_complete_checkpoint, training_finished)


def make_checkpoint(folder, step, complete=True, planned=10):
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    for name in ("model.safetensors", "config.json", "tokenizer.json", "optimizer.pt", "scheduler.pt",
                 "rng_state.pth", "training_args.bin"):
        (path / name).write_bytes(name.encode())
    if complete:
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": planned}))
    return path


def test_resume_starts_from_the_last_complete_checkpoint_by_step_number(tmp_path):
    for step in (2, 9, 10):
        make_checkpoint(tmp_path, step)
    make_checkpoint(tmp_path, 11, complete=False)
    (tmp_path / "checkpoint-12.tmp").mkdir()  # not a checkpoint name
    assert [path.name for path in checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-9", "checkpoint-10",
                                                             "checkpoint-11"]
    assert last_complete_checkpoint(tmp_path).name == "checkpoint-10"


def test_incomplete_checkpoints_are_removed_and_complete_ones_kept(tmp_path):
    kept = make_checkpoint(tmp_path, 3)
    cut_short = make_checkpoint(tmp_path, 4, complete=False)
    assert drop_incomplete_checkpoints(tmp_path) == [cut_short]
    assert kept.is_dir() and not cut_short.exists()
    assert last_complete_checkpoint(tmp_path) == kept


def test_a_missing_or_empty_folder_has_no_checkpoint(tmp_path):
    assert checkpoints(tmp_path / "missing") == [] and last_complete_checkpoint(tmp_path) is None
    make_checkpoint(tmp_path, 1, complete=False)
    assert last_complete_checkpoint(tmp_path) is None


def test_a_checkpoint_at_the_last_step_is_a_finished_training(tmp_path):
    at_end, before_end = make_checkpoint(tmp_path, 10), make_checkpoint(tmp_path, 9)
    assert training_finished(at_end, max_steps=10) and not training_finished(before_end, max_steps=10)
    assert not training_finished(at_end, max_steps=20), "max_steps raised for the resume: more to train"
    assert training_finished(at_end, max_steps=-1), "epoch-based: the step count the Trainer planned"


def test_an_exported_model_is_the_checkpoint_without_its_training_state(tmp_path):
    checkpoint = make_checkpoint(tmp_path / "run", 10)
    final = tmp_path / "run" / "final"
    final.mkdir()
    (final / "stale.bin").write_bytes(b"from an earlier attempt")
    export_model(checkpoint, final)
    assert sorted(path.name for path in final.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json",
                                                              "training_args.bin"]
    assert (final / "model.safetensors").read_bytes() == b"model.safetensors"
