"""What checkpoints cost a finished run (issue 21 item 4), read from its TensorBoard log; nothing is trained.

    python bench/save_cost.py runs/study_intra/grpo-csr/seed0 runs/study_intra/oracle-intra/seed0

TRL's ``step_time`` leaves the save out, so the cost shows as wall time between two logged steps that no step
accounts for: for each logged step, (wall time since the previous log) minus its ``step_time``. A run logging
every step has a small gap after every step (logging, scoring bookkeeping) and a large one after each step it
saved at (``save_steps``); the difference of the two medians is what one save costs, and the report gives the
run's share spent saving. Needs ``report_to: [tensorboard]`` (the study configs set it) and ``logging_steps: 1``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def step_time_events(run: Path) -> list:
    """The ``step_time`` scalars of the run's last TensorBoard log (the one a resumed run wrote last)."""
    logs = sorted((run / "runs").glob("*"), key=lambda folder: folder.stat().st_mtime)
    if not logs:
        raise SystemExit(f"{run}/runs: no TensorBoard log (train with report_to: [tensorboard])")
    events = EventAccumulator(str(logs[-1]))
    events.Reload()
    tag = next((tag for tag in events.Tags()["scalars"] if tag.endswith("step_time")), None)
    if tag is None:
        raise SystemExit(f"{logs[-1]}: no step_time scalar")
    return events.Scalars(tag)


def save_cost(run: Path) -> dict[str, float]:
    """One run's median unaccounted wall time after a save and after other steps, the cost of one save, and the
    share of the logged steps' wall time spent saving."""
    scalars = step_time_events(run)
    training = yaml.safe_load((run / "config.yaml").read_text())["training"]
    every, logged = training.get("save_steps", 500), training.get("logging_steps", 500)
    if logged != 1 or every < 1 or every != int(every) or training.get("save_strategy", "steps") != "steps":
        raise SystemExit(f"{run}: needs logging_steps 1 and a whole save_steps (it has {logged} and {every})")
    every = int(every)
    # seconds before each log that its step_time does not cover; the log after step N carries N's save
    gaps = {now.step: now.wall_time - before.wall_time - now.value for before, now in zip(scalars, scalars[1:])}
    after_save = [gap for step, gap in gaps.items() if (step - 1) % every == 0]
    other = [gap for step, gap in gaps.items() if (step - 1) % every != 0]
    if not after_save or not other:
        raise SystemExit(f"{run}: no logged step after a save (save_steps {every}, logged steps {sorted(gaps)})")
    per_save = statistics.median(after_save) - statistics.median(other)
    return {"save_steps": every, "saves": len(after_save), "median_gap_after_save_s": statistics.median(after_save),
            "median_gap_otherwise_s": statistics.median(other), "per_save_s": per_save,
            "share_of_logged_wall": per_save * len(after_save) / (scalars[-1].wall_time - scalars[0].wall_time)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders")
    args = parser.parse_args(argv)
    print(f"{'run':<44} {'every':>5} {'saves':>5} {'gap after save':>14} {'otherwise':>9} {'per save':>8} {'share':>6}")
    for run in args.runs:
        cost = save_cost(run)
        print(f"{str(run):<44} {cost['save_steps']:>5} {cost['saves']:>5} {cost['median_gap_after_save_s']:>13.2f}s "
              f"{cost['median_gap_otherwise_s']:>8.2f}s {cost['per_save_s']:>7.2f}s "
              f"{cost['share_of_logged_wall']:>6.1%}")


if __name__ == "__main__":
    main()
