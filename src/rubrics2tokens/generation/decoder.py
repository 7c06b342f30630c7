"""A lean batched decoder with continuous batching on a preallocated (static) KV cache.

Why not ``model.generate``: on a GPU, transformers' generate is bound by per-step bookkeeping for a
small policy (about 43 ms per decode step for SmolLM2 on an H100 at any batch size, while reading the
weights takes about 0.1 ms), and a batch runs until its longest member ends. Here a decode step is one
forward on buffers allocated once (the tokens, their positions, a 4D attention mask and the KV cache,
`SlotCache`), updated in place, so its shapes and addresses never change: on CUDA the step is captured
once as a CUDA graph and replayed (`DecodeStep`); on a CPU the same step runs eagerly, without
transformers rebuilding the attention mask every token. The batch never idles while prompts wait: a slot
whose sequence has ended takes the next prompt (its prefill is copied into the slot) and the other slots
go on; once no prompt waits and half the slots are idle, the answers still running move to a batch half
the size. On a CPU a step attends only to the cache positions some active slot has reached (`_Slots.window`).
Sampling (`sampling.next_tokens`) runs outside the step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import StaticCache

from rubrics2tokens.generation.packed_linear import packed_linears
from rubrics2tokens.generation.sampling import SamplingParams, next_tokens
from rubrics2tokens.generation.slot_cache import SlotCache


@dataclass
class Decoded:
    """Completions and, for every completion token, its log-probability under the sampling model's
    temperature-scaled softmax before any top-k/top-p/min-p filter (TRL's definition of a token's
    log-probability, so the two can be compared)."""

    completion_ids: list[list[int]]
    logprobs: list[list[float]]


class DecodeStep:
    """One decode forward on fixed buffers, advanced in place.

    Buffers: ``tokens`` (B, 1) the tokens to feed, ``positions`` (B, 1) their rotary positions, ``mask``
    (B, 1, 1, L) additive attention mask over the cache (0 = attend, dtype min = masked) and the cache's
    ``write_positions`` (B,), the slot each row's token is written to. A call feeds ``tokens``, opens their
    cache slots in the mask, runs the model and moves every row one on; it returns the next-token logits
    (B, V). With ``cuda_graph`` the whole call is captured once and replayed.
    """

    def __init__(self, model: torch.nn.Module, cache: SlotCache, mask: torch.Tensor, positions: torch.Tensor,
                 cuda_graph: bool):
        self.model, self.cache, self.mask, self.positions = model, cache, mask, positions
        self.rows = torch.arange(mask.shape[0], device=mask.device)
        self.last_slot = mask.shape[-1] - 1
        self.tokens = torch.zeros_like(positions)
        self.graph: torch.cuda.CUDAGraph | None = None
        if cuda_graph:
            self._capture()

    def __call__(self, tokens: torch.Tensor, window: int | None = None) -> torch.Tensor:
        """``window``: attend to the cache's first ``window`` positions only (eager steps; a graph attends to all)."""
        self.tokens.copy_(tokens[:, None])
        if self.graph is None:
            return self._step(window)
        self.graph.replay()
        return self.logits

    def _step(self, window: int | None = None) -> torch.Tensor:
        written = self.cache.write_positions
        self.mask[self.rows, 0, 0, written] = 0.0
        self.cache.set_window(window)
        logits = self.model(input_ids=self.tokens, attention_mask=self.mask[..., :window],
                            position_ids=self.positions, cache=self.cache, use_cache=True).logits[:, -1]
        self.positions.add_(1)
        written.add_(1).clamp_(max=self.last_slot)  # an idle slot (nothing left to decode) stays in bounds
        return logits

    def _capture(self) -> None:
        """Warm up on a side stream (as CUDA-graph capture requires), undo the warm-up's buffer
        updates, then capture. The warm-up's KV entries sit in the slot the first real step overwrites."""
        buffers = (self.positions, self.cache.write_positions, self.mask)
        saved = [t.clone() for t in buffers]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self._step()
        torch.cuda.current_stream().wait_stream(stream)
        for buffer, value in zip(buffers, saved):
            buffer.copy_(value)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits = self._step()


