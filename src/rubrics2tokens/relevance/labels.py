"""Labelled (rubric, response) pairs for training the relevance model (method.md §5).

A label file is JSONL, one pair a line::

    {"id": "testbed-0-000012/0/2", "prompt_id": "testbed-0-000012",
     "rubric": "The response contains no commas.", "family": "testbed:no_commas",
     "response": "Once upon a time, ...", "verdict": false, "spans": [[16, 17]], "stop": false,
     "source": "verifier"}

- ``spans`` are the half-open character ranges ``[start, end)`` of ``response`` that decide the rubric
  under method.md §5 (blame for a fail, credit for a pass; ``[]``: no character does); a token is
  relevant when any of its characters is (`token_labels`);
- ``stop`` (optional, default false): the verdict blames the stop (a lower limit not reached). The stop has
  no characters, so it gives no token label; the oracle maps it to EOS at RL time;
- ``family`` groups pairs in the metrics (the verifier id for verifier labels);
- ``prompt_id`` is what the train/held-out split is made on, so held-out prompts are never trained on;
- ``source`` says who labelled the pair: ``verifier`` (a span-aware rule checker) or ``annotator``
  (an LLM quoting the deciding substrings).

Verifier labels come from policy responses: `sample_responses` samples them (resumable), then
`label_with_verifiers` keeps every (response, rubric) whose verifier gives a known verdict and spans.
The pairs they leave can be labelled by an LLM annotator (`rubrics2tokens.relevance.annotator`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rubrics2tokens.generation import SamplingParams, StaticCacheDecoder
from rubrics2tokens.generation.stopping import stop_token_ids
from rubrics2tokens.data.schema import (DataError, PromptRow, append_jsonl, by_unique_id, read_appended_jsonl,
                                        read_jsonl, write_jsonl)
from rubrics2tokens.relevance.alignment import spans_to_token_mask
from rubrics2tokens.relevance.model import RelevanceModel
from rubrics2tokens.verifiers.registry import run_verifier

LABEL_SOURCES = ("verifier", "annotator")


@dataclass(frozen=True)
class LabelledPair:
    """One rubric on one response with the character spans that decide its verdict."""

    id: str
    prompt_id: str
    rubric: str
    family: str
    response: str
    verdict: bool
    spans: list[tuple[int, int]]
    source: str = "verifier"
    stop: bool = False

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "spans": [list(span) for span in self.spans]}


# ---------------------------------------------------------------- reading and writing label files


def parse_pair(record: Any, path: str | Path = "<memory>", row: int = 1) -> LabelledPair:
    """Validate one decoded JSON record and build a `LabelledPair`; raise `DataError` on any problem."""

    def fail(field_name: str, problem: str) -> DataError:
        return DataError(path, row, field_name, problem)

    if not isinstance(record, dict):
        raise fail("<row>", f"expected a JSON object, got {type(record).__name__}")
    for name in ("id", "prompt_id", "rubric", "family", "response"):
        value = record.get(name)
        if not isinstance(value, str) or not value.strip():
            raise fail(name, f"must be a non-empty string, got {value!r}")
    if not isinstance(record.get("verdict"), bool):
        raise fail("verdict", f"must be true or false, got {record.get('verdict')!r}")
    if not isinstance(record.get("stop", False), bool):
        raise fail("stop", f"must be true or false, got {record.get('stop')!r}")
    source = record.get("source", "verifier")
    if source not in LABEL_SOURCES:
        raise fail("source", f"must be one of {', '.join(LABEL_SOURCES)}, got {source!r}")
    spans = record.get("spans")
    if not isinstance(spans, list):
        raise fail("spans", f"must be a list of [start, end] character ranges, got {spans!r}")
    length = len(record["response"])
    for k, span in enumerate(spans):
        if not (isinstance(span, list) and len(span) == 2
                and all(isinstance(bound, int) and not isinstance(bound, bool) for bound in span)):
            raise fail(f"spans[{k}]", f"must be a [start, end] pair of integers, got {span!r}")
        if not 0 <= span[0] < span[1] <= length:
            raise fail(f"spans[{k}]", f"needs 0 <= start < end <= len(response) = {length}, got {span}")
    return LabelledPair(id=record["id"], prompt_id=record["prompt_id"], rubric=record["rubric"],
                        family=record["family"], response=record["response"], verdict=record["verdict"],
                        spans=[(start, end) for start, end in spans], source=source,
                        stop=record.get("stop", False))


def load_labels(path: str | Path) -> list[LabelledPair]:
    """Read a label file; every problem (bad JSON, a missing or ill-typed field, a span outside the
    response, a repeated id) is a `DataError` naming the file, the row and the field."""
    numbered = ((row, parse_pair(record, path, row)) for row, record in read_jsonl(path))
    pairs = list(by_unique_id(numbered, path).values())
    if not pairs:
        raise DataError(path, 0, "<file>", "no labelled pairs")
    return pairs


def write_labels(pairs: Iterable[LabelledPair], path: str | Path) -> Path:
    return write_jsonl((pair.to_json() for pair in pairs), path)


def token_labels(model: RelevanceModel, pair: LabelledPair) -> tuple[list[int], torch.Tensor]:
    """The response's model token ids ``(N,)`` and their 0/1 labels ``(N,)`` (1: the token overlaps a span)."""
    ids, offsets = model.tokenize_response(pair.response)
    return ids, spans_to_token_mask(pair.spans, offsets, len(ids))


