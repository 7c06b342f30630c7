"""Which checkpoint a resume starts from, and what happens to a save a kill cut short."""

from __future__ import annotations

from rubrics2tokens.checkpoints import checkpoints, drop_incomplete_checkpoints, last_complete_checkpoint


def make_checkpoint(folder, step, complete=True):
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights")
    if complete:
        (path / "trainer_state.json").write_text("{}")
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
