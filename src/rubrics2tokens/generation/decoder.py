"""A lean batched decoder on a preallocated (static) KV cache.

Why not ``model.generate``: on a GPU, transformers' generate is bound by per-step bookkeeping for a
small policy (about 43 ms per decode step for SmolLM2 on an H100 at any batch size, while reading the
weights takes about 0.1 ms). Here a decode step is one forward on buffers allocated once (the token,
its position, the cache position, a 4D attention mask and the KV cache), updated in place, so its
shapes and addresses never change: on CUDA the step is captured once as a CUDA graph and replayed
(`DecodeStep`); on a CPU the same step runs eagerly, without transformers rebuilding the attention
mask every token. Sampling (`sampling.next_tokens`) runs outside the step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import StaticCache

from rubrics2tokens.generation.sampling import SamplingParams, next_tokens


@dataclass
class Decoded:
    """Completions and, for every completion token, its log-probability under the sampling model's
    temperature-scaled softmax before any top-k/top-p/min-p filter (TRL's definition of a token's
    log-probability, so the two can be compared)."""

    completion_ids: list[list[int]]
    logprobs: list[list[float]]


class DecodeStep:
    """One decode forward on fixed buffers, advanced in place.

    Buffers: ``tokens`` (B, 1) the tokens to feed, ``positions`` (B, 1) their rotary positions,
    ``cache_position`` (1,) the cache slot they are written to, ``mask`` (B, 1, 1, L) additive
    attention mask over the cache (0 = attend, dtype min = masked). A call feeds ``tokens``, opens
    their cache slot in the mask, runs the model and moves the positions one on; it returns the
    next-token logits (B, V). With ``cuda_graph`` the whole call is captured once and replayed.
    """

    def __init__(self, model: torch.nn.Module, cache: StaticCache, mask: torch.Tensor, positions: torch.Tensor,
                 cache_position: int, cuda_graph: bool):
        self.model, self.cache, self.mask = model, cache, mask
        self.positions = positions.clone()
        self.cache_position = torch.tensor([cache_position], device=mask.device)
        self.tokens = torch.zeros_like(self.positions)
        self.graph: torch.cuda.CUDAGraph | None = None
        if cuda_graph:
            self._capture()

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        self.tokens.copy_(tokens[:, None])
        if self.graph is None:
            return self._step()
        self.graph.replay()
        return self.logits

    def _step(self) -> torch.Tensor:
        self.mask.index_fill_(-1, self.cache_position, 0.0)
        logits = self.model(input_ids=self.tokens, attention_mask=self.mask, position_ids=self.positions,
                            cache=self.cache, cache_position=self.cache_position, use_cache=True).logits[:, -1]
        self.positions.add_(1)
        self.cache_position.add_(1)
        return logits

    def _capture(self) -> None:
        """Warm up on a side stream (as CUDA-graph capture requires), undo the warm-up's buffer
        updates, then capture. The warm-up's KV entries sit in the slot the first real step overwrites."""
        saved = [t.clone() for t in (self.positions, self.cache_position, self.mask)]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self._step()
        torch.cuda.current_stream().wait_stream(stream)
        for buffer, value in zip((self.positions, self.cache_position, self.mask), saved):
            buffer.copy_(value)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits = self._step()


