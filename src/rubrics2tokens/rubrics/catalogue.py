"""The code verifiers a generator model is offered, with the arguments each takes: IFEval's 25 instructions, the
ones the model-free extraction knows too. A model may attach any registered verifier; these are the ones it is
told about, in the form the registry takes (``attachment_problem`` checks whatever it sends)."""

from __future__ import annotations

RELATION = '"at least" or "less than"'

CATALOGUE: dict[str, tuple[str, str]] = {
    "ifeval:punctuation:no_comma": ("{}", "no commas anywhere"),
    "ifeval:change_case:english_lowercase": ("{}", "English, in lowercase letters only"),
    "ifeval:change_case:english_capital": ("{}", "English, in capital letters only"),
    "ifeval:change_case:capital_word_frequency": (
        f'{{"capital_relation": {RELATION}, "capital_frequency": N}}', "words written in all capitals, counted"),
    "ifeval:keywords:existence": ('{"keywords": ["word", ...]}', "every keyword appears"),
    "ifeval:keywords:frequency": (f'{{"keyword": "word", "relation": {RELATION}, "frequency": N}}',
                                  "a word appears a number of times"),
    "ifeval:keywords:forbidden_words": ('{"forbidden_words": ["word", ...]}', "none of these words appear"),
    "ifeval:keywords:letter_frequency": (f'{{"letter": "a", "let_relation": {RELATION}, "let_frequency": N}}',
                                         "a letter appears a number of times"),
    "ifeval:language:response_language": ('{"language": "hi"}', "the whole response is in one language "
                                                                 "(ISO 639-1 code)"),
    "ifeval:length_constraints:number_words": (f'{{"relation": {RELATION}, "num_words": N}}', "word count"),
    "ifeval:length_constraints:number_sentences": (f'{{"relation": {RELATION}, "num_sentences": N}}',
                                                   "sentence count"),
    "ifeval:length_constraints:number_paragraphs": ('{"num_paragraphs": N}',
                                                    "exactly N paragraphs separated by the markdown divider ***"),
    "ifeval:length_constraints:nth_paragraph_first_word": (
        '{"num_paragraphs": N, "nth_paragraph": I, "first_word": "word"}',
        "exactly N paragraphs separated by blank lines, paragraph I starting with the word"),
    "ifeval:detectable_content:number_placeholders": ('{"num_placeholders": N}',
                                                      "at least N placeholders in square brackets like [name]"),
    "ifeval:detectable_content:postscript": ('{"postscript_marker": "P.S." or "P.P.S"}',
                                             "a postscript at the end starting with the marker"),
    "ifeval:detectable_format:number_bullet_lists": ('{"num_bullets": N}', "exactly N markdown bullet points"),
    "ifeval:detectable_format:constrained_response": (
        "{}", 'the answer is "My answer is yes.", "My answer is no." or "My answer is maybe."'),
    "ifeval:detectable_format:number_highlighted_sections": ('{"num_highlights": N}',
                                                             "at least N sections highlighted like *this*"),
    "ifeval:detectable_format:multiple_sections": ('{"section_spliter": "Section", "num_sections": N}',
                                                   "N sections, each starting with the marker and its number"),
    "ifeval:detectable_format:json_format": ("{}", "the whole response is JSON"),
    "ifeval:detectable_format:title": ("{}", "a title in double angular brackets, like <<title>>"),
    "ifeval:combination:two_responses": ("{}", "two different answers separated by six asterisks ******"),
    "ifeval:combination:repeat_prompt": ('{"prompt_to_repeat": "the request, word for word"}',
                                         "starts by repeating the request, then answers"),
    "ifeval:startend:end_checker": ('{"end_phrase": "the exact phrase"}', "ends with this exact phrase"),
    "ifeval:startend:quotation": ("{}", "the whole response is wrapped in double quotation marks"),
}
"""Verifier id -> (its arguments as JSON, with N for a number; what it checks)."""


def catalogue_text() -> str:
    """One line per verifier, for the generator's instructions."""
    return "\n".join(f"- {verifier} {arguments}: {meaning}" for verifier, (arguments, meaning) in CATALOGUE.items())
