"""Where the token relevance w_{i,k,t} comes from (method.md §3, ablation sources).

A `RelevanceSource` returns ``(B, K, T)`` weights aligned to TRL's ``completion_ids``. A row
(i, k) that is all NaN means "no relevance known for this rubric on this response": the trainer
leaves that rubric out of the token-level term (its verdict still counts in the response reward).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rubrics2tokens.generation.stopping import ends_with_stop, stop_token_ids
from rubrics2tokens.relevance.alignment import spans_to_token_mask, token_char_spans
from rubrics2tokens.relevance.contrast import ContrastRelevance
from rubrics2tokens.relevance.model import RelevanceModel, characters_to_tokens, tokens_to_characters
from rubrics2tokens.scoring.scorer import ScoredBatch


@dataclass
class RelevanceInputs:
    """What one step hands to a relevance source (local rows only).

    completion_ids:  (B, T) policy token ids, right-padded.
    completion_mask: (B, T) 1 on generated tokens.
    scored:          the verdicts, spans and rubrics of the same rows (K rubric slots).
    prompts:         the rows' prompts as TRL holds them (chat messages or text); `contrast` needs them.
    """

    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    scored: ScoredBatch
    prompts: list | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        batch, length = self.completion_ids.shape
        return batch, self.scored.verdicts.shape[1], length


class RelevanceSource(Protocol):
    flags_stop: bool
    """Whether the source puts weight on the stop token when a verdict blames the stop (method.md §5); only
    then may that token carry token credit (`trainer.rtt_grpo.credit_mask`)."""

    def __call__(self, inputs: RelevanceInputs) -> torch.Tensor:
        """Return ``(B, K, T)`` weights in [0, 1] (NaN rows: unknown relevance)."""
        ...


class UniformRelevance:
    """w = 1 everywhere: the token term z-scores a constant row to 0, so RTT reduces to GRPO (a sanity check)."""

    flags_stop = False

    def __call__(self, inputs: RelevanceInputs) -> torch.Tensor:
        return torch.ones(inputs.shape, device=inputs.completion_ids.device)


class RandomRelevance:
    """w ~ U[0, 1], seeded: the ablation that shows what relevance without information does."""

    flags_stop = False

    def __init__(self, seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, inputs: RelevanceInputs) -> torch.Tensor:
        return torch.rand(inputs.shape, generator=self.generator).to(inputs.completion_ids.device)


class OracleRelevance:
    """w = 1 on the policy tokens that overlap the verifier's deciding character spans, else 0.

    Spans are character ranges in TRL's decoded completion; tokens are mapped to characters from
    their own ids (`token_char_spans`), so no re-tokenization drift. A verdict that flags the stop
    (`Verdict.stop`) also gets w = 1 on the response's EOS token, when the response has one (one cut
    at the length limit did not stop: nothing to blame). Rubrics whose verifier reports no spans
    (``None``) get a NaN row. ``stop_ids``: the ids that end a response (default: the tokenizer's EOS).
    """

    flags_stop = True

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stop_ids: Sequence[int] | None = None):
        self.tokenizer = tokenizer
        self.stop_ids = list(stop_ids) if stop_ids is not None else stop_token_ids(tokenizer)

    def __call__(self, inputs: RelevanceInputs) -> torch.Tensor:
        batch, width, length = inputs.shape
        weights = torch.full((batch, width, length), float("nan"))
        for i in range(batch):
            ids = inputs.completion_ids[i][inputs.completion_mask[i].bool()].tolist()
            _, token_spans = token_char_spans(self.tokenizer, ids)
            stopped = ends_with_stop(ids, self.stop_ids)
            for k, spans in enumerate(inputs.scored.spans[i]):
                if spans is not None:
                    weights[i, k] = spans_to_token_mask(spans, token_spans, length)
                    if inputs.scored.stops[i, k] and stopped:
                        weights[i, k, len(ids) - 1] = 1.0
        return weights.to(inputs.completion_ids.device)


class ShuffledOracleRelevance:
    """The oracle's flags on random tokens: the control for *where* the credit goes.

    Each (response, rubric) row keeps the oracle's weights on the response's tokens that can carry token credit
    (generated, not special), permuted among them with a seeded generator: the row keeps its flagged tokens'
    number and so its distribution under every partition (`intra_sample` amplifies a sparse row the same), only the
    places change; `random` (w ~ U[0, 1]) changes both. A flag the oracle put on the stop token is dropped, as the
    trainer drops it for every source but the oracle, so a row that blamed the stop alone flags nothing. Under
    ``stop_credit: false`` the trainer drops it for the oracle too, and the two sources then differ in places only.
    """

    flags_stop = False

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stop_ids: Sequence[int] | None = None, seed: int = 0):
        self.oracle = OracleRelevance(tokenizer, stop_ids)
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids) | set(self.oracle.stop_ids)),
                                        dtype=torch.long)
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, inputs: RelevanceInputs) -> torch.Tensor:
        oracle = self.oracle(inputs).cpu()
        ids = inputs.completion_ids.cpu()
        open_tokens = inputs.completion_mask.cpu().bool() & ~torch.isin(ids, self.special_ids)  # (B, T)
        weights = torch.where(open_tokens[:, None, :] | oracle.isnan(), oracle, torch.zeros_like(oracle))
        for i in range(oracle.shape[0]):
            places = open_tokens[i].nonzero().squeeze(1)
            for k in range(oracle.shape[1]):
                if not oracle[i, k].isnan().all():
                    order = torch.randperm(len(places), generator=self.generator)
                    weights[i, k, places] = oracle[i, k, places[order]]
        return weights.to(inputs.completion_ids.device)


class ModelRelevance:
    """w from a trained `RelevanceModel`, for every (response, rubric) pair with a known verdict.

    When the relevance model shares the policy's tokenizer it reads the policy's own token ids (no
    re-tokenization drift); otherwise its token weights go to characters and each policy token takes
    the max over its characters (`characters_to_tokens`). Special tokens get 0; unknown verdicts a
    NaN row (they are left out of the token term anyway). The model is trained on the labels' character
    spans only, not on their stop flags, so it puts no weight on the stop token.
    """

    flags_stop = False

    def __init__(self, model: RelevanceModel, policy_tokenizer: PreTrainedTokenizerBase, batch_size: int = 64):
        self.model = model
        self.policy_tokenizer = policy_tokenizer
        self.batch_size = batch_size
        self.same_tokenizer = model.tokenizer.get_vocab() == policy_tokenizer.get_vocab()
        self._special = set(policy_tokenizer.all_special_ids)

    def __call__(self, inputs: RelevanceInputs) -> torch.Tensor:
        batch, width, length = inputs.shape
        weights = torch.full((batch, width, length), float("nan"))
        requests, places = [], []
        for i in range(batch):
            rubric_slots = [k for k in range(len(inputs.scored.rubrics[i]))
                            if not torch.isnan(inputs.scored.verdicts[i, k])]
            if not rubric_slots:
                continue
            ids = inputs.completion_ids[i][inputs.completion_mask[i].bool()].tolist()
            if self.same_tokenizer:
                positions = [t for t, token_id in enumerate(ids) if token_id not in self._special]
                response_ids, alignment = [ids[t] for t in positions], positions
            else:
                text, policy_spans = token_char_spans(self.policy_tokenizer, ids)
                response_ids, model_spans = self.model.tokenize_response(text)
                alignment = (text, model_spans, policy_spans)
            requests.append(([inputs.scored.rubrics[i][k].description for k in rubric_slots], response_ids,
                             [bool(inputs.scored.verdicts[i, k]) for k in rubric_slots]))
            places.append((i, rubric_slots, len(ids), alignment))
        for relevance, (i, rubric_slots, count, alignment) in zip(self.model.predict(requests, self.batch_size),
                                                                   places):
            row = torch.zeros(len(rubric_slots), length)
            if self.same_tokenizer:
                row[:, alignment] = relevance
            else:
                text, model_spans, policy_spans = alignment
                row[:, :count] = characters_to_tokens(tokens_to_characters(relevance, model_spans, len(text)),
                                                      policy_spans)
            weights[i, rubric_slots] = row
        return weights.to(inputs.completion_ids.device)


RELEVANCE_SOURCES = ("none", "uniform", "random", "oracle", "shuffled", "model", "contrast")


def build_relevance_source(name: str, tokenizer: PreTrainedTokenizerBase, seed: int = 0,
                           model_path: str | None = None, batch_size: int = 64,
                           policy: PreTrainedModel | None = None) -> RelevanceSource | None:
    """The source named in the config; ``none`` (plain GRPO) returns None. ``contrast`` needs the ``policy``."""
    if name == "none":
        return None
    if name == "uniform":
        return UniformRelevance()
    if name == "random":
        return RandomRelevance(seed)
    if name in ("oracle", "shuffled"):
        stops = stop_token_ids(tokenizer, getattr(policy, "generation_config", None))
        if name == "oracle":
            return OracleRelevance(tokenizer, stops)
        return ShuffledOracleRelevance(tokenizer, stops, seed)
    if name == "model":
        if not model_path:
            raise ValueError("relevance_source 'model' needs relevance_model: the folder of a trained relevance "
                             "model (see `rtt relevance train`)")
        return ModelRelevance(RelevanceModel.load(model_path).to_inference(), tokenizer, batch_size)
    if name == "contrast":
        if policy is None:
            raise ValueError("relevance_source 'contrast' needs the policy model")
        return ContrastRelevance(policy, tokenizer, batch_size)
    raise ValueError(f"unknown relevance_source {name!r}; choose one of {', '.join(RELEVANCE_SOURCES)}")