class StaticCacheDecoder:
    """Samples completions for prompts (token id lists of any lengths), ``batch_size`` at a time.

    Args:
        model: a causal LM (any transformers decoder with full attention that accepts a cache and a 4D mask).
        pad_token_id: fed in the slots that have nothing to decode.
        eos_token_ids: tokens that end a sequence (kept as its last token, as TRL expects).
        batch_size: slots decoded together (the cache is sized for them); None = all prompts at once.
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
        ``on_finished(prompt_index, completion_ids)`` is called as each completion ends: a caller can save it
        at once (a kill then loses only the completions still being decoded). Prompts enter the slots in the
        order given. A bf16 model on a CPU decodes on prepacked weights (`packed_linears`)."""
        with packed_linears(self.model, len(prompts) if self.batch_size is None else self.batch_size):
            return self._decode(prompts, max_new_tokens, params, generator, on_finished)

    def _decode(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, params: SamplingParams,
                generator: torch.Generator | None, on_finished: Callable[[int, list[int]], None] | None) -> Decoded:
        decoded = Decoded([[] for _ in prompts], [[] for _ in prompts])
        if not prompts:
            return decoded
        slots = _Slots(self, len(prompts) if self.batch_size is None else min(self.batch_size, len(prompts)),
                       max(map(len, prompts)) + max_new_tokens, max_new_tokens, params.repetition_penalty != 1.0)
        waiting = deque(range(len(prompts)))
        starting = [waiting.popleft() for _ in range(slots.count)]
        logits = slots.fill(torch.arange(slots.count), [prompts[index] for index in starting], starting)
        step = DecodeStep(self.model, slots.cache, slots.mask, slots.positions,
                          cuda_graph=self.cuda_graphs and slots.device.type == "cuda" and max_new_tokens > 1)
        temperature = params.temperature if params.do_sample else 1.0
        eos = self.eos_token_ids.to(slots.device)
        while True:
            tokens = next_tokens(logits, params, slots.seen, generator).where(slots.active, self.pad_token_id)
            logprobs = (logits.float() / temperature).log_softmax(-1).gather(-1, tokens[:, None])[:, 0]
            for slot, prompt_index, ids, token_logprobs in slots.record(tokens, logprobs, eos):
                decoded.completion_ids[prompt_index], decoded.logprobs[prompt_index] = ids, token_logprobs
                if on_finished is not None:
                    on_finished(prompt_index, ids)
            free = (~slots.active).nonzero()[:, 0][:len(waiting)]
            if not waiting and not bool(slots.active.any()):
                return decoded
            if not waiting and int(slots.active.sum()) <= slots.count // 2:  # the last answers: a smaller batch
                kept = slots.active.nonzero()[:, 0]
                slots, tokens = slots.take(kept), tokens[kept]
                step = DecodeStep(self.model, slots.cache, slots.mask, slots.positions,
                                  cuda_graph=step.graph is not None)
            logits = step(tokens, slots.window() if step.graph is None else None)
            if len(free):
                entering = [waiting.popleft() for _ in range(len(free))]
                logits[free] = slots.fill(free, [prompts[index] for index in entering], entering)


