"""The verifier registry: verifier id (``ground_truth.instruction_id_list`` item) -> span-aware checker.

A checker is called as ``checker(response, **kwargs)`` and returns a `Verdict`. The testbed rule
families are registered here as ``testbed:<family>``; other verifier sets (IFEval, IFBench,
MulDimIF) add theirs with `register_verifier`.

An unknown id is a data or configuration error and always raises `UnknownVerifierError`: skipping
it would silently drop a rubric. A checker that raises (bad kwargs, a bug) gives an unknown verdict,
which downstream code excludes rather than counting as a failure.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import json
import logging
from typing import Any, Callable, Mapping

from rubrics2tokens.verifiers import rules
from rubrics2tokens.verifiers.base import Verdict

logger = logging.getLogger(__name__)

Checker = Callable[..., Verdict]

TESTBED_PREFIX = "testbed:"
DATASET_RULE_ID = "dataset_rule"
"""Python rules shipped with the data (HIR-16K type4); run in `rubrics2tokens.verifiers.sandbox`."""

VERIFIERS: dict[str, Checker] = {TESTBED_PREFIX + family: checker for family, checker in rules.CHECKERS.items()}


class UnknownVerifierError(KeyError):
    """A verifier id that is not registered; the message suggests the closest known ids."""

    def __init__(self, verifier_id: str):
        self.verifier_id = verifier_id
        close_matches = difflib.get_close_matches(str(verifier_id), VERIFIERS, n=3)
        suggestion = f"; did you mean {', '.join(map(repr, close_matches))}?" if close_matches else ""
        super().__init__(f"unknown verifier id {verifier_id!r} ({len(VERIFIERS)} ids are known){suggestion}")

    def __str__(self) -> str:
        # KeyError would show the repr of the message, quotes and escapes included.
        return self.args[0]


def register_verifier(verifier_id: str, checker: Checker) -> Checker:
    """Add a checker under a new id; re-registering an id raises `ValueError`."""
    if verifier_id in VERIFIERS:
        raise ValueError(f"verifier id {verifier_id!r} is already registered")
    if not callable(checker):
        raise TypeError(f"the checker for {verifier_id!r} must be callable, got {type(checker).__name__}")
    VERIFIERS[verifier_id] = checker
    return checker


LAZY_FAMILIES: dict[str, tuple[str, str]] = {
    "ifeval:": ("rubrics2tokens.verifiers.ifeval", "register_ifeval_verifiers"),
    "ifbench:": ("rubrics2tokens.verifiers.ifeval", "register_ifeval_verifiers"),
    "muldimif:": ("rubrics2tokens.verifiers.muldimif", "register_muldimif_verifiers"),
    DATASET_RULE_ID: ("rubrics2tokens.verifiers.sandbox", "register_dataset_rule_verifier"),
}
"""Id prefix -> (module, function) that registers that family on first use: they need packages, data or
worker processes that testbed users can do without."""


def get_verifier(verifier_id: str) -> Checker:
    if verifier_id not in VERIFIERS:
        for prefix, (module, function) in LAZY_FAMILIES.items():
            if verifier_id.startswith(prefix):
                getattr(importlib.import_module(module), function)()
    try:
        return VERIFIERS[verifier_id]
    except KeyError:
        raise UnknownVerifierError(verifier_id) from None


PROBE_RESPONSE = "A short probe response."
PROBED_PREFIXES = (TESTBED_PREFIX, "ifeval:", "ifbench:")
"""Families whose checkers check their arguments before they read the response, so one call on a probe
response finds bad arguments. The others are only matched against the checker's signature: a MulDimIF
checker reads its description against the response, and a dataset rule is code that runs only in its sandbox."""


def argument_problem(verifier_id: str, kwargs: Mapping[str, Any]) -> str | None:
    """Why ``kwargs`` cannot go to the verifier (a missing, unexpected or ill-valued argument), or None; an
    unknown id raises `UnknownVerifierError`. Data loading calls this for every rubric, so that a typo in any
    row stops the run before the model loads rather than when (or if) the row is drawn."""
    return _argument_problem(verifier_id, json.dumps(kwargs, sort_keys=True, default=repr))


@functools.lru_cache(maxsize=65536)  # a dataset repeats the same (id, arguments) pairs across its rows
def _argument_problem(verifier_id: str, kwargs_json: str) -> str | None:
    checker = get_verifier(verifier_id)
    kwargs = json.loads(kwargs_json)
    parameters = list(inspect.signature(checker).parameters.values())[1:]  # after the response
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        names = [p.name for p in parameters]
        for name in kwargs:
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                return (f"{verifier_id} has no argument {name!r} ({hint}it takes: "
                        f"{', '.join(names) or 'no arguments'})")
    try:
        inspect.signature(checker).bind(PROBE_RESPONSE, **kwargs)
        if verifier_id.startswith(PROBED_PREFIXES):
            checker(PROBE_RESPONSE, **kwargs)
    except (TypeError, ValueError) as error:
        return f"{verifier_id} does not accept {kwargs_json}: {error}"
    return None


def run_verifier(verifier_id: str, response: str, kwargs: Mapping[str, Any]) -> Verdict:
    """Check one response against one rubric; a checker that raises gives `Verdict.unknown()`."""
    checker = get_verifier(verifier_id)
    try:
        return checker(response, **kwargs)
    except Exception as error:  # any checker failure is an unknown verdict, never a crash or a fail
        logger.warning("verifier %s raised %s: %s; verdict is unknown", verifier_id, type(error).__name__, error)
        return Verdict.unknown()
