"""The model-free rubric extraction on hand-written prompts (phrasings of our own, not IFEval's), the count
phrases it reads, the attachment check every verifier passes, and the reading of a generator's replies."""

from __future__ import annotations

import pytest

from rubrics2tokens.rubrics.attach import attachment_problem
from rubrics2tokens.rubrics.catalogue import CATALOGUE
from rubrics2tokens.rubrics.descriptions import DESCRIPTIONS
from rubrics2tokens.rubrics.extract import RULES, extract_rubrics
from rubrics2tokens.rubrics.phrases import bounds, times_bounds
from rubrics2tokens.rubrics.replies import UnreadableReply, build_messages, read_reply
from rubrics2tokens.rubrics.rules_wording import LANGUAGES

# (prompt, verifier id without "ifeval:", the arguments of each constraint of that id the prompt states)
EXTRACTIONS = [
    ("Describe your town. Please do not use a single comma.", "punctuation:no_comma", [{}]),
    ("Describe your town; commas are not allowed.", "punctuation:no_comma", [{}]),
    ("Write a memo to staff. Everything must be in lowercase letters.", "change_case:english_lowercase", [{}]),
    ("Write a memo to staff without using any capital letters.", "change_case:english_lowercase", [{}]),
    ("Write a war cry. Reply in all capital letters, in English.", "change_case:english_capital", [{}]),
    ("Write a review where words in all capital letters appear at least 4 times.",
     "change_case:capital_word_frequency", [{"capital_relation": "at least", "capital_frequency": 4}]),
    ("Write a review. Use some words in all caps, but words in all caps should appear at most 6 times.",
     "change_case:capital_word_frequency", [{"capital_relation": "less than", "capital_frequency": 7},
                                            {"capital_relation": "at least", "capital_frequency": 1}]),
    ('Write a toast. Include the keywords "harvest" and "lantern".', "keywords:existence",
     [{"keywords": ["harvest", "lantern"]}]),
    ("Write a toast that includes the words barley, hops and yeast.", "keywords:existence",
     [{"keywords": ["barley", "hops", "yeast"]}]),
    ("Write a fable. The word fox should appear at least 5 times.", "keywords:frequency",
     [{"keyword": "fox", "relation": "at least", "frequency": 5}]),
    ("Write a fable in which the word 'owl' appears 2 to 4 times.", "keywords:frequency",
     [{"keyword": "owl", "relation": "at least", "frequency": 2}, {"keyword": "owl", "relation": "less than",
                                                                    "frequency": 5}]),
    ("Write a fable and use the word moon no more than twice.", "keywords:frequency",
     [{"keyword": "moon", "relation": "less than", "frequency": 3}]),
    ("Summarize the match. Do not include the words goal, referee or penalty.", "keywords:forbidden_words",
     [{"forbidden_words": ["goal", "referee", "penalty"]}]),
    ("Summarize the match without mentioning 'offside' or 'VAR'.", "keywords:forbidden_words",
     [{"forbidden_words": ["offside", "VAR"]}]),
    ('Summarize the match. The word "crowd" should not appear in your answer.', "keywords:forbidden_words",
     [{"forbidden_words": ["crowd"]}]),
    ("Write a slogan in which the letter z appears at least 3 times.", "keywords:letter_frequency",
     [{"letter": "z", "let_relation": "at least", "let_frequency": 3}]),
    ("Write a slogan and avoid using the letter e more than 5 times.", "keywords:letter_frequency",
     [{"letter": "e", "let_relation": "less than", "let_frequency": 6}]),
    ("Write a slogan that does not contain the letter 'a'.", "keywords:letter_frequency",
     [{"letter": "a", "let_relation": "less than", "let_frequency": 1}]),
    ("Explain photosynthesis. Your whole answer must be in German, no other language is allowed.",
     "language:response_language", [{"language": "de"}]),
    ("Write a product page of at least 250 words.", "length_constraints:number_words",
     [{"relation": "at least", "num_words": 250}]),
    ("Write a product page. Keep it to 80 words or fewer.", "length_constraints:number_words",
     [{"relation": "less than", "num_words": 81}]),
    ("Tell me a story with fewer than 12 sentences.", "length_constraints:number_sentences",
     [{"relation": "less than", "num_sentences": 12}]),
    ("Tell me a story of between 8 and 10 sentences.", "length_constraints:number_sentences",
     [{"relation": "at least", "num_sentences": 8}, {"relation": "less than", "num_sentences": 11}]),
    ("Write exactly 3 paragraphs about tea, separated by the markdown divider ***.",
     "length_constraints:number_paragraphs", [{"num_paragraphs": 3}]),
    ("Write exactly 4 paragraphs about tea, separated by two new lines. The second paragraph must start with the "
     "word \"Steep\".", "length_constraints:nth_paragraph_first_word",
     [{"num_paragraphs": 4, "nth_paragraph": 2, "first_word": "steep"}]),
    ("Draft an invitation with at least 4 placeholders in square brackets, like [date].",
     "detectable_content:number_placeholders", [{"num_placeholders": 4}]),
    ("Write a thank-you card and add a postscript starting with P.S.", "detectable_content:postscript",
     [{"postscript_marker": "P.S."}]),
    ("List the planets in exactly 8 bullet points, like:\n* Mercury", "detectable_format:number_bullet_lists",
     [{"num_bullets": 8}]),
    ('Is a tomato a fruit? Answer with one of "My answer is yes.", "My answer is no.", "My answer is maybe."',
     "detectable_format:constrained_response", [{}]),
    ("Explain recursion and italicize at least 2 key phrases with markdown, like *this*.",
     "detectable_format:number_highlighted_sections", [{"num_highlights": 2}]),
    ("Plan a week of meals in 7 sections, each starting with Day X.", "detectable_format:multiple_sections",
     [{"section_spliter": "Day", "num_sections": 7}]),
    ("List three fruits and wrap your whole output in JSON format.", "detectable_format:json_format", [{}]),
    ("Write an ode to coffee with a title in double angular brackets, like <<ode>>.", "detectable_format:title",
     [{}]),
    ("Name a good dog breed. Give two different answers separated by 6 asterisk symbols ******.",
     "combination:two_responses", [{}]),
    ("Name a good dog breed.\n\nFirst repeat the request above word for word, then answer it.",
     "combination:repeat_prompt", [{"prompt_to_repeat": "Name a good dog breed."}]),
    ('Write a weather report and finish it with the exact phrase "Stay dry out there."', "startend:end_checker",
     [{"end_phrase": "Stay dry out there."}]),
    ("Write a weather report. Put double quotation marks around your entire response.", "startend:quotation", [{}]),
]


