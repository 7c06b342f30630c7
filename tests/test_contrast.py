"""`contrast` relevance: the policy's log-probabilities with and without each rubric."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from rubrics2tokens.data.schema import Rubric
from rubrics2tokens.data.synthetic import FAMILIES
from rubrics2tokens.models import DEFAULT_POLICY, load_policy
from rubrics2tokens.relevance.contrast import DEFAULT_SCALE, ContrastRelevance, without_rubric
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


def test_a_pass_weighs_what_the_rubric_makes_likelier_and_a_fail_what_it_makes_less_likely(tiny_model_dir):
    """issue 20: credit for a pass, blame for a fail (method.md §5). Under a fail the tokens the rubric makes more
    likely are the attempts to comply; the ones it argues against are those it makes less likely."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    rubrics = [KEYWORD, COMMAS]
    inputs, ids = batch(tokenizer, [prompt_for(rubrics)], ["the zebra runs, ok"], rubrics)
    assert inputs.scored.verdicts[0].tolist() == [1.0, 0.0], "the keyword passes, no-commas fails"
    relevance = ContrastRelevance(model, tokenizer)
    weights, log_ratios = relevance(inputs)[0, :, :len(ids[0])], relevance.log_ratios(inputs)
    passed, failed = log_ratios[0, 0], log_ratios[0, 1]
    assert (failed > 0).any() and (failed < 0).any(), "the rubric moves tokens both ways, or the test shows nothing"
    assert torch.equal(weights[0] > 0, passed > 0)
    assert torch.equal(weights[1] > 0, failed < 0)
    blame = (-failed).clamp(min=0)
    torch.testing.assert_close(weights[1], blame / blame.max().clamp(min=DEFAULT_SCALE))


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


def _old_completion_logps(model, prompt, completion):
    """The formula before issue 20: log-softmax over the whole vocabulary at every position, then the taken token."""
    ids = torch.tensor([prompt + completion])
    logps = torch.log_softmax(model(input_ids=ids).logits.float()[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])
    return logps[0, len(prompt) - 1:, 0]


def _tiny_llama(tokenizer, vocab_size):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval()


class LargestVocabularyTensor(TorchDispatchMode):
    """Records the most elements of any tensor with a vocabulary-sized last dimension that an operation
    allocates (an output on its inputs' memory, such as the transposed output embedding, is not counted)."""

    def __init__(self, vocab_size):
        super().__init__()
        self.vocab_size, self.largest = vocab_size, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for tensor in tree_leaves(out):
            if (isinstance(tensor, torch.Tensor) and tensor.dim() and tensor.shape[-1] == self.vocab_size
                    and tensor.untyped_storage().data_ptr() not in inputs):
                self.largest = max(self.largest, tensor.numel())
        return out


RESPONSES = ["the zebra runs", "a blue river, ok", "keyword keyword"]


def test_contrast_memory_does_not_grow_with_the_vocabulary(tiny_model_dir):
    """issue 20 defect 8: contrast memory bounded. No (sequences, length, V) tensor: the vocabulary-wide values held
    at once stay within ``logits_at_once`` whatever V, so paper scale (V = 151k, 4k tokens) fits."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rubrics = [KEYWORD, COMMAS]
    inputs, _ = batch(tokenizer, [prompt_for(rubrics)] * 3, RESPONSES, rubrics)
    budget = 2 ** 16  # a single sequence keeps at most 12 x 4096 logits: two do not fit
    for vocab_size in (512, 4096):
        relevance = ContrastRelevance(_tiny_llama(tokenizer, vocab_size), tokenizer, batch_size=4)
        relevance.logits_at_once = budget
        with LargestVocabularyTensor(vocab_size) as recorder:
            weights = relevance(inputs)
        assert not torch.isnan(weights).any()
        assert 0 < recorder.largest <= budget, (vocab_size, recorder.largest)


def test_contrast_log_probabilities_equal_the_full_log_softmax(tiny_model_dir):
    """Guards the fix of issue 20 defect 8 (contrast memory bounded): the chunked log-probabilities of the taken
    tokens equal the former full-vocabulary log-softmax, however the sequences and positions are split."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    prompts = [tokenizer(text)["input_ids"] for text in ("write a short story", "the end of the story. café")]
    completions = [tokenizer(text)["input_ids"] for text in RESPONSES]
    sequences = [(prompt, completion) for prompt in prompts for completion in completions]
    expected = [_old_completion_logps(model, prompt, completion) for prompt, completion in sequences]
    for batch_size, logits_at_once in ((16, 2 ** 24), (4, 3 * len(tokenizer)), (1, 1)):
        relevance = ContrastRelevance(model, tokenizer, batch_size=batch_size)
        relevance.logits_at_once = logits_at_once
        for got, want in zip(relevance._completion_logps(sequences), expected, strict=True):
            torch.testing.assert_close(got, want)
