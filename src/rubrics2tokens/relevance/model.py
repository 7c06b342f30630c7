"""`RelevanceModel`: the paper's Token-Level Relevance Discriminator.

Any Hugging Face backbone (encoder or decoder) with a one-logit token-classification head reads
(rubric, response) and gives every response token a relevance w = sigmoid(logit) in [0, 1].

One input layout serves training and RL time alike (`encode_pair`):

    special tokens around:  template(rubric[, verdict]) ids  +  response ids (one window of them)

Two templates are shipped: the paper's (`DEFAULT_TEMPLATE`: rubric and response only) and a
verdict-conditioned one (`VERDICT_TEMPLATE`, method.md §5): at RL time the verdict is known before
relevance runs, and blame (fail) and credit (pass) flag different tokens, so the model may read it.

The response is tokenized on its own (so its tokens do not depend on the rubric and are shared by
all rubrics of a response); responses longer than the context are cut into overlapping windows and
a token's relevance is the mean over the windows that contain it. A checkpoint folder holds the
weights, the tokenizer and ``relevance_config.json`` (template, window settings) together.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer, PreTrainedTokenizerBase

CONFIG_FILE = "relevance_config.json"
DEFAULT_TEMPLATE = "Rubric: {rubric}\nResponse:\n"
VERDICT_TEMPLATE = "Rubric: {rubric}\nVerdict: {verdict}\nResponse:\n"
VERDICT_WORDS = {True: "PASS", False: "FAIL"}
ATTENTIONS = ("backbone", "bidirectional")  # `RelevanceModelConfig.attention`


def check_attention(attention: str) -> None:
    if attention not in ATTENTIONS:
        raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}")


@dataclass
class RelevanceModelConfig:
    template: str = DEFAULT_TEMPLATE
    max_length: int = 512
    """Longest input the backbone takes (template and special tokens included)."""
    window_overlap: float = 0.5
    """Fraction of a window shared with the next one when a response needs several."""
    threshold: float = 0.5
    """Relevance above which a token counts as relevant (metrics, heatmaps)."""
    attention: str = "backbone"
    """``backbone``: the backbone's own attention (causal for a decoder: a token sees only what precedes it);
    ``bidirectional``: every token of an input attends to every other, so a decoder reads the whole response
    before it scores a token (rubrics that count bullets or paragraphs decide every token from the total)."""

    def __post_init__(self):
        check_attention(self.attention)

    @property
    def reads_verdict(self) -> bool:
        """Whether the template holds ``{verdict}`` (the verdict-conditioned layout)."""
        return "{verdict}" in self.template


@dataclass
class EncodedPair:
    """One model input: ``input_ids`` (L,) and where the response window sits in it."""

    input_ids: list[int]
    response_start: int  # index in input_ids of the window's first response token
    window: slice  # which response tokens the window holds


class RelevanceModel:
    """A token classifier with its tokenizer and input template.

    Args:
        model: an ``AutoModelForTokenClassification`` with ``num_labels=1``.
        tokenizer: its fast tokenizer (character offsets are needed).
        config: template and window settings.
    """

    def __init__(self, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                 config: RelevanceModelConfig | None = None):
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("RelevanceModel needs a fast tokenizer (character offsets)")
        self.model = model
        self.tokenizer = tokenizer
        self.config = config or RelevanceModelConfig()
        positions = getattr(model.config, "max_position_embeddings", None) or self.config.max_length
        self.config.max_length = min(self.config.max_length, positions)
        self._head, self._tail = _special_tokens_around(tokenizer)

    # ---------------------------------------------------------------- loading and saving

    @classmethod
    def from_backbone(cls, name_or_path: str, config: RelevanceModelConfig | None = None) -> "RelevanceModel":
        """A fresh one-logit head on a pretrained backbone (encoder or decoder)."""
        from rubrics2tokens.models.loading import load_tokenizer, resolve_model_path

        path = resolve_model_path(name_or_path)
        tokenizer = load_tokenizer(path) if _is_causal_lm(path) else AutoTokenizer.from_pretrained(path)
        model = AutoModelForTokenClassification.from_pretrained(path, num_labels=1)
        model.config.pad_token_id = tokenizer.pad_token_id
        return cls(model, tokenizer, config)

    @classmethod
    def load(cls, directory: str | Path, dtype: torch.dtype | None = None) -> "RelevanceModel":
        directory = Path(directory)
        config_path = directory / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(f"{directory} is not a relevance-model checkpoint (no {CONFIG_FILE})")
        try:  # an older file has no attention: 'backbone', what it was trained with
            config = RelevanceModelConfig(**json.loads(config_path.read_text(encoding="utf-8")))
        except (TypeError, ValueError) as error:  # a misspelt or unknown key, a value out of range
            raise ValueError(f"{config_path}: {error}") from None
        tokenizer = AutoTokenizer.from_pretrained(directory)
        with _loaded_whole():
            model = AutoModelForTokenClassification.from_pretrained(directory, num_labels=1, dtype=dtype)
        return cls(model, tokenizer, config)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        (directory / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2) + "\n", encoding="utf-8")
        return directory

    def to_inference(self) -> "RelevanceModel":
        """Eval mode, on the GPU in bf16 when one is visible (the RL-time setting), else CPU float32."""
        if torch.cuda.is_available():
            self.model.to("cuda", dtype=torch.bfloat16)
        self.model.eval()
        return self

    # ---------------------------------------------------------------- the input layout

    def tokenize_response(self, response: str) -> tuple[list[int], list[tuple[int, int]]]:
        """The response's model token ids and their character ranges in ``response``."""
        encoded = self.tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)
        return encoded["input_ids"], [tuple(span) for span in encoded["offset_mapping"]]

    def window_length(self, prefix_ids: Sequence[int]) -> int:
        length = self.config.max_length - len(self._head) - len(self._tail) - len(prefix_ids)
        if length < 8:
            raise ValueError(f"the rubric template takes {len(prefix_ids)} of {self.config.max_length} tokens; "
                             "shorten the rubric or use a backbone with a longer context")
        return length

    def encode_pair(self, rubric: str, response_ids: Sequence[int], verdict: bool | None = None) -> list[EncodedPair]:
        """The model inputs of one (rubric, response): one per window of response tokens.

        ``verdict`` (pass True, fail False) is required by a verdict-conditioned template and ignored otherwise.
        """
        if self.config.reads_verdict and verdict is None:
            raise ValueError("this relevance model reads the verdict (its template has {verdict}); pass it")
        prompt = self.config.template.format(rubric=rubric, verdict=VERDICT_WORDS.get(verdict, ""))
        prefix_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        length = self.window_length(prefix_ids)
        stride = max(1, int(length * (1 - self.config.window_overlap)))
        starts = list(range(0, max(len(response_ids) - length, 0) + 1, stride))
        if starts[-1] + length < len(response_ids):
            starts.append(len(response_ids) - length)
        pairs = []
        for start in starts:
            window = slice(start, min(start + length, len(response_ids)))
            ids = [*self._head, *prefix_ids, *response_ids[window], *self._tail]
            pairs.append(EncodedPair(ids, len(self._head) + len(prefix_ids), window))
        return pairs

    # ---------------------------------------------------------------- inference

    @torch.no_grad()
    def predict(self, requests: Sequence[tuple], batch_size: int = 64) -> list[torch.Tensor]:
        """Relevance for many responses at once: each request is (K rubric texts, N response token ids)
        or (K rubric texts, N ids, K verdicts) and gets a ``(K, N)`` tensor. All windows of all pairs are
        sorted by length and run in batches, so little compute goes to padding."""
        requests = [(request[0], request[1], request[2] if len(request) > 2 else [None] * len(request[0]))
                    for request in requests]
        encoded = [(r, k, pair) for r, (rubrics, ids, verdicts) in enumerate(requests)
                   for k, (rubric, verdict) in enumerate(zip(rubrics, verdicts, strict=True))
                   for pair in self.encode_pair(rubric, ids, verdict)]
        encoded.sort(key=lambda item: len(item[2].input_ids))
        totals = [torch.zeros(len(rubrics), len(ids)) for rubrics, ids, _ in requests]
        counts = [torch.zeros(len(rubrics), len(ids)) for rubrics, ids, _ in requests]
        for chunk_start in range(0, len(encoded), batch_size):
            chunk = encoded[chunk_start:chunk_start + batch_size]
            probabilities = self.forward_probabilities([pair.input_ids for _, _, pair in chunk])
            for row, (r, k, pair) in enumerate(chunk):
                width = pair.window.stop - pair.window.start
                totals[r][k, pair.window] += probabilities[row, pair.response_start:pair.response_start + width]
                counts[r][k, pair.window] += 1
        return [total / count.clamp(min=1) for total, count in zip(totals, counts)]

    def forward_probabilities(self, inputs: Sequence[Sequence[int]]) -> torch.Tensor:
        """Right-padded batch forward: ``(len(inputs), L_max)`` sigmoid probabilities (float32, CPU)."""
        device = next(self.model.parameters()).device
        length = max(map(len, inputs))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(inputs), length), pad, dtype=torch.long)
        attention = torch.zeros((len(inputs), length), dtype=torch.long)
        for row, ids in enumerate(inputs):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
        return torch.sigmoid(self.logits(input_ids.to(device), attention.to(device)).float()).cpu()

    def logits(self, input_ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` token logits of a right-padded batch (``attention``: 1 on real tokens), with the attention
        the config names: a bidirectional model gets a 4D mask, which transformers uses as given."""
        if self.config.attention == "bidirectional":
            dtype = next(self.model.parameters()).dtype
            keys = attention[:, None, None, :].bool().expand(-1, 1, attention.shape[1], -1)
            attention = torch.zeros(keys.shape, dtype=dtype, device=keys.device).masked_fill(
                ~keys, torch.finfo(dtype).min)
        return self.model(input_ids=input_ids, attention_mask=attention).logits[..., 0]


@contextlib.contextmanager
def _loaded_whole() -> Iterator[None]:
    """Load outside DeepSpeed ZeRO-3. Under a ZeRO-3 run (its config registered by TrainingArguments),
    `from_pretrained` partitions the weights over the processes (zero.Init), which only a DeepSpeed engine can
    run ("'weight' must be 2-D" at the first forward); the relevance model runs on its own in every process."""
    from transformers.integrations import deepspeed

    registered = deepspeed._hf_deepspeed_config_weak_ref  # transformers has no public getter for it
    deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        deepspeed._hf_deepspeed_config_weak_ref = registered


def _special_tokens_around(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after one sequence ([CLS] ... [SEP], <bos> ...)."""
    probe = "relevance"
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return full[:start], full[start + len(plain):]
    raise ValueError(f"cannot find how {type(tokenizer).__name__} adds special tokens")


def _is_causal_lm(path: str) -> bool:
    from transformers import AutoConfig

    architectures = getattr(AutoConfig.from_pretrained(path), "architectures", None) or []
    return any(name.endswith("ForCausalLM") for name in architectures)


def _memberships(token_spans: Sequence[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (token, character) membership as two aligned index tensors: token index, character index."""
    spans = torch.tensor(list(token_spans), dtype=torch.long).reshape(-1, 2)
    sizes = (spans[:, 1] - spans[:, 0]).clamp(min=0)
    token_of_char = torch.repeat_interleave(torch.arange(len(spans)), sizes)
    offsets = torch.arange(int(sizes.sum())) - torch.repeat_interleave(sizes.cumsum(0) - sizes, sizes)
    return token_of_char, spans[token_of_char, 0] + offsets


def characters_to_tokens(char_weights: torch.Tensor, token_spans: Sequence[tuple[int, int]]) -> torch.Tensor:
    """``(K, L)`` character weights -> ``(K, T)`` token weights: a token's weight is the max over its
    characters; a token without characters (a special token) gets 0."""
    token_of_char, char_index = _memberships(token_spans)
    weights = torch.zeros(char_weights.shape[0], len(token_spans))
    if len(token_of_char):
        weights.scatter_reduce_(1, token_of_char.expand(len(weights), -1), char_weights[:, char_index],
                                reduce="amax", include_self=True)
    return weights


def tokens_to_characters(token_weights: torch.Tensor, token_spans: Sequence[tuple[int, int]], length: int
                         ) -> torch.Tensor:
    """``(K, M)`` model-token weights -> ``(K, length)`` character weights (max over the tokens that
    cover a character). Characters no token covers (whitespace an encoder drops) take the larger
    weight of the nearest covered characters on either side, so a whitespace-only policy token gets
    the relevance of the words around it rather than a 0 that would stand out."""
    rows = token_weights.shape[0]
    token_of_char, char_index = _memberships(token_spans)
    if length == 0 or len(token_of_char) == 0:
        return torch.zeros(rows, length)
    chars = torch.full((rows, length), -1.0)
    chars.scatter_reduce_(1, char_index.expand(rows, -1), token_weights[:, token_of_char], reduce="amax")
    covered = chars[0] >= 0
    positions = torch.arange(length)
    previous = torch.where(covered, positions, -1).cummax(0).values
    following = torch.where(covered, positions, length).flip(0).cummin(0).values.flip(0)
    from_previous = chars[:, previous.clamp(min=0)].where(previous >= 0, -1.0)
    from_following = chars[:, following.clamp(max=length - 1)].where(following < length, -1.0)
    return chars.where(covered, torch.maximum(from_previous, from_following)).clamp(min=0)
