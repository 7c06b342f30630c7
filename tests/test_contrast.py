"""`contrast` relevance: the policy's log-probabilities with and without each rubric."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rubrics2tokens.data.schema import Rubric
from rubrics2tokens.data.synthetic import FAMILIES
from rubrics2tokens.models import DEFAULT_POLICY, load_policy
from rubrics2tokens.relevance.contrast import ContrastRelevance, without_rubric
from rubrics2tokens.relevance.sources import RelevanceInputs
from rubrics2tokens.scoring.router import RoutingScorer

KEYWORD = Rubric('The response includes the word "zebra" at least once.', "testbed:include_keyword",
                 {"keyword": "zebra", "min_count": 1})
COMMAS = Rubric("The response contains no commas.", "testbed:no_commas")
TASK = "Write one sentence about an animal."


def prompt_for(rubrics):
    sentences = [FAMILIES[r.verifier.removeprefix("testbed:")].instruction(r.kwargs) for r in rubrics]
    return [{"role": "user", "content": " ".join([TASK, *sentences])}]


def batch(tokenizer, prompts, responses, rubrics, cut_last=False):
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for text in responses]
    length = max(map(len, ids)) + 3  # trailing padding on every row
    completion_ids = torch.full((len(ids), length), tokenizer.pad_token_id)
    completion_mask = torch.zeros(len(ids), length, dtype=torch.long)
    for i, row in enumerate(ids):
        completion_ids[i, :len(row)] = torch.tensor(row)
        completion_mask[i, :len(row)] = 1
    scored = RoutingScorer(mode="verifiers").score([p[-1]["content"] for p in prompts], responses,
                                                   [rubrics] * len(responses))
    return RelevanceInputs(completion_ids, completion_mask, scored, prompts), ids


def test_the_testbed_sentence_is_removed_and_other_rubrics_are_stated():
    messages = prompt_for([KEYWORD, COMMAS])
    with_rubric, without = without_rubric(messages, KEYWORD)
    assert with_rubric == messages
    assert "zebra" not in without[0]["content"] and "commas" in without[0]["content"]
    judged = Rubric("The tone is friendly.", None)
    with_rubric, without = without_rubric(messages, judged)
    assert without == messages and with_rubric[0]["content"].endswith("\n\nThe tone is friendly.")


def test_weights_lie_in_unit_range_with_padding_zero_and_unknown_rows_nan(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rubrics = [KEYWORD, COMMAS, Rubric("judge only", None)]
    inputs, ids = batch(tokenizer, [prompt_for(rubrics[:2])] * 2, ["the zebra runs", "a blue river, ok"], rubrics)
    weights = ContrastRelevance(model, tokenizer, batch_size=3)(inputs)
    assert weights.shape == inputs.shape
    assert torch.isnan(weights[:, 2]).all(), "a rubric without a known verdict has unknown relevance"
    known = weights[:, :2]
    assert (known >= 0).all() and (known <= 1).all()
    for i, row in enumerate(ids):
        assert (known[i, :, len(row):] == 0).all(), "padding gets 0"
    # batching does not change the result
    torch.testing.assert_close(ContrastRelevance(model, tokenizer, batch_size=1)(inputs), weights, equal_nan=True)


@pytest.mark.slow
def test_the_token_only_the_rubric_explains_gets_the_highest_weight():
    model, tokenizer = load_policy(DEFAULT_POLICY)
    rubrics = [KEYWORD, COMMAS]
    response = "The zebra runs across the open plain at sunset."
    inputs, ids = batch(tokenizer, [prompt_for(rubrics)], [response], rubrics)
    weights = ContrastRelevance(model, tokenizer)(inputs)
    row = weights[0, 0, :len(ids[0])]
    top = tokenizer.decode([ids[0][int(row.argmax())]])
    assert top.strip() == "zebra", (top, row.tolist())
    assert row.max() == 1.0 and (row > 0.5).sum() <= 2, "the keyword is flagged, the rest of the sentence is not"
