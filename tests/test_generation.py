"""The static rollout backend: same outputs as transformers' generate, same sampling distribution."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
from transformers.generation.logits_process import (LogitsProcessorList, MinPLogitsWarper,
                                                    RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                                                    TopKLogitsWarper, TopPLogitsWarper)

from rubrics2tokens.generation import SamplingParams, StaticCacheDecoder, next_tokens, process_logits
from rubrics2tokens.generation.packed_linear import can_pack, packed_linears
from rubrics2tokens.generation.rollout import ROLLOUT_DTYPES, Sampler, resolve_rollout_dtype

DTYPES = [torch.float32, torch.bfloat16]  # every precision `rollout_dtype` offers

PARAMS = [
    SamplingParams(temperature=0.7, top_k=20, top_p=0.8),  # the paper's evaluation setting
    SamplingParams(temperature=0.99, top_k=100, top_p=0.99),  # the paper's rollout setting
    SamplingParams(temperature=1.3, min_p=0.05),
    SamplingParams(temperature=1.0, top_p=0.5, repetition_penalty=1.3),
    SamplingParams(),
]


def transformers_processors(params: SamplingParams) -> LogitsProcessorList:
    """The processors transformers' generate builds for these settings, in its order."""
    processors = LogitsProcessorList()
    if params.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if params.temperature != 1.0:
        processors.append(TemperatureLogitsWarper(params.temperature))
    if params.top_k:
        processors.append(TopKLogitsWarper(params.top_k))
    if params.top_p < 1.0:
        processors.append(TopPLogitsWarper(params.top_p))
    if params.min_p is not None:
        processors.append(MinPLogitsWarper(params.min_p))
    return processors


@pytest.mark.parametrize("params", PARAMS)
def test_filtered_scores_equal_transformers_processors(params):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 300, generator=generator) * 3
    history = torch.randint(0, 300, (4, 12), generator=generator)
    seen = torch.zeros(4, 300, dtype=torch.bool).scatter_(1, history, True)
    ours = process_logits(logits, params, seen)
    theirs = transformers_processors(params)(history, logits.clone())
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
    torch.testing.assert_close(ours[~torch.isinf(ours)], theirs[~torch.isinf(theirs)])


@pytest.mark.parametrize("params", PARAMS[:3])
def test_sampled_token_frequencies_match_the_filtered_distribution(params):
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 50, generator=generator) * 2
    expected = transformers_processors(params)(torch.zeros(1, 0, dtype=torch.long), logits.clone()).softmax(-1)[0]
    draws = 40_000
    tokens = next_tokens(logits.expand(draws, -1), params, generator=torch.Generator().manual_seed(2))
    observed = torch.bincount(tokens, minlength=50).float() / draws
    assert torch.all(observed[expected == 0] == 0), "a filtered-out token was sampled"
    support = expected > 0
    chi_square = (draws * (observed[support] - expected[support]) ** 2 / expected[support]).sum()
    degrees = int(support.sum()) - 1
    assert chi_square < degrees + 5 * (2 * degrees) ** 0.5 + 10, f"chi2 {chi_square:.1f} with {degrees} dof"


def test_top_k_keeps_every_token_tied_with_the_kth_as_transformers_does():
    """Sampling looks only at the top-k survivors: three tokens tied at the 2nd best score must all stay in."""
    logits = torch.full((1, 40), -5.0)
    logits[0, [7, 11, 23, 31]] = torch.tensor([2.0, 1.0, 1.0, 1.0])
    params = SamplingParams(top_k=2)
    expected = transformers_processors(params)(torch.zeros(1, 0, dtype=torch.long), logits.clone()).softmax(-1)[0]
    draws = 20_000
    tokens = next_tokens(logits.expand(draws, -1), params, generator=torch.Generator().manual_seed(3))
    observed = torch.bincount(tokens, minlength=40).float() / draws
    assert set(observed.nonzero()[:, 0].tolist()) == {7, 11, 23, 31}
    torch.testing.assert_close(observed, expected, atol=0.015, rtol=0)


@pytest.fixture(scope="module", params=DTYPES, ids=str)
def tiny(tiny_model_dir, request):
    """The tiny policy in each rollout precision."""
    return (AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=request.param).eval(),
            AutoTokenizer.from_pretrained(tiny_model_dir))


def _left_padded(prompts, pad):
    width = max(map(len, prompts))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    return ids, (ids != pad).long() if pad not in sum(prompts, []) else None


