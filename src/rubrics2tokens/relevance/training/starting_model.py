"""The model a relevance training run starts from: a fresh one-logit head on a backbone, with a tokenizer
that keeps what rubrics read (line breaks, capitals)."""

from __future__ import annotations

import string

import torch
from tokenizers import Tokenizer, normalizers
from transformers import AddedToken, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from rubrics2tokens.relevance.model import RelevanceModel
from rubrics2tokens.relevance.training.config import CAPITAL_MARK, RelevanceTrainingConfig


def build_model(config: RelevanceTrainingConfig) -> RelevanceModel:
    """A fresh one-logit head on the backbone (seeded), in float32, its tokenizer adapted to what rubrics
    read (`adapt_tokenizer`); on the GPU when one is visible."""
    torch.manual_seed(config.seed)
    model = RelevanceModel.from_backbone(config.backbone, config.model_config())
    model.model.float()  # backbones stored in bf16 (the embedded SmolLM2) load as bf16: slow on CPU, lossy for AdamW
    tokenizer = adapt_tokenizer(model.tokenizer, line_breaks=config.visible_line_breaks, case=config.visible_case)
    if tokenizer is not model.tokenizer:
        model.model.resize_token_embeddings(len(tokenizer))
        model = RelevanceModel(model.model, tokenizer, model.config)
    if torch.cuda.is_available():
        model.model.to("cuda")
    return model


def adapt_tokenizer(tokenizer: PreTrainedTokenizerBase, line_breaks: bool, case: bool) -> PreTrainedTokenizerBase:
    """The tokenizer, or a copy that keeps what rubrics about lines, paragraphs and capitals depend on.

    BERT-style tokenizers drop whitespace and lowercase the text. With ``line_breaks``, "\\n" becomes a
    token of its own; with ``case``, every capital A-Z is preceded by a `CAPITAL_MARK` token (both
    point at the capital's character, so spans still map to tokens exactly). The copy is a plain fast
    tokenizer, which saves and loads its whole pipeline, so RL time reads responses the same way.
    Tokenizers that keep both (byte-level BPE: SmolLM2, Llama, Qwen) are returned unchanged.
    """
    drops_line_breaks = line_breaks and "\n" not in tokenizer.decode(tokenizer("a\nb", add_special_tokens=False)
                                                                     ["input_ids"])
    drops_case = case and tokenizer("A", add_special_tokens=False)["input_ids"] == \
        tokenizer("a", add_special_tokens=False)["input_ids"]
    if not (drops_line_breaks or drops_case):
        return tokenizer
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    if drops_case:
        marks = [normalizers.Replace(letter, CAPITAL_MARK + letter) for letter in string.ascii_uppercase]
        backend.normalizer = normalizers.Sequence([*marks, *([backend.normalizer] if backend.normalizer else [])])
    adapted = PreTrainedTokenizerFast(tokenizer_object=backend, **tokenizer.special_tokens_map)
    if drops_line_breaks:
        adapted.add_tokens([AddedToken("\n", normalized=False)])
    return adapted
