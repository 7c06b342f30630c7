"""A seeded generator of rule-checked constraint prompts (the testbed).

Each prompt is a short writing task about a topic followed by 2-5 constraint instructions, one per
rule family at most; each constraint becomes a rubric checked by ``testbed:<family>`` (see
`rubrics2tokens.verifiers.rules`). Two lessons from docs/testbed.md shape the sampling:

- every prompt must be satisfiable: conflicting constraints are never drawn together, and all
  words and phrases are lowercase and comma-free so they agree with ``all_lowercase`` and
  ``no_commas``;
- a near-empty answer must not satisfy a prompt: a constraint that such an answer meets ("at most
  N words", "no commas") always comes with one that a short answer fails;
- a prompt must be satisfiable within the completion limit it will be trained with (``max_tokens``): a
  limit shorter than the words a prompt asks for makes "at least N words" fail for every response and
  "end with a phrase" unreachable (`min_tokens_needed`).

The quality families (`QUALITY_FAMILIES`: no repeated sentence, enough distinct words, a finished last
sentence, a floor on length) check the answer itself rather than the form an instruction asks for; they catch
the ways RL runs hacked the testbed reward (docs/testbed.md §4). They are drawn only when `families` names them,
and ``quality_rubrics`` appends them to every prompt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from rubrics2tokens.data.schema import PromptRow, Rubric, write_prompt_rows
from rubrics2tokens.verifiers import rules
from rubrics2tokens.verifiers.base import Verdict
from rubrics2tokens.verifiers.registry import TESTBED_PREFIX

TOPICS = (
    "the ocean", "a city at night", "coffee", "learning to cook", "a rainy day", "space travel",
    "gardening", "a lost dog", "friendship", "the first day of school", "mountains", "a robot helper",
    "winter", "a small bakery", "the moon", "recycling", "a long train ride", "music",
    "a birthday party", "honey bees", "a public library", "a river", "a new bicycle", "sleep",
    "a walk in the forest", "the desert", "a summer festival", "flying a kite", "an old lighthouse",
    "saving money",
)

TASKS = (
    "Write a short story about {topic}.",
    "Write a product description for something inspired by {topic}.",
    "Write an email to a friend about {topic}.",
    "Write a poem about {topic}.",
    "Give advice to a beginner about {topic}.",
    "Explain {topic} to a curious child.",
    "Write a diary entry about {topic}.",
)

# The word lists are disjoint, lowercase and comma-free, so keywords, start words and ending phrases
# never clash with a forbidden word, with all_lowercase or with no_commas.
KEYWORDS = ("light", "river", "friend", "morning", "green", "journey", "quiet", "window", "warm", "home")
FORBIDDEN_WORDS = ("very", "really", "good", "nice", "thing", "beautiful", "amazing", "always", "big")
START_WORDS = ("today", "imagine", "once", "listen", "yes", "here", "sometimes", "first")
END_PHRASES = (
    "thank you for reading.", "that is all for now.", "see you soon.", "and that is the end.",
    "let me know what you think.", "have a wonderful day.",
)

MIN_WORD_GAP = 20  # "at least" must sit this far below "at most" to leave the policy room
TOKENS_PER_WORD = 1.5  # SmolLM2 and Llama-style tokenizers average ~1.3 tokens per English word, plus punctuation
WORDS_PER_BULLET = 4  # a bullet line worth the name: its marker and a few words
WORDS_PER_PARAGRAPH = 8
MAX_ATTEMPTS = 1000  # draws per prompt before the requested families are declared unsatisfiable
MIN_DISTINCT_RATIOS = (0.5, 0.6)  # distinct words / words; SmolLM2-135M answers of 80-120 words: median 0.70
LENGTH_FLOOR_WORDS = (40, 50)  # about half of the base policy's held-out answers (~85 words, most cut at 128 tokens)


@dataclass(frozen=True)
class RuleFamily:
    """One constraint family: how it is asked for, how a judge reads it, and how its kwargs are drawn.

    `near_empty_passes` marks families that a near-empty answer satisfies ("at most N words", "no
    commas"): such a constraint must be paired with one that a short answer fails.
    """

    name: str
    instruction: Callable[[dict[str, Any]], str]
    description: Callable[[dict[str, Any]], str]
    sample_kwargs: Callable[[random.Random], dict[str, Any]]
    near_empty_passes: bool = False

    @property
    def verifier_id(self) -> str:
        return TESTBED_PREFIX + self.name

    @property
    def checker(self) -> Callable[..., Verdict]:
        return rules.CHECKERS[self.name]


def _no_kwargs(rng: random.Random) -> dict[str, Any]:
    return {}


def _percent(ratio: float) -> str:
    return f"{round(ratio * 100)}%"


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


FAMILIES: dict[str, RuleFamily] = {family.name: family for family in (
    RuleFamily(
        name="all_lowercase",
        instruction=lambda kw: "Write your entire response in lowercase letters, with no capital letters at all.",
        description=lambda kw: "The response contains no uppercase letters.",
        sample_kwargs=_no_kwargs,
        near_empty_passes=True,
    ),
    RuleFamily(
        name="include_keyword",
        instruction=lambda kw: f'Include the word "{kw["keyword"]}" at least {_times(kw["min_count"])}.',
        description=lambda kw: (f'The response includes the word "{kw["keyword"]}" '
                                f'at least {_times(kw["min_count"])}.'),
        sample_kwargs=lambda rng: {"keyword": rng.choice(KEYWORDS), "min_count": rng.randint(1, 3)},
    ),
    RuleFamily(
        name="forbidden_word",
        instruction=lambda kw: f'Do not use the word "{kw["word"]}" anywhere in your response.',
        description=lambda kw: f'The response does not contain the word "{kw["word"]}".',
        sample_kwargs=lambda rng: {"word": rng.choice(FORBIDDEN_WORDS)},
        near_empty_passes=True,
    ),
    RuleFamily(
        name="no_commas",
        instruction=lambda kw: "Do not use any commas in your response.",
        description=lambda kw: "The response contains no commas.",
        sample_kwargs=_no_kwargs,
        near_empty_passes=True,
    ),
    RuleFamily(
        name="start_with_word",
        instruction=lambda kw: f'Begin your response with the word "{kw["word"]}".',
        description=lambda kw: f'The response begins with the word "{kw["word"]}".',
        sample_kwargs=lambda rng: {"word": rng.choice(START_WORDS)},
    ),
    RuleFamily(
        name="end_with_phrase",
        instruction=lambda kw: f'End your response with the exact phrase "{kw["phrase"]}" and nothing after it.',
        description=lambda kw: f'The response ends with the exact phrase "{kw["phrase"]}"',
        sample_kwargs=lambda rng: {"phrase": rng.choice(END_PHRASES)},
    ),
    RuleFamily(
        name="max_words",
        instruction=lambda kw: f"Use at most {kw['n']} words.",
        description=lambda kw: f"The response has at most {kw['n']} words.",
        sample_kwargs=lambda rng: {"n": rng.randint(60, 120)},
        near_empty_passes=True,
    ),
    RuleFamily(
        name="min_words",
        instruction=lambda kw: f"Use at least {kw['n']} words.",
        description=lambda kw: f"The response has at least {kw['n']} words.",
        sample_kwargs=lambda rng: {"n": rng.randint(20, 60)},
    ),
    RuleFamily(
        name="exact_bullets",
        instruction=lambda kw: f'Include exactly {kw["n"]} bullet points, each on its own line starting with "* ".',
        description=lambda kw: (f'The response contains exactly {kw["n"]} bullet points '
                                f'(lines starting with "* " or "- ").'),
        sample_kwargs=lambda rng: {"n": rng.randint(2, 5)},
    ),
    RuleFamily(
        name="title",
        instruction=lambda kw: "Give your response a title wrapped in double angular brackets, like <<my title>>.",
        description=lambda kw: "The response has a title wrapped in double angular brackets, like <<my title>>.",
        sample_kwargs=_no_kwargs,
    ),
    RuleFamily(
        name="n_paragraphs",
        instruction=lambda kw: f"Write exactly {kw['n']} paragraphs separated by blank lines.",
        description=lambda kw: f"The response has exactly {kw['n']} paragraphs separated by blank lines.",
        sample_kwargs=lambda rng: {"n": rng.randint(2, 4)},
    ),
    # the quality families (QUALITY_FAMILIES below); each but length_floor holds for a short clean answer
    RuleFamily(
        name="no_repeated_sentences",
        instruction=lambda kw: "Do not repeat any sentence or line.",
        description=lambda kw: "No sentence or line of three words or more appears twice in the response.",
        sample_kwargs=_no_kwargs,
        near_empty_passes=True,
    ),
    RuleFamily(
        name="distinct_words",
        instruction=lambda kw: (f"Vary your wording: at least {_percent(kw['min_ratio'])} of your words must be "
                                "different words, not repeats."),
        description=lambda kw: (f"At least {_percent(kw['min_ratio'])} of the words in the response are distinct "
                                "(not repeats of an earlier word)."),
        sample_kwargs=lambda rng: {"min_ratio": rng.choice(MIN_DISTINCT_RATIOS)},
        near_empty_passes=True,
    ),
    RuleFamily(
        name="length_floor",  # min_words as a quality family: a floor on length in every prompt
        instruction=lambda kw: f"Write a full answer of at least {kw['n']} words.",
        description=lambda kw: f"The response has at least {kw['n']} words.",
        sample_kwargs=lambda rng: {"n": rng.randint(*LENGTH_FLOOR_WORDS)},
    ),
    RuleFamily(
        name="end_with_sentence",
        instruction=lambda kw: ("Finish your response with a complete sentence ending in a period, "
                                "a question mark or an exclamation mark."),
        description=lambda kw: ("The response ends with a complete sentence: its last character is a period, "
                                "a question mark or an exclamation mark (a closing quote or bracket may follow)."),
        sample_kwargs=_no_kwargs,
        near_empty_passes=True,
    ),
)}

QUALITY_FAMILIES = ("no_repeated_sentences", "distinct_words", "end_with_sentence", "length_floor")
"""Families that check the answer's own quality (docs/testbed.md §4): not drawn unless `families` names them;
``generate_rows(quality_rubrics=...)`` puts them in every prompt."""

DEFAULT_FAMILIES = tuple(name for name in FAMILIES if name not in QUALITY_FAMILIES)
"""The families drawn when `families` is not given: the instruction mix, unchanged by the quality families."""

Constraints = dict[str, dict[str, Any]]
"""The constraints of one prompt: family name -> its kwargs, in instruction order."""


def is_consistent(constraints: Constraints) -> bool:
    """False when the constraints cannot all hold together (docs/testbed.md: no contradictory pairs).

    Exact bullets and a finished last sentence do go together: the answer closes with a sentence after its
    bullets, or ends its last bullet with a period (a last bullet without one fails end_with_sentence).
    """
    if "start_with_word" in constraints and "title" in constraints:
        return False  # a title on the first line would displace the start word
    if "max_words" in constraints and _word_floor(constraints) >= constraints["max_words"]["n"] - MIN_WORD_GAP:
        return False
    if "forbidden_word" in constraints and constraints["forbidden_word"]["word"] in _required_words(constraints):
        return False
    if "end_with_sentence" in constraints and "end_with_phrase" in constraints:
        # the ending phrases end in a period; one that did not would leave no finished sentence to end on
        phrase = constraints["end_with_phrase"]["phrase"].rstrip()
        if not rules.check_end_with_sentence(phrase).passed:
            return False
    return True


def _word_floor(constraints: Constraints) -> int:
    """The most words any "at least N words" constraint asks for (0 if none)."""
    return max(constraints.get(name, {}).get("n", 0) for name in ("min_words", "length_floor"))


def _required_words(constraints: Constraints) -> set[str]:
    """Words the other constraints make the response contain."""
    texts = [constraints.get("include_keyword", {}).get("keyword", ""),
             constraints.get("start_with_word", {}).get("word", ""),
             constraints.get("end_with_phrase", {}).get("phrase", "")]
    return {text[start:end].lower() for text in texts for start, end in rules.find_words(text)}


def min_tokens_needed(constraints: Constraints) -> int:
    """A lower bound on the completion tokens a response satisfying every constraint needs (EOS included).

    Words: the most that any one constraint asks for (at least N words), or the words the required parts
    take together (bullets, paragraphs, keyword repeats, start word, ending phrase, title), whichever is
    more, at `TOKENS_PER_WORD`; a bullet marker and a paragraph break cost two tokens each.
    """
    bullets = constraints.get("exact_bullets", {}).get("n", 0)
    paragraphs = constraints.get("n_paragraphs", {}).get("n", 0)
    parts = (bullets * WORDS_PER_BULLET + paragraphs * WORDS_PER_PARAGRAPH
             + constraints.get("include_keyword", {}).get("min_count", 0)
             + len(rules.find_words(constraints.get("end_with_phrase", {}).get("phrase", "")))
             + ("start_with_word" in constraints) + 3 * ("title" in constraints))
    words = max(_word_floor(constraints), parts)
    return int(words * TOKENS_PER_WORD + 0.999) + 2 * (bullets + paragraphs) + 1


def resists_collapse(constraints: Constraints) -> bool:
    """False when a near-empty answer could satisfy every constraint (docs/testbed.md §1)."""
    return not all(FAMILIES[name].near_empty_passes for name in constraints)


def generate_rows(n: int, seed: int = 0, min_rubrics: int = 2, max_rubrics: int = 5,
                  families: Sequence[str] | None = None, max_tokens: int | None = None,
                  quality_rubrics: Sequence[str] | None = ()) -> list[PromptRow]:
    """`n` testbed prompts, the same for the same arguments; ids are ``testbed-{seed}-{i:06d}``.

    Each prompt gets `min_rubrics` to `max_rubrics` constraints (capped at the number of `families`),
    drawn from `families` (default: `DEFAULT_FAMILIES`, every family but the quality ones); with
    `max_tokens`, only constraint sets that a response of at most that many tokens can satisfy
    (`min_tokens_needed`). Every prompt then also gets the `quality_rubrics` (names from
    `QUALITY_FAMILIES`, none by default), after the drawn ones and in that order. Their arguments come
    from a random stream of their own, so the drawn constraints are those of the same call without them.
    """
    family_names = _validated_family_names(families)
    quality_names = _validated_quality_names(quality_rubrics, family_names)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    if not 1 <= min_rubrics <= max_rubrics or min_rubrics > len(family_names):
        raise ValueError(f"need 1 <= min_rubrics <= max_rubrics and min_rubrics <= number of families "
                         f"({len(family_names)}), got min_rubrics={min_rubrics}, max_rubrics={max_rubrics}")
    max_rubrics = min(max_rubrics, len(family_names))
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    rng = random.Random(seed)
    quality_rng = random.Random(f"{seed}:quality")  # str seeds are hashed the same way in every process
    return [_draw_row(rng, f"testbed-{seed}-{i:06d}", family_names, min_rubrics, max_rubrics, max_tokens,
                      {name: FAMILIES[name].sample_kwargs(quality_rng) for name in quality_names})
            for i in range(n)]


def write_testbed(path: str | Path, n: int, seed: int = 0, min_rubrics: int = 2, max_rubrics: int = 5,
                  families: Sequence[str] | None = None, quality_rubrics: Sequence[str] | None = ()) -> Path:
    """Generate `n` prompts (see `generate_rows`) and write them as HIR-16K-style JSONL."""
    return write_prompt_rows(generate_rows(n, seed, min_rubrics, max_rubrics, families,
                                           quality_rubrics=quality_rubrics), path)


def _validated_family_names(families: Sequence[str] | None) -> list[str]:
    return list(DEFAULT_FAMILIES) if families is None else _validated_names(families, "families", FAMILIES,
                                                                            "testbed families")


def _validated_quality_names(quality_rubrics: Sequence[str] | None, family_names: list[str]) -> list[str]:
    if quality_rubrics is None:
        return []
    quality_rubrics = _validated_names(quality_rubrics, "quality_rubrics", QUALITY_FAMILIES, "quality rubrics")
    drawn = [name for name in quality_rubrics if name in family_names]
    if drawn:
        raise ValueError(f"quality rubrics {drawn} are also in families: a prompt has one rubric per family, so "
                         "name each in families (drawn in some prompts) or in quality_rubrics (in every prompt)")
    return quality_rubrics


def _validated_names(names: Sequence[str], key: str, known: Sequence[str], what: str) -> list[str]:
    """``names`` as a list: a sequence (not a string) of distinct names from ``known``."""
    if isinstance(names, str):
        raise ValueError(f"{key} must be a sequence of family names, not the string {names!r}")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; known: {', '.join(known)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{key} must not repeat a name, got {list(names)}")
    return list(names)


def _draw_constraints(rng: random.Random, family_names: list[str], min_rubrics: int,
                      max_rubrics: int, max_tokens: int | None, quality: Constraints) -> Constraints:
    # Rejection sampling: simple, and every rule above holds by construction of the accepted draw.
    for _ in range(MAX_ATTEMPTS):
        chosen = rng.sample(family_names, rng.randint(min_rubrics, max_rubrics))
        drawn = {name: FAMILIES[name].sample_kwargs(rng) for name in chosen}
        constraints = drawn | quality
        # the drawn mix resists collapse on its own, so a length floor does not change which mixes are drawn
        if is_consistent(constraints) and resists_collapse(drawn) \
                and (max_tokens is None or min_tokens_needed(constraints) <= max_tokens):
            return constraints
    within = f", satisfiable within {max_tokens} tokens," if max_tokens is not None else ""
    raise ValueError(f"could not draw {min_rubrics}-{max_rubrics} consistent, collapse-resistant constraints{within} "
                     f"from families {family_names}{f' with quality rubrics {list(quality)}' if quality else ''} "
                     f"in {MAX_ATTEMPTS} attempts")


def _draw_row(rng: random.Random, row_id: str, family_names: list[str], min_rubrics: int,
              max_rubrics: int, max_tokens: int | None = None, quality: Constraints | None = None) -> PromptRow:
    task = rng.choice(TASKS).format(topic=rng.choice(TOPICS))
    constraints = _draw_constraints(rng, family_names, min_rubrics, max_rubrics, max_tokens, quality or {})
    text = " ".join([task, *(FAMILIES[name].instruction(kwargs) for name, kwargs in constraints.items())])
    rubrics = [Rubric(description=FAMILIES[name].description(kwargs), verifier=FAMILIES[name].verifier_id,
                      kwargs=kwargs, weight=1.0)
               for name, kwargs in constraints.items()]
    return PromptRow(id=row_id, prompt=text, messages=[{"role": "user", "content": text}], rubrics=rubrics,
                     source="testbed")