class _Slots:
    """The decoder's per-slot state: (B, ...) tensors for B slots over a cache of L positions, and which prompt
    each slot is answering."""

    def __init__(self, decoder: StaticCacheDecoder, count: int, cache_length: int, max_new_tokens: int,
                 track_seen: bool):
        model = decoder.model
        parameter = next(model.parameters())
        self.model, self.pad_token_id, self.count, self.device = model, decoder.pad_token_id, count, parameter.device
        self.max_new_tokens = max_new_tokens
        self.cache = SlotCache(model.config, count, cache_length, self.device)
        self.masked = torch.finfo(parameter.dtype).min
        self.mask = torch.full((count, 1, 1, cache_length), self.masked, dtype=parameter.dtype, device=self.device)
        self.positions = torch.zeros((count, 1), dtype=torch.long, device=self.device)
        self.active = torch.zeros(count, dtype=torch.bool, device=self.device)
        self.lengths = torch.zeros(count, dtype=torch.long, device=self.device)
        self.generated = torch.full((count, max_new_tokens), self.pad_token_id, dtype=torch.long, device=self.device)
        self.logprobs = torch.zeros((count, max_new_tokens), device=self.device)
        self.rows = torch.arange(count, device=self.device)
        self.prompt_of = [-1] * count
        self.seen = None  # (B, V) bool: tokens already in each sequence, for the repetition penalty
        if track_seen:
            vocab = model.get_output_embeddings().weight.shape[0]
            self.seen = torch.zeros((count, vocab), dtype=torch.bool, device=self.device)

    def take(self, kept: torch.Tensor) -> _Slots:
        """The slots ``kept`` (S,) only, in that order, with their cache and state: decoding the last answers
        of a batch in all its slots would pay for the idle ones at every step."""
        taken = _Slots.__new__(_Slots)
        taken.__dict__.update(self.__dict__)
        taken.count, taken.rows = len(kept), self.rows[:len(kept)]
        taken.cache = SlotCache(self.model.config, taken.count, self.mask.shape[-1], self.device)
        taken.cache.fill_slots(taken.rows, self.cache, self.window(), rows=kept)  # nothing is cached beyond it
        taken.cache.write_positions.copy_(self.cache.write_positions[kept])
        for name in ("mask", "positions", "active", "lengths", "generated", "logprobs", "seen"):
            value = getattr(self, name)
            setattr(taken, name, None if value is None else value[kept])
        taken.prompt_of = [self.prompt_of[slot] for slot in kept.tolist()]
        return taken

    def window(self) -> int:
        """The cache positions a decode step must attend to: up to the furthest write of an active slot (idle
        slots keep advancing, but nothing reads their logits)."""
        return int(self.cache.write_positions[self.active].max()) + 1 if bool(self.active.any()) else 1

    def fill(self, slots: torch.Tensor, prompts: list[Sequence[int]], prompt_indices: list[int]) -> torch.Tensor:
        """Prefill ``prompts`` (left-padded together) into ``slots`` (S,); returns their next-token logits (S, V)."""
        slots = slots.to(self.device)
        length = max(map(len, prompts))
        input_ids = torch.full((len(prompts), length), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), length), dtype=torch.long)
        for row, ids in enumerate(prompts):
            input_ids[row, length - len(ids):] = torch.tensor(list(ids))
            attention[row, length - len(ids):] = 1
        input_ids, attention = input_ids.to(self.device), attention.to(self.device)
        prefill = StaticCache(config=self.model.config, max_cache_len=length)
        logits = self.model(input_ids=input_ids, attention_mask=attention,
                            position_ids=(attention.cumsum(-1) - 1).clamp(min=0),  # left padding shifts positions
                            cache=prefill, use_cache=True, logits_to_keep=1).logits[:, -1]
        self.cache.fill_slots(slots, prefill, length)
        self.mask[slots] = self.masked
        self.mask[slots, 0, 0, :length] = torch.where(attention.bool(), 0.0, self.masked).to(self.mask.dtype)
        self.positions[slots, 0] = attention.sum(-1)
        self.active[slots], self.lengths[slots] = True, 0
        if self.seen is not None:
            self.seen[slots] = torch.zeros_like(self.seen[slots]).scatter_(1, input_ids, attention.bool())
        for slot, index in zip(slots.tolist(), prompt_indices):
            self.prompt_of[slot] = index
        return logits

    def record(self, tokens: torch.Tensor, logprobs: torch.Tensor, eos: torch.Tensor
               ) -> list[tuple[int, int, list[int], list[float]]]:
        """Append each active slot's new token (B,) and its log-probability (B,); returns (slot, prompt index,
        completion ids, log-probabilities) for every completion that has just ended (EOS or the token limit)."""
        active = self.active
        at = self.lengths.clamp(max=self.max_new_tokens - 1)
        self.generated[self.rows, at] = torch.where(active, tokens, self.generated[self.rows, at])
        self.logprobs[self.rows, at] = torch.where(active, logprobs, self.logprobs[self.rows, at])
        self.lengths += active
        if self.seen is not None:
            self.seen[self.rows, tokens] |= active
        ended = active & (torch.isin(tokens, eos) | (self.lengths == self.max_new_tokens))
        finished = []
        for slot in ended.nonzero()[:, 0].tolist():
            length = int(self.lengths[slot])
            finished.append((slot, self.prompt_of[slot], self.generated[slot, :length].tolist(),
                             self.logprobs[slot, :length].tolist()))
        self.active &= ~ended
        return finished