def test_greedy_outputs_equal_transformers_generate_with_padding_and_eos(tiny):
    model, tokenizer = tiny
    prompts = [tokenizer(text)["input_ids"] for text in ["the river", "write a short story about the blue sea",
                                                          "*", "Hello, World! keyword keyword"]]
    pad = tokenizer.pad_token_id
    width = max(map(len, prompts))
    input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    # pick an EOS the greedy continuation of the first prompt reaches after a few tokens, so stopping is tested
    probe = model.generate(input_ids=input_ids, attention_mask=attention, max_new_tokens=12, do_sample=False,
                           pad_token_id=pad)[:, width:]
    eos = int(probe[0, 3])
    reference = model.generate(input_ids=input_ids, attention_mask=attention, max_new_tokens=12, do_sample=False,
                               pad_token_id=pad, eos_token_id=eos)[:, width:].tolist()
    ours = StaticCacheDecoder(model, pad, [eos]).generate(prompts, 12, SamplingParams(do_sample=False))
    for row, completion in zip(reference, ours):
        expected = row[: row.index(eos) + 1] if eos in row else row
        assert completion == expected
    assert ours[0][-1] == eos and len(ours[0]) <= 4


def test_batches_give_the_same_greedy_result_as_one_pass(tiny):
    model, tokenizer = tiny
    prompts = [tokenizer(f"story {i} about the river")["input_ids"][: 3 + i] for i in range(5)]
    one_pass = StaticCacheDecoder(model, tokenizer.pad_token_id, [tokenizer.eos_token_id])
    chunked = StaticCacheDecoder(model, tokenizer.pad_token_id, [tokenizer.eos_token_id], batch_size=2)
    greedy = SamplingParams(do_sample=False)
    assert one_pass.generate(prompts, 8, greedy) == chunked.generate(prompts, 8, greedy)


