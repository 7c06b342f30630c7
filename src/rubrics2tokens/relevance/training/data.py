"""Labelled pairs -> model inputs of a relevance training run: the held-out split, token labels, batches.

Pairs become model inputs exactly as at RL time: `RelevanceModel.tokenize_response` and `encode_pair`
(the rubric template, then a window of response tokens), with the verifier's character spans turned
into 0/1 token labels (`labels.token_labels`); template, special and padding tokens get -100 and are
left out of the loss.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import torch

from rubrics2tokens.relevance.labels import LabelledPair, load_labels, token_labels
from rubrics2tokens.relevance.model import RelevanceModel
from rubrics2tokens.relevance.training.config import RelevanceTrainingConfig
from rubrics2tokens.yaml_config import ConfigError

IGNORE_INDEX = -100
SORT_CHUNK_BATCHES = 50  # batches are formed from length-sorted chunks of this many batches (little padding)


def split_by_prompt(pairs: Sequence[LabelledPair], eval_fraction: float, seed: int
                    ) -> tuple[list[LabelledPair], list[LabelledPair]]:
    """(train, held out): a seeded ``eval_fraction`` of the prompt ids, with all their pairs, is held out."""
    prompt_ids = sorted({pair.prompt_id for pair in pairs})
    random.Random(seed).shuffle(prompt_ids)
    held_out = set(prompt_ids[:max(1, round(len(prompt_ids) * eval_fraction))])
    if len(held_out) == len(prompt_ids):
        raise ValueError(f"cannot hold out prompts: the training pairs come from {len(prompt_ids)} prompt(s)")
    return ([pair for pair in pairs if pair.prompt_id not in held_out],
            [pair for pair in pairs if pair.prompt_id in held_out])


def load_pairs(config: RelevanceTrainingConfig) -> tuple[list[LabelledPair], list[LabelledPair]]:
    """The training and held-out pairs; an eval file sharing prompt ids with the train file is refused."""
    pairs = load_labels(config.train_file)
    if config.eval_file is None:
        return split_by_prompt(pairs, config.eval_fraction, config.seed)
    held_out = load_labels(config.eval_file)
    shared = {pair.prompt_id for pair in pairs} & {pair.prompt_id for pair in held_out}
    if shared:
        raise ConfigError(f"{config.eval_file} shares {len(shared)} prompt id(s) with {config.train_file} "
                         f"(e.g. {min(shared)!r}): held-out prompts must not be trained on")
    return pairs, held_out


@dataclass
class Example:
    """One model input: ``input_ids`` (L,) and ``labels`` (L,), 0/1 on response tokens, -100 elsewhere."""

    input_ids: list[int]
    labels: list[float]


def build_examples(model: RelevanceModel, pairs: Sequence[LabelledPair]) -> list[Example]:
    """Every window of every pair as a labelled model input (the RL-time layout, `encode_pair`)."""
    examples = []
    for pair in pairs:
        ids, response_labels = token_labels(model, pair)
        for encoded in model.encode_pair(pair.rubric, ids, pair.verdict):
            labels = [float(IGNORE_INDEX)] * len(encoded.input_ids)
            start, width = encoded.response_start, encoded.window.stop - encoded.window.start
            labels[start:start + width] = response_labels[encoded.window].tolist()
            examples.append(Example(encoded.input_ids, labels))
    return examples


def collate(examples: Sequence[Example], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels``, each ``(B, L_max)``."""
    length = max(len(example.input_ids) for example in examples)
    input_ids = torch.full((len(examples), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
    labels = torch.full((len(examples), length), float(IGNORE_INDEX))
    for row, example in enumerate(examples):
        input_ids[row, :len(example.input_ids)] = torch.tensor(example.input_ids)
        attention_mask[row, :len(example.input_ids)] = 1
        labels[row, :len(example.labels)] = torch.tensor(example.labels)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches (lists of example indices) of one epoch, a pure function of (seed, epoch).

    Shuffle, sort each chunk of ``SORT_CHUNK_BATCHES`` batches by length, cut it into batches and
    shuffle the batches: random order, but inputs of similar length share a batch (little padding).
    """
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    chunk = batch_size * SORT_CHUNK_BATCHES
    batches = []
    for start in range(0, len(order), chunk):
        members = sorted(order[start:start + chunk], key=lambda index: lengths[index])
        batches.extend(members[i:i + batch_size] for i in range(0, len(members), batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def positive_weight(config: RelevanceTrainingConfig, examples: Sequence[Example]) -> float:
    """The loss weight of relevant tokens: the configured number, or irrelevant / relevant tokens."""
    if config.pos_weight != "auto":
        return float(config.pos_weight)
    labels = torch.tensor([label for example in examples for label in example.labels])
    positives, negatives = int((labels == 1).sum()), int((labels == 0).sum())
    return negatives / positives if positives else 1.0
