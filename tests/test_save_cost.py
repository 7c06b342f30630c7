"""bench/save_cost.py: a save's cost read from a TensorBoard log whose gaps are chosen, so the answer is known."""

from __future__ import annotations

import importlib.util

import pytest
import yaml
from torch.utils.tensorboard import SummaryWriter

from tests_paths import REPO


def test_a_save_costs_the_wall_time_its_step_time_leaves_out(tmp_path):
    spec = importlib.util.spec_from_file_location("save_cost", REPO / "bench" / "save_cost.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"training": {"save_steps": 10, "logging_steps": 1}}))
    writer = SummaryWriter(str(tmp_path / "runs" / "log"))
    wall = 1000.0
    for step in range(1, 31):  # steps of 8 s; 0.5 s of logging after each; saves at 10 and 20 take 4 s more
        wall += 8.0 + 0.5 + (4.0 if step in (11, 21) else 0.0)
        writer.add_scalar("train/step_time", 8.0, global_step=step, walltime=wall)
    writer.close()
    cost = bench.save_cost(tmp_path)
    assert cost["saves"] == 2 and cost["per_save_s"] == pytest.approx(4.0, abs=1e-3)
    assert cost["share_of_logged_wall"] == pytest.approx(8.0 / (29 * 8.5 + 8.0), abs=1e-4)
    with pytest.raises(SystemExit, match="no TensorBoard log"):
        bench.save_cost(tmp_path / "runs")
    # a gap that spans several steps is no save's cost
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"training": {"save_steps": 10, "logging_steps": 3}}))
    with pytest.raises(SystemExit, match="needs logging_steps 1"):
        bench.save_cost(tmp_path)