# ---------------------------------------------------------------- labels from policy responses


def sample_responses(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, rows: Sequence[PromptRow],
                     path: str | Path, samples_per_prompt: int = 1, max_new_tokens: int = 128,
                     batch_size: int = 16, temperature: float = 1.0, seed: int = 0) -> dict[str, list[str]]:
    """Sample ``samples_per_prompt`` policy responses for every row: prompt id -> responses.

    Prompts go through the tokenizer's chat template and are generated in batches of ``batch_size``
    prompts (left padding, so every prompt ends where generation starts). After each batch its
    responses are appended to the JSONL file ``path`` (``{"prompt_id": ..., "responses": [...]}``);
    prompts already there are skipped, so a killed run continues where it stopped. Each batch is
    seeded from ``seed`` and its first row's position, so a resumed run samples what an uninterrupted
    one would. Responses are decoded without special tokens, as TRL decodes completions. Sets the
    tokenizer's padding side to left.
    """
    path = Path(path)
    done = read_responses(path)
    todo = [(index, row) for index, row in enumerate(rows) if len(done.get(row.id, ())) < samples_per_prompt]
    tokenizer.padding_side = "left"
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle, \
            tqdm(total=len(rows), initial=len(rows) - len(todo), desc="sampling", unit="prompt") as progress:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            torch.manual_seed(seed * 1_000_003 + batch[0][0])
            responses = _generate(model, tokenizer, [row for _, row in batch], samples_per_prompt,
                                  max_new_tokens, temperature)
            for (_, row), row_responses in zip(batch, responses):
                done[row.id] = row_responses
            append_jsonl(handle, [{"prompt_id": row.id, "responses": done[row.id]} for _, row in batch])
            progress.update(len(batch))
    return {row.id: done[row.id][:samples_per_prompt] for row in rows}


@torch.no_grad()
def _generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, rows: Sequence[PromptRow],
              samples_per_prompt: int, max_new_tokens: int, temperature: float) -> list[list[str]]:
    """One batched decode with the RL rollout decoder (`StaticCacheDecoder`, the same sampling as
    ``generate``): per row, its ``samples_per_prompt`` decoded responses."""
    prompts = [tokenizer.apply_chat_template(row.messages, add_generation_prompt=True, tokenize=True, return_dict=False)
               for row in rows for _ in range(samples_per_prompt)]
    decoder = StaticCacheDecoder(model, tokenizer.pad_token_id, stop_token_ids(tokenizer, model.generation_config))
    completions = decoder.generate(prompts, max_new_tokens, SamplingParams(temperature=temperature))
    decoded = tokenizer.batch_decode(completions, skip_special_tokens=True)
    return [decoded[i * samples_per_prompt:(i + 1) * samples_per_prompt] for i in range(len(rows))]


def read_responses(path: str | Path) -> dict[str, list[str]]:
    """Prompt id -> responses from a `sample_responses` file (a missing file is empty). A last line cut
    short by a kill is removed from the file, so appending continues on a clean line."""
    responses = {}
    for row, record in read_appended_jsonl(path):
        if not isinstance(record.get("responses"), list) or not all(isinstance(r, str) for r in record["responses"]):
            raise DataError(path, row, "responses", "must be a list of strings")
        responses[str(record.get("prompt_id"))] = record["responses"]
    return responses


def label_with_verifiers(rows: Sequence[PromptRow], responses: Mapping[str, Sequence[str]]) -> list[LabelledPair]:
    """One pair per (response, rubric) whose verifier gives a known verdict and character spans.

    Rubrics without a verifier (LLM-judged), unknown verdicts and verifiers that cannot say which
    characters decide (``spans is None``) give no pair; an unregistered verifier id raises. Empty
    responses give no pairs (there is no token to label). Pair ids are ``{prompt_id}/{sample}/{rubric}``.
    """
    pairs = []
    for row in rows:
        for sample, response in enumerate(responses.get(row.id, ())):
            if not response.strip():
                continue
            for k, rubric in enumerate(row.rubrics):
                if rubric.verifier is None:
                    continue
                verdict = run_verifier(rubric.verifier, response, rubric.kwargs)
                if verdict.passed is None or verdict.spans is None:
                    continue
                pairs.append(LabelledPair(id=f"{row.id}/{sample}/{k}", prompt_id=row.id, rubric=rubric.description,
                                          family=rubric.family, response=response, verdict=verdict.passed,
                                          spans=[tuple(span) for span in verdict.spans], stop=verdict.stop))
    return pairs
