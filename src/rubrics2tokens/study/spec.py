"""A study file: one base run config, named variants of it, and seeds.

Every (variant, seed) is an ordinary `rtt train` run in its own folder, ``OUTPUT_DIR/<variant>/seed<k>/``,
whose config is the base with the variant's ``key=value`` overrides (the syntax of ``rtt train CONFIG
key=value``), then ``training.seed=k`` and ``training.output_dir`` set to that folder. The study writes
that config into the folder as ``study_run.yaml``, so each folder can be rerun, moved or gathered
with others by hand. A study file::

    output_dir: runs/my_study          # relative to the working directory, like training.output_dir
    seeds: [0]                         # seeds of every variant that names none
    base:                              # a run config (the sections of `rtt train`), or the path of one
      training: {max_steps: 30}
    variants:
      grpo-csr: [training.relevance_source=none, training.reward_aggregation=csr]
      rtt-csr:                         # the long form: overrides plus this variant's own seeds
        overrides: [training.reward_aggregation=csr]
        seeds: [0, 1, 2]

Runs are ordered seed by seed (every variant's first seed, then every second seed...), so a study cut
short still has one run of each variant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rubrics2tokens.config import ConfigError, load_run_config, read_config_tree

RUN_CONFIG = "study_run.yaml"  # the config a study run was trained with, inside its folder
BASE_CONFIG = "study_base.yaml"  # the study's base config with its paths made absolute, in OUTPUT_DIR
STUDY_KEYS = ("output_dir", "seeds", "base", "variants")
VARIANT_KEYS = ("overrides", "seeds")
OWNED_KEYS = ("training.seed", "training.output_dir")  # the study sets these for each run
VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class PlannedRun:
    """One (variant, seed) of a study and the folder it trains in."""

    variant: str
    seed: int
    folder: Path
    overrides: tuple[str, ...]  # the variant's overrides, then the seed and the output folder

    @property
    def name(self) -> str:
        return f"{self.variant}/seed{self.seed}"

    @property
    def config_path(self) -> Path:
        return self.folder / RUN_CONFIG


@dataclass(frozen=True)
class Study:
    path: Path  # the study file
    output_dir: Path
    base: dict[str, Any]  # the base run config as a YAML mapping, data.path made absolute
    runs: tuple[PlannedRun, ...]

    @property
    def base_config_path(self) -> Path:
        return self.output_dir / BASE_CONFIG


def _seeds(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not value or not all(isinstance(s, int) and not isinstance(s, bool)
                                                            for s in value):
        raise ConfigError(f"{where}: expected a non-empty list of integer seeds, got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: seeds repeat: {value!r}")
    return value


def _overrides(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) and "=" in item for item in value):
        raise ConfigError(f"{where}: expected a list of 'section.key=value' strings, got {value!r}")
    for item in value:
        if item.split("=", 1)[0].strip() in OWNED_KEYS:
            raise ConfigError(f"{where}: {item!r}: the study sets {' and '.join(OWNED_KEYS)} for each run "
                              "(set seeds with 'seeds' and the folder with 'output_dir')")
    return value


def _variant(name: Any, spec: Any, default_seeds: list[int], where: str) -> tuple[list[str], list[int]]:
    if not isinstance(name, str) or not VARIANT_NAME.match(name):
        raise ConfigError(f"{where}: variant name {name!r} must be a folder name (letters, digits, '.', '_', '-')")
    if isinstance(spec, list):
        return _overrides(spec, where), default_seeds
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a list of overrides or a mapping with {VARIANT_KEYS}, got {spec!r}")
    unknown = sorted(set(spec) - set(VARIANT_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} (valid keys: {', '.join(VARIANT_KEYS)})")
    seeds = _seeds(spec["seeds"], f"{where}.seeds") if "seeds" in spec else default_seeds
    return _overrides(spec.get("overrides", []), f"{where}.overrides"), seeds


def _base_tree(base: Any, study_path: Path) -> dict[str, Any]:
    """The base run config as a mapping; a relative data.path is resolved against the file it came from."""
    if isinstance(base, str):
        base_path = (study_path.parent / base) if not Path(base).is_absolute() else Path(base)
        tree, origin = read_config_tree(base_path), base_path.parent
    elif isinstance(base, dict):
        tree, origin = base, study_path.parent
    else:
        raise ConfigError(f"{study_path}: base: expected a run config mapping or the path of one, got {base!r}")
    data = tree.get("data")
    if isinstance(data, dict) and isinstance(data.get("path"), str) and not Path(data["path"]).is_absolute():
        data["path"] = str((origin / data["path"]).resolve())
    return tree


def load_study(path: str | Path, output_dir: str | Path | None = None) -> Study:
    """Read a study file; ``output_dir`` replaces the file's own. Errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study file not found: {path}")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {error}") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {', '.join(STUDY_KEYS)}")
    unknown = sorted(set(spec) - set(STUDY_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown} (valid keys: {', '.join(STUDY_KEYS)})")
    for key in ("output_dir", "base", "variants"):
        if key not in spec and not (key == "output_dir" and output_dir is not None):
            raise ConfigError(f"{path}: '{key}' is required")
    if not isinstance(spec["variants"], dict) or not spec["variants"]:
        raise ConfigError(f"{path}: variants: expected a mapping of variant name -> overrides")
    out = Path(output_dir if output_dir is not None else spec["output_dir"])
    default_seeds = _seeds(spec.get("seeds", [0]), f"{path}: seeds")
    variants = {name: _variant(name, variant, default_seeds, f"{path}: variants.{name}")
                for name, variant in spec["variants"].items()}
    runs = []
    for position in range(max(len(seeds) for _, seeds in variants.values())):
        for name, (overrides, seeds) in variants.items():
            if position < len(seeds):
                folder = out / name / f"seed{seeds[position]}"
                runs.append(PlannedRun(name, seeds[position], folder, tuple(
                    [*overrides, f"training.seed={seeds[position]}", f"training.output_dir={folder}"])))
    return Study(path=path, output_dir=out, base=_base_tree(spec["base"], path), runs=tuple(runs))


def run_config_tree(study: Study, run: PlannedRun) -> dict[str, Any]:
    """The run's config: the base with the run's overrides applied (read back from the study's base file)."""
    return read_config_tree(study.base_config_path, run.overrides)


def write_run_configs(study: Study, started: set[Path]) -> None:
    """Write the base and every run's ``study_run.yaml``, each checked like `rtt train` checks a config,
    before anything trains. A run whose folder is in ``started`` keeps its file: if the study now asks for
    another config, that is an error (changing a finished or half-trained run would mix two configs in one
    folder)."""
    study.output_dir.mkdir(parents=True, exist_ok=True)
    study.base_config_path.write_text(yaml.safe_dump(study.base, sort_keys=False), encoding="utf-8")
    for run in study.runs:
        try:
            tree = run_config_tree(study, run)
        except ConfigError as error:
            raise ConfigError(f"{study.path}: variant {run.variant!r}: {error}") from None
        text = yaml.safe_dump(tree, sort_keys=False)
        if run.folder in started and run.config_path.is_file():
            if yaml.safe_load(run.config_path.read_text(encoding="utf-8")) != tree:
                raise ConfigError(f"{run.folder} was trained with another config than {study.path} now gives "
                                  f"{run.name}; restore the study file, or move that folder away to retrain it")
            continue
        run.folder.mkdir(parents=True, exist_ok=True)
        run.config_path.write_text(text, encoding="utf-8")
        try:
            load_run_config(run.config_path)
        except ConfigError as error:
            raise ConfigError(f"{study.path}: variant {run.variant!r}: {error}") from None
