"""Token <-> character alignment and the relevance sources built on it."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from rubrics2tokens.data.schema import Rubric
from rubrics2tokens.relevance.alignment import (_byte_decoder, _prefix_spans, _streaming_spans, spans_to_token_mask,
                                                token_char_spans)
from rubrics2tokens.relevance.sources import (OracleRelevance, RandomRelevance, RelevanceInputs,
                                              ShuffledOracleRelevance, UniformRelevance, build_relevance_source)
from rubrics2tokens.scoring.router import RoutingScorer

TEXTS = [
    "plain ascii, with punctuation; and\nnew lines.",
    "Hello, wörld! café 日本語 🎉 unbelievably-long tokenization",
    "  leading spaces\n\n* bullet one\n*  bullet two\t\ttabs",
    "ümlaut-ßtraße naïve façade — “quotes” ½ ∑",
]


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def sentencepiece_style_tokenizer():
    """A Llama-2 style tokenizer: Metaspace pieces, byte fallback (<0xE6>...) outside its vocabulary."""
    words = ["▁hello", "▁world", "▁tokenization", "▁the", "▁bullet", "▁one", "▁and", "▁two", "▁ok"]
    vocab = {"<s>": 0, "</s>": 1, **{f"<0x{b:02X}>": 2 + b for b in range(256)}}
    merges = []
    for char in "▁abcdefghijklmnopqrstuvwxyz":
        vocab.setdefault(char, len(vocab))
    for word in words:  # merge each word left to right: ▁h, ▁he, ▁hel, ...
        for end in range(2, len(word) + 1):
            merges.append((word[: end - 1], word[end - 1]))
            vocab.setdefault(word[:end], len(vocab))
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=True))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tokenizer.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(" ", 1, 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="</s>", bos_token="<s>")


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def _assert_spans_cover(text: str, spans: list[tuple[int, int]]) -> None:
    """Spans are ordered, lie in the text, and together cover every character."""
    covered = set()
    for (start, end), (next_start, _) in zip(spans, spans[1:] + [(len(text), len(text))]):
        assert 0 <= start <= end <= len(text)
        assert start <= next_start
        covered.update(range(start, end))
    assert covered == set(range(len(text)))


@pytest.mark.parametrize("text", TEXTS)
def test_byte_level_spans_match_prefix_decoding_and_cover_the_text(tiny_tokenizer, text):
    ids = _ids(tiny_tokenizer, text)
    decoded, spans = token_char_spans(tiny_tokenizer, ids)
    assert decoded == text
    assert len(spans) == len(ids)
    _assert_spans_cover(text, spans)
    assert spans[-1][0] == spans[-1][1] == len(text)  # EOS: a special token has no characters
    streamed = _streaming_spans(tiny_tokenizer, ids, set(tiny_tokenizer.all_special_ids), text)
    for (start, end), (stream_start, stream_end) in zip(spans, streamed):  # the generic path is coarser at most
        assert stream_start <= start and end <= stream_end
    if text.isascii():
        assert streamed == spans
    exact = _prefix_spans(tiny_tokenizer, ids)
    for (start, end), (exact_start, exact_end) in zip(spans, exact):
        # a token holding part of a multi-byte character also overlaps that character, nothing else differs
        assert start <= exact_start or start == exact_end or exact_start == exact_end
        assert end >= exact_end


def test_a_character_split_over_byte_tokens_belongs_to_each_of_them(tiny_tokenizer):
    text = "x 🎉 y"
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    decoded, spans = token_char_spans(tiny_tokenizer, ids)
    emoji = decoded.index("🎉")
    holders = [j for j, (start, end) in enumerate(spans) if start <= emoji < end]
    assert len(holders) >= 2, "the tiny vocabulary has no token for the emoji, so its 4 bytes are split"
    assert holders == list(range(holders[0], holders[-1] + 1)), "the holders are consecutive tokens"


def test_bytes_that_form_no_character_keep_the_spans_after_them_in_place(tiny_tokenizer):
    """A sampled response can hold the first bytes of an emoji followed by a letter (seen in a study's held-out
    answer: "FREEM\ufffd\ufffd\ufffdTUCK bot"): the decoder writes U+FFFD for them, and every later token must still
    cover its own characters, not ones shifted by the difference in byte counts."""
    byte_token = {byte: char for char, byte in _byte_decoder().items()}
    emoji_start = tiny_tokenizer.convert_tokens_to_ids([byte_token[byte] for byte in "🎉".encode()[:2]])
    assert tiny_tokenizer.unk_token_id not in emoji_start, "the byte-level vocabulary has every byte"
    ids = (tiny_tokenizer("ok ", add_special_tokens=False)["input_ids"] + emoji_start  # 2 of the emoji's 4 bytes
           + tiny_tokenizer("TUCK bot so what", add_special_tokens=False)["input_ids"])
    text, spans = token_char_spans(tiny_tokenizer, ids)
    assert "\ufffd" in text and text.endswith("TUCK bot so what")
    _assert_spans_cover(text, spans)
    pieces = [text[start:end] for start, end in spans]
    assert "".join(pieces[-len(tiny_tokenizer("TUCK bot so what", add_special_tokens=False)["input_ids"]):]) \
        == "TUCK bot so what"


@pytest.mark.parametrize("text", ["hello world tokenization", "hello  wörld 日本 ok", "the bullet\none and two"])
def test_sentencepiece_style_spans_follow_the_decoded_text(sentencepiece_style_tokenizer, text):
    tokenizer = sentencepiece_style_tokenizer
    ids = _ids(tokenizer, text)
    decoded, spans = token_char_spans(tokenizer, ids)
    assert decoded == tokenizer.decode(ids, skip_special_tokens=True)
    assert spans == _streaming_spans(tokenizer, ids, set(tokenizer.all_special_ids), decoded), \
        "the streaming path (not the slow fallback) handles SentencePiece-style pieces"
    _assert_spans_cover(decoded, spans)
    for token_id, (start, end) in zip(ids, spans):
        piece = tokenizer.convert_ids_to_tokens(token_id)
        if piece.startswith("▁") and len(piece) > 1 and start > 0:  # a word piece with its leading space
            assert decoded[start] == " " and decoded[start + 1:end] == piece[1:]


def test_spans_to_token_mask_marks_every_token_overlapping_a_span():
    token_spans = [(0, 3), (3, 5), (5, 5), (5, 9)]  # the third is a special token
    mask = spans_to_token_mask([(4, 6)], token_spans, length=6)
    assert mask.tolist() == [0, 1, 0, 1, 0, 0]
    assert spans_to_token_mask([], token_spans, 6).sum() == 0


def _scored_inputs(tokenizer, responses: list[str], rubrics: list[Rubric]):
    ids = [_ids(tokenizer, text) for text in responses]
    length = max(map(len, ids))
    completion_ids = torch.full((len(ids), length), tokenizer.pad_token_id)
    completion_mask = torch.zeros(len(ids), length, dtype=torch.long)
    for i, row in enumerate(ids):
        completion_ids[i, : len(row)] = torch.tensor(row)
        completion_mask[i, : len(row)] = 1
    scored = RoutingScorer(mode="verifiers").score([""] * len(responses), responses, [rubrics] * len(responses))
    return RelevanceInputs(completion_ids, completion_mask, scored), ids


# a rubric that blames commas, one that credits (or, absent, blames the stop for) a keyword, one without spans
SPAN_RUBRICS = [Rubric("no commas", "testbed:no_commas"),
                Rubric("keyword river", "testbed:include_keyword", {"keyword": "river"}),
                Rubric("judge only", None)]


def test_oracle_relevance_flags_the_tokens_of_the_deciding_spans(tiny_tokenizer):
    responses = ["the river, the sea, the sky", "no punctuation here"]
    inputs, ids = _scored_inputs(tiny_tokenizer, responses, SPAN_RUBRICS)
    weights = OracleRelevance(tiny_tokenizer)(inputs)
    assert weights.shape == (2, 3, inputs.completion_ids.shape[1])

    text, token_spans = token_char_spans(tiny_tokenizer, ids[0])
    flagged = [text[a:b] for (a, b), w in zip(token_spans, weights[0, 0]) if w == 1]
    assert "".join(flagged).count(",") == 2 and all("," in piece for piece in flagged)
    flagged_keyword = "".join(text[a:b] for (a, b), w in zip(token_spans, weights[0, 1]) if w == 1)
    assert flagged_keyword.strip() == "river"
    assert torch.isnan(weights[:, 2]).all(), "a rubric without spans has unknown relevance"
    # a passing no-commas rubric is a global property: it credits no token (method.md §5)
    assert torch.all(weights[1, 0] == 0)
    # an absent keyword blames the stop: the EOS token when the response stopped on its own, nothing else
    eos = inputs.completion_ids[1] == tiny_tokenizer.eos_token_id
    assert eos.sum() == 1 and weights[1, 1][eos].tolist() == [1.0] and torch.all(weights[1, 1][~eos] == 0)


def test_oracle_blames_no_token_for_too_few_units_when_the_response_was_cut(tiny_tokenizer):
    rubrics = [Rubric("river twice", "testbed:include_keyword", {"keyword": "river", "min_count": 2})]
    inputs, ids = _scored_inputs(tiny_tokenizer, ["the river is wide"], rubrics)
    assert inputs.scored.stops.tolist() == [[True]]
    stopped = OracleRelevance(tiny_tokenizer)(inputs)
    assert stopped[0, 0, len(ids[0]) - 1] == 1 and stopped[0, 0].sum() == 1, "only the stop, never ' river'"
    cut = RelevanceInputs(inputs.completion_ids[:, :-1], inputs.completion_mask[:, :-1], inputs.scored)
    assert torch.all(OracleRelevance(tiny_tokenizer)(cut) == 0), "a response cut at the limit did not stop"


def test_shuffled_oracle_keeps_each_rows_flags_and_moves_them(tiny_tokenizer):
    responses = ["the river, the sea, the sky, the hills, the plain, the road", "no punctuation here"]
    inputs, _ = _scored_inputs(tiny_tokenizer, responses, SPAN_RUBRICS)
    oracle = OracleRelevance(tiny_tokenizer)(inputs)
    open_tokens = inputs.completion_mask.bool() & (inputs.completion_ids != tiny_tokenizer.eos_token_id)
    draws = [ShuffledOracleRelevance(tiny_tokenizer, seed=seed)(inputs) for seed in range(5)]
    torch.testing.assert_close(draws[0], ShuffledOracleRelevance(tiny_tokenizer, seed=0)(inputs), equal_nan=True)
    for shuffled in draws:
        assert torch.isnan(shuffled[:, 2]).all(), "unknown relevance stays unknown"
        for i in range(2):
            for k in range(2):
                assert shuffled[i, k][~open_tokens[i]].abs().sum() == 0, "nothing on padding or the stop"
                assert shuffled[i, k][open_tokens[i]].sort().values.tolist() == \
                    oracle[i, k][open_tokens[i]].sort().values.tolist(), "the row's flags, moved"
    assert oracle[1, 1][~open_tokens[1] & inputs.completion_mask[1].bool()].tolist() == [1.0], \
        "the oracle blames the stop of a response without the keyword; the shuffled source drops that flag"
    assert any(not torch.equal(shuffled[0, 0], oracle[0, 0]) for shuffled in draws), "the comma flags move"
    assert isinstance(build_relevance_source("shuffled", tiny_tokenizer, seed=3), ShuffledOracleRelevance)


def test_uniform_and_random_sources_have_the_batch_shape(tiny_tokenizer):
    inputs, _ = _scored_inputs(tiny_tokenizer, ["a b c", "d"], [Rubric("no commas", "testbed:no_commas")])
    assert torch.all(UniformRelevance()(inputs) == 1)
    first, second = RandomRelevance(seed=1)(inputs), RandomRelevance(seed=1)(inputs)
    assert first.shape == inputs.shape and torch.equal(first, second)
    assert 0 <= first.min() and first.max() <= 1
    assert build_relevance_source("none", tiny_tokenizer) is None
    with pytest.raises(ValueError, match="oracle"):
        build_relevance_source("spans", tiny_tokenizer)
