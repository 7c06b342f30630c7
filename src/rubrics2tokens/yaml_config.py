"""YAML files mapped onto dataclasses: strict keys, checked types, ``key=value`` overrides.

The machinery under every configuration file of the project (the RL run config in `rubrics2tokens.config`,
the relevance-model training config in `rubrics2tokens.relevance.training.config`). It knows no section
of either, so it sits at the bottom of the import graph. Unknown keys and ill-typed values are errors
that name the file and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Sequence

import yaml


class ConfigError(ValueError):
    """A problem in a configuration file; the message names the file and the key.

    ``keys`` are the dotted keys at fault (empty when a section's values only fail together, then
    ``section`` names it); `build_config` uses them to blame the YAML file or the command-line override
    that set the value."""

    def __init__(self, message: str, keys: Sequence[str] = (), section: str | None = None):
        super().__init__(message)
        self.keys, self.section = tuple(keys), section


_SCALARS: dict[type, tuple[str, Any]] = {
    bool: ("true or false", lambda value: isinstance(value, bool)),
    int: ("an integer", lambda value: isinstance(value, int) and not isinstance(value, bool)),
    str: ("a string", lambda value: isinstance(value, str)),
}


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value) if isinstance(value, (int, float, str)) else None
    except ValueError:
        return None


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value`` against a simple annotation, converting where YAML is loose ("1e-6" is a string
    in YAML 1.1; an int where a float is expected). Complex annotations pass through unchecked."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} does not match {annotation}", [key])
    if annotation is float:
        number = _as_number(value)
        if number is None:
            raise ConfigError(f"{key}: expected a number, got {value!r}", [key])
        return number
    if annotation in _SCALARS:
        expected, accepts = _SCALARS[annotation]
        if not accepts(value):
            raise ConfigError(f"{key}: expected {expected}, got {value!r}", [key])
        return value
    if origin is list and isinstance(value, list):
        (item_type,) = typing.get_args(annotation) or (Any,)
        return [_coerce(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is list:
        raise ConfigError(f"{key}: expected a list, got {value!r}", [key])
    return value


def _suggest(key: str, known: dict) -> str:
    close = difflib.get_close_matches(key, list(known), n=3)
    if close:
        return f"did you mean {' or '.join(repr(c) for c in close)}?"
    if len(known) <= 12:
        return f"valid keys: {', '.join(sorted(known))}"
    return "see the configuration reference in README.md"


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'the config'}: expected a mapping of keys, got {data!r}", [prefix] if prefix else [])
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(known))
    if unknown:
        where = f" in '{prefix}'" if prefix else ""
        hints_text = "; ".join(_suggest(key, known) for key in unknown)
        raise ConfigError(f"unknown key(s) {', '.join(repr(k) for k in unknown)}{where} ({hints_text})",
                          [f"{prefix}.{key}" if prefix else key for key in unknown])
    values = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            values[name] = _build(annotation, value, key)
        else:
            values[name] = _coerce(value, annotation, key)
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{prefix or 'config'}: {error}", section=prefix) from None


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: '{part}' is not a section")
    node[leaf] = value


def read_config_tree(path: str | Path, overrides: Sequence[str] = ()) -> dict:
    """The YAML mapping of a config file with ``key=value`` overrides applied (``section.key=value`` for a
    nested key; values parsed as YAML)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.object[error.start]:#04x} at offset "
                          f"{error.start})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(error).split())}") from None
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"override {override!r} must look like key=value (section.key=value when nested)")
        dotted, raw = override.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise ConfigError(f"command-line override {override!r}: invalid YAML value: "
                              f"{' '.join(str(error).split())}") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: expected a mapping of keys, got {tree!r}")
        _set_dotted(tree, dotted.strip(), value)
    return tree


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].strip()


def config_source(path: str | Path, overrides: Sequence[str], keys: Sequence[str] = (),
                  section: str | None = None) -> str:
    """Where a bad value came from: the command-line override that set one of ``keys`` (or a section holding
    it), else the YAML file. For a section whose values only fail together, the file and the overrides that
    touched the section."""
    for key in keys:
        for override in overrides:
            dotted = _override_key(override)
            if key == dotted or key.startswith(dotted + ".") or dotted.startswith(key + "."):
                return f"command-line override {override!r}"
    if section is not None:
        touching = [repr(o) for o in overrides if _override_key(o).startswith(section + ".") or not section]
        if touching:
            return f"{path} with command-line override {', '.join(touching)}"
    return str(path)


def build_config(cls: type, tree: dict, path: str | Path, overrides: Sequence[str] = ()) -> Any:
    """The dataclass ``cls`` from a config mapping; errors name the source of the bad value (the file, or
    the override that set it) and the key."""
    try:
        return _build(cls, tree, "")
    except ConfigError as error:
        raise ConfigError(f"{config_source(path, overrides, error.keys, error.section)}: {error}",
                          error.keys) from None
