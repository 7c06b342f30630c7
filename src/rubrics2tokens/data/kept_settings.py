"""The settings of a run that appends to an output file, kept next to it (``OUT.settings.json``): a rerun
continues the file only with the same settings, since continuing it with others would silently mix two runs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class SettingsMismatch(ValueError):
    """An output file is being continued with other settings than it was started with."""


def settings_path(out_file: Path) -> Path:
    """Where the settings of ``out_file`` are kept: ``responses.jsonl`` -> ``responses.settings.json``."""
    return out_file.with_suffix(".settings.json")


def keep_settings(out_file: Path, settings: dict[str, Any], compared: Iterable[str] | None = None,
                  defaults: dict[str, Any] | None = None) -> None:
    """Write ``settings`` next to ``out_file``, or check them against those kept there (the keys ``compared``,
    default all; ``defaults`` stand in for keys that files written by older versions lack). Raises
    `SettingsMismatch` when they differ, or when ``out_file`` holds output but no settings."""
    path = settings_path(out_file)
    if path.is_file():
        recorded = {**(defaults or {}), **json.loads(path.read_text(encoding="utf-8"))}
        keys = list(compared) if compared is not None else sorted(set(recorded) | set(settings))
        differ = [key for key in keys if recorded.get(key) != settings.get(key)]
        if differ:
            was = ", ".join(f"{key}={recorded.get(key)!r}" for key in differ)
            now = ", ".join(f"{key}={settings.get(key)!r}" for key in differ)
            raise SettingsMismatch(f"{out_file} was written with {was} ({path}); this run asks for {now}. Rerun "
                                   "with those settings to continue it, or choose another --out")
    elif out_file.is_file() and out_file.stat().st_size:
        raise SettingsMismatch(f"{out_file} holds output but no {path.name} says how it was written; choose "
                               "another --out, or move the file away")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
