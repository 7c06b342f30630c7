"""Whether a verifier (id and arguments) may decide a rubric: the check every attachment passes before a row is
written, whether a rule or a model proposed it, so a wrong attachment is caught here and never trained on.

Two checks. The registry's own argument validation (`argument_problem`: a known id, arguments it takes, values
its checker accepts). Then, for the IFEval and IFBench checkers, that the checker would use exactly the arguments
given: where an argument is missing or a value is one it cannot use (a "letter" that is no letter), the checker
silently draws one at random, and the rubric would check something nobody asked for.
"""

from __future__ import annotations

from typing import Any, Mapping

from rubrics2tokens.verifiers.ifeval import InstructionVerifier, check_instruction
from rubrics2tokens.verifiers.registry import PROBE_RESPONSE, UnknownVerifierError, argument_problem, get_verifier


def attachment_problem(verifier: str, kwargs: Mapping[str, Any]) -> str | None:
    """Why ``verifier`` with ``kwargs`` must not decide a rubric, or None when it may."""
    if not isinstance(verifier, str) or not isinstance(kwargs, Mapping):
        return f"a verifier is an id string with an object of arguments, got {verifier!r} with {kwargs!r}"
    try:
        problem = argument_problem(verifier, kwargs)
    except UnknownVerifierError as error:
        return str(error)
    except ImportError as error:
        return f"verifier {verifier!r} needs a package that is not installed ({error})"
    if problem is not None:
        return problem
    checker = get_verifier(verifier)
    if isinstance(checker, InstructionVerifier):
        return _argument_not_used(checker, verifier, kwargs)
    return None


def _argument_not_used(checker: InstructionVerifier, verifier: str, kwargs: Mapping[str, Any]) -> str | None:
    """The first argument the IFEval/IFBench checker would not take as given (it would draw one), or None."""
    _, used = check_instruction(checker.instruction_class, checker.instruction_id, PROBE_RESPONSE, kwargs)
    for name, value in used.items():
        if kwargs.get(name) is None:
            return f"{verifier} needs the argument {name!r} (without it the checker draws one at random)"
        if _normalized(kwargs[name]) != _normalized(value):
            return (f"{verifier} cannot use {name}={kwargs[name]!r}: its checker would use {value!r}, drawn at "
                    f"random, instead")
    return None


def _normalized(value: Any) -> Any:
    """A value as the checkers compare it: text without surrounding space and case, lists as sets."""
    if isinstance(value, str):
        return value.strip().lower()
    if isinstance(value, (list, tuple)):
        return frozenset(_normalized(item) for item in value)
    return value