class StaticCacheDecoder:
    """Samples completions for left-padded prompts.

    Args:
        model: a causal LM (any transformers decoder that accepts a ``StaticCache`` and a 4D mask).
        pad_token_id: written after a sequence has finished.
        eos_token_ids: tokens that end a sequence (kept as its last token, as TRL expects).
        batch_size: most sequences decoded together (the cache is sized for them); None = all at once.
        cuda_graphs: replay the decode step as a CUDA graph when the model is on a CUDA device.
    """

    def __init__(self, model: torch.nn.Module, pad_token_id: int, eos_token_ids: Sequence[int],
                 batch_size: int | None = None, cuda_graphs: bool = True):
        self.model = model
        self.pad_token_id = pad_token_id
        self.eos_token_ids = torch.tensor(list(eos_token_ids), dtype=torch.long)
        self.batch_size = batch_size
        self.cuda_graphs = cuda_graphs

    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, params: SamplingParams,
                 generator: torch.Generator | None = None) -> list[list[int]]:
        """One completion per prompt: its tokens up to and including the first EOS (or
        ``max_new_tokens`` tokens when none comes)."""
        return self.decode(prompts, max_new_tokens, params, generator).completion_ids

    @torch.no_grad()
    def decode(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, params: SamplingParams,
               generator: torch.Generator | None = None,
               on_finished: Callable[[int, list[int]], None] | None = None) -> Decoded:
        """`generate`, plus the log-probability of every completion token (see `Decoded`).
        ``on_finished(prompt_index, completion_ids)`` is called as each completion ends, before the rest of its
        batch: a caller can save it at once (a kill then loses only the completions still being decoded)."""
        size = self.batch_size or len(prompts) or 1
        decoded = Decoded([], [])
        for start in range(0, len(prompts), size):
            report = None if on_finished is None else functools.partial(_offset_call, on_finished, start)
            ids, logprobs = self._decode_batch(prompts[start:start + size], max_new_tokens, params, generator,
                                               report)
            decoded.completion_ids.extend(ids)
            decoded.logprobs.extend(logprobs)
        return decoded

    def _decode_batch(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, params: SamplingParams,
                      generator: torch.Generator | None, on_finished: Callable[[int, list[int]], None] | None = None,
                      ) -> tuple[list[list[int]], list[list[float]]]:
        parameter = next(self.model.parameters())
        device = parameter.device
        batch, prompt_length = len(prompts), max(map(len, prompts))
        total_length = prompt_length + max_new_tokens
        input_ids = torch.full((batch, prompt_length), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((batch, prompt_length), dtype=torch.long)
        for row, ids in enumerate(prompts):
            input_ids[row, prompt_length - len(ids):] = torch.tensor(list(ids))
            attention[row, prompt_length - len(ids):] = 1
        input_ids, attention = input_ids.to(device), attention.to(device)
        eos = self.eos_token_ids.to(device)

        seen = None
        if params.repetition_penalty != 1.0:
            vocab = self.model.get_output_embeddings().weight.shape[0]
            seen = torch.zeros((batch, vocab), dtype=torch.bool, device=device)
            seen.scatter_(1, input_ids, attention.bool())

        cache = StaticCache(config=self.model.config, max_cache_len=total_length)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)  # left padding shifts positions
        logits = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions, cache=cache,
                            cache_position=torch.arange(prompt_length, device=device), use_cache=True,
                            logits_to_keep=1).logits[:, -1]
        # the decode steps' additive mask: prompt padding and not-yet-written slots masked
        mask = torch.full((batch, 1, 1, total_length), torch.finfo(parameter.dtype).min, dtype=parameter.dtype,
                          device=device)
        mask[:, 0, 0, :prompt_length].masked_fill_(attention.bool(), 0.0)
        step = DecodeStep(self.model, cache, mask, attention.sum(-1, keepdim=True), prompt_length,
                          cuda_graph=self.cuda_graphs and device.type == "cuda" and max_new_tokens > 1)

        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        generated = torch.full((batch, max_new_tokens), self.pad_token_id, dtype=torch.long, device=device)
        logprobs = torch.zeros((batch, max_new_tokens), device=device)
        temperature = params.temperature if params.do_sample else 1.0
        for index in range(max_new_tokens):
            tokens = next_tokens(logits, params, seen, generator).where(~finished, self.pad_token_id)
            generated[:, index] = tokens
            logprobs[:, index] = (logits.float() / temperature).log_softmax(-1).gather(-1, tokens[:, None])[:, 0]
            newly_finished = torch.isin(tokens, eos) & ~finished
            finished |= newly_finished
            if on_finished is not None:
                for row in newly_finished.nonzero()[:, 0].tolist():
                    on_finished(row, generated[row, :index + 1].tolist())
            if index == max_new_tokens - 1 or bool(finished.all()):
                break
            if seen is not None:
                seen[torch.arange(batch, device=device), tokens] = True
            logits = step(tokens)
        lengths = [_length_until_eos(row, eos, max_new_tokens) for row in generated.tolist()]
        if on_finished is not None:  # the completions cut at max_new_tokens end with the batch
            for row in (~finished).nonzero()[:, 0].tolist():
                on_finished(row, generated[row, :lengths[row]].tolist())
        return ([row[:n] for row, n in zip(generated.tolist(), lengths)],
                [row[:n] for row, n in zip(logprobs.tolist(), lengths)])


def _offset_call(on_finished: Callable[[int, list[int]], None], offset: int, row: int, ids: list[int]) -> None:
    on_finished(offset + row, ids)


def _length_until_eos(tokens: list[int], eos: torch.Tensor, max_new_tokens: int) -> int:
    stops = set(eos.tolist())
    return next((index + 1 for index, token in enumerate(tokens) if token in stops), max_new_tokens)
