"""Run folders as the report reads them: found by their ``metrics.jsonl``, read without being changed.

A run folder (``training.output_dir`` of `rtt train`) holds ``metrics.jsonl`` (one JSON record per logged
step; the report reads step and RTT times from it, and the training loop's runtime from its last record),
``heldout/step_<N:06d>.jsonl`` (one row per held-out response at evaluation step N; every held-out number of
the report, tables and curves, comes from these), its resolved ``config.yaml`` (or the ``study_run.yaml`` a
study wrote), and, from `rtt study`, ``finished.json`` with the run's wall time over all its attempts.

A run's variant is its folder's name, or its parent's when the folder is named ``seed<k>`` (the layout
`rtt study` writes: ``<variant>/seed<k>/``); so runs trained anywhere and gathered into one folder by
hand are grouped the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from rubrics2tokens.report.stats import means_of, prompt_means

METRICS = "metrics.jsonl"
HELDOUT_DIR = "heldout"
HELDOUT_FILE = re.compile(r"^step_(\d+)\.jsonl$")
CONFIG_FILES = ("config.yaml", "study_run.yaml")  # the run's resolved config first
SEED_FOLDER = re.compile(r"^seed(\d+)$")
GRPO_SOURCE = "none"  # relevance_source of a plain GRPO run


def read_records(path: Path) -> list[dict[str, Any]]:
    """The complete JSON lines of a file a run may still be appending to: a last line without its newline
    (being written, or cut by a kill) is left out, and the file is not touched."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    complete = text[:text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


@dataclass
class RunFolder:
    path: Path
    variant: str
    seed: int | None
    config: dict[str, Any] = field(default_factory=dict)  # the YAML mapping of the run's config ({} if none)

    @cached_property
    def records(self) -> list[dict[str, Any]]:
        return read_records(self.path / METRICS)

    @property
    def training(self) -> dict[str, Any]:
        training = self.config.get("training")
        return training if isinstance(training, dict) else {}

    def setting(self, key: str) -> Any:
        """A training setting of the run: its config's value, else RTTConfig's default (a run's config.yaml
        lists only the training keys it changed); None when the folder has no config at all."""
        return self.training.get(key, _training_defaults().get(key)) if self.config else None

    @property
    def relevance_source(self) -> str | None:
        return self.setting("relevance_source")

    @property
    def is_grpo(self) -> bool:
        return self.relevance_source == GRPO_SOURCE

    @cached_property
    def heldout_steps(self) -> list[int]:
        """Steps with held-out responses on disk, ascending."""
        folder = self.path / HELDOUT_DIR
        if not folder.is_dir():
            return []
        return sorted(int(match.group(1)) for file in folder.iterdir() if (match := HELDOUT_FILE.match(file.name)))

    def heldout_rows(self, step: int) -> list[dict[str, Any]]:
        return read_records(self.path / HELDOUT_DIR / f"step_{step:06d}.jsonl")

    @cached_property
    def heldout_prompt_means(self) -> dict[int, dict[str, dict[str, float]]]:
        """Step -> metric -> prompt id -> the mean over that prompt's held-out responses (`stats.prompt_means`):
        the run's cells at every evaluation, each file read once (records with tokens are large)."""
        return {step: prompt_means(self.heldout_rows(step)) for step in self.heldout_steps}

    @cached_property
    def heldout_means(self) -> dict[int, dict[str, float]]:
        """Step -> metric -> the run's held-out value at that evaluation, from its response records (what the
        report's table averages; TRL's ``heldout/*`` log lines weigh entropy by tokens, and only over its loss mask)."""
        return {step: means_of(by_metric) for step, by_metric in self.heldout_prompt_means.items()}

    def heldout_series(self, metric: str) -> tuple[list[int], list[float]]:
        """(steps, values) of ``metric`` (`stats.response_values` names) at every evaluation that has it."""
        steps = [step for step, means in self.heldout_means.items() if metric in means]
        return steps, [self.heldout_means[step][metric] for step in steps]

    @property
    def wall_s(self) -> float | None:
        """The run's wall time: when `rtt study` ran it, its ``finished.json`` (every attempt, from process start
        to exit); else the ``train_runtime`` Transformers logs when `trainer.train` ends (the training loop,
        held-out evaluations included, loading and saving the model not); None for a run still training.

        A run resumed outside a study: `rtt train --resume` keeps the log records of the steps before its
        checkpoint, but the attempt that was killed logged no runtime, so the sum below is the time of the
        attempts that reached the end of training, since the last resume. Counted as measured, not
        extrapolated to the steps before (their time is on no record): it is less than the run cost, and
        `rtt study` counts every attempt."""
        finished = self.path / "finished.json"
        if finished.is_file():
            return json.loads(finished.read_text(encoding="utf-8")).get("wall_s")
        runtimes = [record["train_runtime"] for record in self.records if _ends_training(record)]
        return sum(runtimes) if runtimes else None

    @property
    def label(self) -> str:
        return self.variant if self.seed is None else f"{self.variant}/seed{self.seed}"


def _ends_training(record: dict[str, Any]) -> bool:
    """The record Transformers logs when `trainer.train` ends (its runtime and loss over that call)."""
    return isinstance(record.get("train_runtime"), (int, float)) and "train_loss" in record


@functools.cache
def _training_defaults() -> dict[str, Any]:
    from rubrics2tokens.trainer.config import RTTConfig  # torch and TRL load only when a run needs its defaults

    return {f.name: f.default for f in dataclasses.fields(RTTConfig) if f.default is not dataclasses.MISSING}


def _read_config(folder: Path) -> dict[str, Any]:
    for name in CONFIG_FILES:
        if (folder / name).is_file():
            tree = yaml.safe_load((folder / name).read_text(encoding="utf-8"))
            return tree if isinstance(tree, dict) else {}
    return {}


def _identify(folder: Path, root: Path, config: dict[str, Any]) -> tuple[str, int | None]:
    """(variant, seed) from the folder layout; the seed of a folder not named seed<k> comes from its config."""
    seed_match = SEED_FOLDER.match(folder.name)
    if seed_match:
        return folder.resolve().parent.name or "run", int(seed_match.group(1))
    training = config.get("training") if isinstance(config.get("training"), dict) else {}
    seed = training.get("seed")
    name = folder.relative_to(root).as_posix() if folder != root else folder.resolve().name
    return name, seed if isinstance(seed, int) else None


def find_runs(root: str | Path) -> list[RunFolder]:
    """Every run folder at or under ``root`` (a folder holding metrics.jsonl), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"not a folder: {root}")
    runs = []
    for metrics in sorted(root.rglob(METRICS)):
        folder = metrics.parent
        if any(part.startswith("checkpoint-") for part in folder.relative_to(root).parts):
            continue
        config = _read_config(folder)
        variant, seed = _identify(folder, root, config)
        runs.append(RunFolder(path=folder, variant=variant, seed=seed, config=config))
    if not runs:
        raise FileNotFoundError(f"no run folder under {root} (a run folder holds {METRICS})")
    return runs


def group_by_variant(runs: list[RunFolder]) -> dict[str, list[RunFolder]]:
    """Variant -> its runs (by seed), variants in the order they were found."""
    groups: dict[str, list[RunFolder]] = {}
    for run in runs:
        groups.setdefault(run.variant, []).append(run)
    return {name: sorted(group, key=lambda run: (run.seed is None, run.seed or 0, str(run.path)))
            for name, group in groups.items()}
