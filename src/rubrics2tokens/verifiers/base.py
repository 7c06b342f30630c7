"""What every verifier returns: a verdict and, where it knows them, the deciding character spans."""

from __future__ import annotations

from dataclasses import dataclass

Span = tuple[int, int]
"""Half-open character range ``[start, end)`` in the response text."""


@dataclass(frozen=True)
class Verdict:
    """One rubric checked on one response.

    ``passed`` is ``None`` when the verdict is unknown (a crashed rule, an unparseable judge reply):
    unknown verdicts are excluded downstream, never counted as failures.
    ``spans`` are the characters that decided the verdict (method.md §5: blame for a fail, credit for a
    pass); ``None`` means the verifier cannot say which characters, ``()`` means it knows that no
    character decides (a global property that held, a required word absent with no required place).
    ``stop`` flags "the stop": the response ended on its own before it reached a lower limit (too few
    words, keywords, bullets or paragraphs). The stop has no characters; the oracle maps it to the
    response's EOS token when it has one (a response cut at the length limit has none: nothing to blame).
    """

    passed: bool | None
    spans: tuple[Span, ...] | None = None
    stop: bool = False

    @staticmethod
    def unknown() -> "Verdict":
        return Verdict(passed=None, spans=None)

    @staticmethod
    def too_few() -> "Verdict":
        """A lower limit not reached: a fail that blames the stop, never the units already there."""
        return Verdict(passed=False, spans=(), stop=True)