def test_a_finished_slot_takes_the_next_prompt_and_each_answer_is_its_own(tiny_model_dir):
    """Continuous batching: 7 prompts through 2 slots, an EOS that ends some answers after a few tokens (so slots
    are refilled mid-decode, beside a slot still decoding), the repetition penalty's per-slot history reset at
    each refill. Each answer must equal transformers' generate of that prompt alone, and `on_finished` must
    report each prompt once, with its own answer."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = ["the river", "write a short story about the blue sea", "*", "Hello, World! keyword keyword",
             "list three colours", "a", "the quick brown fox jumps over the lazy dog twice"]
    prompts = [tokenizer(text)["input_ids"] for text in texts]
    pad, settings = tokenizer.pad_token_id, dict(max_new_tokens=10, do_sample=False, repetition_penalty=1.3)
    alone = [model.generate(torch.tensor([p]), pad_token_id=pad, **settings)[0, len(p):].tolist() for p in prompts]
    # the token found in most answers ends them at different points; the others run to the limit
    eos = max(sorted(set(sum(alone, []))), key=lambda token: sum(token in row for row in alone))
    reference = [row[: row.index(eos) + 1] if eos in row else row for row in alone]
    assert sum(len(row) < 10 for row in reference) >= 2, "the EOS must end several answers early"
    reported = {}
    decoder = StaticCacheDecoder(model, pad, [eos], batch_size=2)
    decoded = decoder.decode(prompts, 10, SamplingParams(do_sample=False, repetition_penalty=1.3),
                             on_finished=lambda index, ids: reported.setdefault(index, ids))
    assert decoded.completion_ids == reference
    assert reported == dict(enumerate(reference))
    assert [len(row) for row in decoded.logprobs] == [len(row) for row in reference]


def test_first_sampled_token_follows_the_model_distribution(tiny):
    """Decoder draws vs the exact next-token distribution of the model after the same filters."""
    model, tokenizer = tiny
    prompt = tokenizer("write a short story")["input_ids"]
    params = SamplingParams(temperature=0.8, top_k=40, top_p=0.9)
    with torch.no_grad():
        logits = model(torch.tensor([prompt])).logits[:, -1]
    expected = transformers_processors(params)(torch.tensor([prompt]), logits).softmax(-1)[0]
    draws = 4000
    decoder = StaticCacheDecoder(model, tokenizer.pad_token_id, [tokenizer.eos_token_id])
    first = [c[0] for c in decoder.generate([prompt] * draws, 1, params, torch.Generator().manual_seed(3))]
    observed = torch.bincount(torch.tensor(first), minlength=len(expected)).float() / draws
    assert torch.all(observed[expected == 0] == 0)
    assert (observed - expected).abs().sum() < 0.12  # total variation well inside sampling noise at 4000 draws


def test_generation_config_of_trl_is_read_faithfully():
    config = GenerationConfig(do_sample=True, temperature=0.99, top_p=0.99, top_k=100, min_p=None,
                              repetition_penalty=1.0)
    assert SamplingParams.from_generation_config(config) == SamplingParams(temperature=0.99, top_k=100, top_p=0.99)


def test_logprobs_are_the_temperature_scaled_log_softmax_of_a_full_forward(tiny):
    """What the rollout returns to TRL: log p(token) at temperature T, unfiltered, as a plain forward gives."""
    model, tokenizer = tiny
    prompts = [tokenizer(text)["input_ids"] for text in ["the river", "write a short story about the blue sea"]]
    params = SamplingParams(temperature=0.7, top_k=20)
    decoded = StaticCacheDecoder(model, tokenizer.pad_token_id, []).decode(prompts, 6, params,
                                                                           torch.Generator().manual_seed(0))
    for prompt, completion, logprobs in zip(prompts, decoded.completion_ids, decoded.logprobs):
        assert len(completion) == len(logprobs) == 6
        with torch.no_grad():
            logits = model(torch.tensor([prompt + completion])).logits[0, len(prompt) - 1:-1].float()
        expected = (logits / 0.7).log_softmax(-1).gather(-1, torch.tensor(completion)[:, None])[:, 0]
        tolerance = 1e-4 if model.dtype == torch.float32 else 0.1  # bf16: the cached and uncached paths round apart
        torch.testing.assert_close(torch.tensor(logprobs), expected, atol=tolerance, rtol=0)


def test_rollout_dtype_choices():
    assert resolve_rollout_dtype("float32", torch.bfloat16, torch.device("cpu")) == torch.float32
    assert resolve_rollout_dtype("bfloat16", torch.float32, torch.device("cpu")) == torch.bfloat16
    # a device with no native bf16 arithmetic keeps the policy's dtype under 'auto'
    assert resolve_rollout_dtype("auto", torch.float32, torch.device("meta")) == torch.float32
    assert set(ROLLOUT_DTYPES) == {"auto", "float32", "bfloat16"}
    with pytest.raises(ValueError, match="rollout_dtype"):
        resolve_rollout_dtype("float16", torch.float32, torch.device("cpu"))


def test_low_precision_sampler_follows_the_policy_weights(tiny_model_dir):
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    sampler = Sampler(torch.bfloat16)
    with sampler(policy) as first:
        assert first is not policy and next(first.parameters()).dtype == torch.bfloat16
    with torch.no_grad():
        for parameter in policy.parameters():
            parameter.add_(0.5)  # an optimizer step
    with sampler(policy) as refreshed:
        assert refreshed is first  # the copy is reused, its weights refreshed
        for ours, theirs in zip(refreshed.parameters(), policy.parameters(), strict=True):
            torch.testing.assert_close(ours.float(), theirs, atol=theirs.abs().max().item() / 100, rtol=0)


def test_sampler_runs_the_model_own_forward_not_the_autocast_wrapper(tiny_model_dir):
    """Mixed-precision training wraps the policy's forward in autocast (as accelerate does); the
    float32 sampler must compute in float32, and the wrapper must be back afterwards."""
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        exact = policy(ids).logits
    policy.forward = torch.autocast("cpu", dtype=torch.bfloat16)(policy.forward)  # accelerate's wrapping
    with torch.no_grad():
        assert not torch.equal(policy(ids).logits.float(), exact)  # the wrapper changes the arithmetic
    with torch.no_grad(), Sampler(torch.float32)(policy) as sampler:
        assert sampler is policy
        torch.testing.assert_close(sampler(ids).logits, exact, atol=0, rtol=0)
    assert "forward" in vars(policy)  # the trainer's wrapper is restored
    with Sampler(torch.bfloat16)(policy) as copy:
        assert "forward" not in vars(copy)


def test_packed_linears_compute_what_the_layers_compute_and_are_removed_after(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).eval()
    input_ids = torch.tensor([[5, 9, 14, 20, 33], [7, 7, 8, 40, 2]])
    with torch.no_grad():
        plain = model(input_ids=input_ids).logits.float()
        with packed_linears(model, rows=2):
            # routed through the packed weight where oneDNN computes bf16 (this project's CPUs), else untouched
            assert ("forward" in vars(model.lm_head)) == can_pack(model)
            packed = model(input_ids=input_ids).logits.float()
    assert not any("forward" in vars(module) for module in model.modules() if isinstance(module, torch.nn.Linear))
    assert torch.allclose(packed, plain, atol=0.05)
    assert not can_pack(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32))