@pytest.mark.parametrize("prompt, instruction_id, expected", EXTRACTIONS,
                         ids=[f"{instruction_id}-{n}" for n, (_, instruction_id, _) in enumerate(EXTRACTIONS)])
def test_each_instruction_is_read_from_its_wording(prompt, instruction_id, expected):
    found = [rubric.kwargs for rubric in extract_rubrics(prompt) if rubric.verifier == "ifeval:" + instruction_id]
    assert found == expected
    for rubric in extract_rubrics(prompt):
        assert rubric.weight == 1.0 and rubric.description.endswith((".", "\"")) and attachment_problem(
            rubric.verifier, rubric.kwargs) is None


@pytest.mark.parametrize("prompt", [
    "Separate the items with commas.",
    "Explain the French word 'croissant' to a child.",
    "Why do some words start with a capital letter?",
    "Write a 500-word story about a lighthouse.",  # a length stated alone is no limit
    "Each line should contain exactly one sentence.",
    "Paragraph 2 should start with the word 'However'.",  # no paragraph count: the checker needs one
    "At the end of your response, add a note.",
    "Tell me about bullet points in slides.",
])
def test_wording_that_states_no_checkable_constraint_gets_none(prompt):
    assert extract_rubrics(prompt) == []


def test_count_phrases_map_onto_the_two_relations():
    assert bounds("at least 300") == [("at least", 300)]
    assert bounds("more than 800") == [("at least", 801)]
    assert bounds("at most ten") == [("less than", 11)]
    assert bounds("45 or less") == [("less than", 46)]
    assert bounds("exactly 4") == [("at least", 4), ("less than", 5)]
    assert bounds("in the range of 40 to 60") == [("at least", 40), ("less than", 61)]
    assert bounds("less than a total of 10") == [("less than", 10)]
    assert bounds("several") == []
    assert times_bounds("twice") == [("at least", 2)]
    assert times_bounds("only once") == [("less than", 2)]
    assert times_bounds("6 or 7 times") == [("at least", 6), ("less than", 8)]


