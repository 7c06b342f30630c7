"""Rubrics for prompts that have none (`rtt rubrics generate`).

`extract` reads the constraints a prompt's wording states in IFEval's phrasings (rules in `rules_wording`,
`rules_keywords`, `rules_format`; count phrases in `phrases`); `replies` asks a generator model (`generators`) for
rubric items and reads its replies strictly; `attach` decides whether a verifier may decide a rubric; `generate`
writes the rows, resumably.
"""