def test_an_attachment_its_checker_would_not_take_as_given_is_caught():
    assert attachment_problem("ifeval:punctuation:no_comma", {}) is None
    number_words = "ifeval:length_constraints:number_words"
    assert attachment_problem(number_words, {"relation": "at least", "num_words": 5}) is None
    assert "unknown verifier id" in attachment_problem("ifeval:no_such_thing", {})
    assert "unexpected keyword argument 'words'" in attachment_problem(number_words, {"words": 5})
    # a missing argument or a value the checker cannot use would be drawn at random
    assert "needs the argument 'num_words'" in attachment_problem(number_words, {"relation": "at least"})
    assert "drawn at random" in attachment_problem("ifeval:keywords:letter_frequency",
                                                   {"letter": "!", "let_relation": "at least", "let_frequency": 2})
    assert attachment_problem(number_words, {"relation": "about", "num_words": 5})


def test_every_ifeval_instruction_has_a_rule_a_description_and_a_catalogue_entry():
    from rubrics2tokens.verifiers.ifeval import register_ifeval_verifiers

    ifeval_ids = {verifier for verifier in register_ifeval_verifiers() if verifier.startswith("ifeval:")}
    assert set(RULES) == set(DESCRIPTIONS) == set(CATALOGUE) == ifeval_ids


def test_the_language_table_is_the_checkers_own():
    from rubrics2tokens.verifiers.ifeval import ensure_nltk_data

    ensure_nltk_data()  # if-verifiable looks for its NLTK data on import
    from if_verifiable.ifeval.instructions_util import LANGUAGE_CODES

    assert {code: name for code, name in LANGUAGE_CODES.items() if code != "en"} == {
        code: name for name, code in LANGUAGES.items() if name not in ("Bangla", "Farsi")}


REPLY = '{"rubrics": [{"description": "Rhymes.", "weight": 2, "verifier": null}, ' \
        '{"description": "No commas.", "weight": 5, "verifier": "ifeval:punctuation:no_comma", "arguments": {}}]}'


def test_a_readable_reply_may_sit_in_a_fence_or_after_prose():
    for reply in (REPLY, f"```json\n{REPLY}\n```", f"Here you go:\n{REPLY}\nHope it helps."):
        read = read_reply(reply, most_items=2)
        assert [(rubric.description, rubric.weight, rubric.verifier) for rubric in read.rubrics] == [
            ("Rhymes.", 2.0, None), ("No commas.", 5.0, "ifeval:punctuation:no_comma")]
        assert read.rejected == []


@pytest.mark.parametrize("reply, problem", [
    (None, "no reply"),
    ("Be helpful and concise.", "no JSON object"),
    ('{"rubrics": [{"description": "x", "weight": 1}', "invalid JSON"),
    ('{"items": []}', 'no "rubrics" list'),
    ('{"rubrics": []}', "0 rubric items"),
    (REPLY, "2 rubric items, asked for 1 to 1"),
    ('{"rubrics": [{"description": "x"}]}', "no weight"),
    ('{"rubrics": [{"description": "x", "weight": true}]}', "no weight"),
    ('{"rubrics": [{"description": "x", "weight": "3"}]}', "no weight"),
    ('{"rubrics": [{"description": " ", "weight": 1}]}', "no description"),
    ('{"rubrics": [{"description": "x", "weight": 1, "verifier": 7}]}', "a verifier is an id string"),
])
def test_an_unreadable_reply_is_never_repaired(reply, problem):
    most = 1 if reply == REPLY else 5
    with pytest.raises(UnreadableReply, match=problem):
        read_reply(reply, most_items=most)


def test_a_wrong_attachment_sends_its_rubric_to_the_judge_and_is_reported():
    reply = ('{"rubrics": [{"description": "About 300 words.", "weight": 2, '
             '"verifier": "ifeval:length_constraints:number_words", '
             '"arguments": {"relation": "about", "num_words": 300}}]}')
    read = read_reply(reply, most_items=3)
    assert [(rubric.verifier, rubric.kwargs) for rubric in read.rubrics] == [(None, {})]
    assert read.rejected[0]["verifier"] == "ifeval:length_constraints:number_words"
    assert "about" in read.rejected[0]["problem"]


def test_the_generator_is_told_the_prompt_and_the_rubrics_already_extracted():
    rubrics = extract_rubrics("Write a poem without commas.")
    messages = build_messages([{"role": "user", "content": "Write a poem without commas."}], rubrics, 4)
    assert "ifeval:startend:end_checker" in messages[0]["content"]  # the catalogue
    assert "<prompt>\nWrite a poem without commas.\n</prompt>" in messages[1]["content"]
    assert "- The response contains no commas." in messages[1]["content"]
    assert "Write 4 rubric items" in messages[1]["content"]
