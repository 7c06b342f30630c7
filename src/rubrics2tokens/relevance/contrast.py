"""`contrast` relevance (method.md §3; the idea of CoRT): no trained model, only the policy itself.

For rubric k of response i, w_{i,k,t} says how much the rubric explains token t: the policy's
log-probability of the token with the rubric in the prompt minus without it,

    delta_t = log p(o_t | prompt with rubric k, o_<t) - log p(o_t | prompt without it, o_<t),

signed by the verdict, clipped at 0 and normalized per (response, rubric) into [0, 1]:

    gain_t = delta_t for a pass, -delta_t for a fail;    w_t = max(gain_t, 0) / max(max_t gain_t, scale).

The sign follows method.md §5 (credit for a pass, blame for a fail): under a pass the tokens the rubric
makes more likely are the ones that achieve it; under a fail those are the attempts to comply (the
keyword used once of twice, the bullets begun), progress that must not be blamed, while the tokens the
rubric makes less likely are the ones it argues against (a comma after "no commas", a capital after "all
lowercase"). docs/token-credit.md §5 measures both forms against the held-out labels.

So the most rubric-dependent token gets 1 when the rubric moves some token's probability the verdict's way
by at least ``scale`` nats (e^scale times), and a response the rubric hardly changes gets small weights that
flag nothing (the trainer's ``relevance_threshold``, 0.5 by default: a flagged token is at least half as
rubric-dependent as the most dependent one, and at least e^(scale/2) times more, or less, likely with the
rubric).

"Without the rubric": a testbed prompt states each constraint as one sentence (the family's
instruction), which is removed from the user message. A rubric whose sentence cannot be found in the
prompt (HIR-16K rows, LLM-judged rubrics) is contrasted the other way round: the prompt as it is is
"without", and the prompt followed by the rubric's description is "with".

Cost: one no_grad forward per (response, known rubric) plus one per response, batched; its time is
logged as ``rtt/time/relevance_s`` like the relevance model's. Memory does not grow with the batch or the
vocabulary: only the log-probabilities of the taken tokens are computed, from at most `LOGITS_AT_ONCE`
vocabulary-wide values at a time, or one sequence's logits where they alone are more (a full log-softmax of
the batch would be B x T x V floats: about 160 GB for a 151k vocabulary at the paper's lengths).
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rubrics2tokens.data.schema import Rubric
from rubrics2tokens.data.synthetic import FAMILIES
from rubrics2tokens.verifiers.registry import TESTBED_PREFIX

DEFAULT_SCALE = 2.0

LOGITS_AT_ONCE = 2**27
"""Most vocabulary-wide values held at once (256 MiB of bfloat16 logits, 512 MiB once cast to float32). A
forward takes as many sequences as keep their logits within it (one at least: a single long sequence may
exceed it), and the log-softmax runs over chunks of positions that fit in it."""


def contrast_weights(log_ratio: torch.Tensor, passed: bool, scale: float = DEFAULT_SCALE) -> torch.Tensor:
    """``(N,)`` weights in [0, 1] of one (response, rubric) from its log-ratios delta ``(N,)`` and its verdict."""
    gain = (log_ratio if passed else -log_ratio).clamp(min=0)
    return gain / gain.max().clamp(min=scale) if gain.numel() else gain


def without_rubric(messages: Sequence[dict[str, str]], rubric: Rubric) -> tuple[list[dict], list[dict]]:
    """The chat ``(with, without)`` the rubric, as described in the module docstring."""
    messages = [dict(message) for message in messages]
    user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if user is None:
        raise ValueError("a contrast prompt needs a user message")
    family = (rubric.verifier or "").removeprefix(TESTBED_PREFIX)
    if rubric.verifier and rubric.verifier.startswith(TESTBED_PREFIX) and family in FAMILIES:
        sentence = FAMILIES[family].instruction(rubric.kwargs)
        if sentence in messages[user]["content"]:
            stripped = [dict(m) for m in messages]
            stripped[user]["content"] = " ".join(messages[user]["content"].replace(sentence, " ").split())
            return messages, stripped
    stated = [dict(m) for m in messages]
    stated[user]["content"] = f"{messages[user]['content']}\n\n{rubric.description}"
    return stated, messages


class ContrastRelevance:
    """w from the policy's own log-probabilities with and without each rubric (see the module docstring).

    Verdict-aware: a pass weighs the tokens the rubric makes more likely, a fail those it makes less likely
    (`contrast_weights`), so a fail never blames the attempts to comply.

    Args:
        model: the policy (any causal LM); used under ``no_grad`` in its current mode.
        tokenizer: its tokenizer, with a chat template.
        batch_size: sequences per forward pass at most.
        scale: nats of probability gain that give weight 1 at most (``DEFAULT_SCALE``).
        logits_at_once: vocabulary-wide values held at once (``LOGITS_AT_ONCE``).
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int = 16,
                 scale: float = DEFAULT_SCALE, logits_at_once: int = LOGITS_AT_ONCE):
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.model, self.tokenizer, self.batch_size, self.scale = model, tokenizer, batch_size, scale
        self.logits_at_once = logits_at_once

    def __call__(self, inputs: Any) -> torch.Tensor:
        """``(B, K, T)`` weights for `RelevanceInputs` with ``prompts`` (chat messages); NaN rows: unknown."""
        batch, width, length = inputs.shape
        weights = torch.full((batch, width, length), float("nan"))
        for (i, k), log_ratio in self.log_ratios(inputs).items():
            row = torch.zeros(length)
            row[:log_ratio.numel()] = contrast_weights(log_ratio, bool(inputs.scored.verdicts[i, k]), self.scale)
            weights[i, k] = row
        return weights.to(inputs.completion_ids.device)

    def log_ratios(self, inputs: Any) -> dict[tuple[int, int], torch.Tensor]:
        """(i, k) -> delta ``(completion tokens,)`` of every rubric k with a known verdict on response i."""
        if inputs.prompts is None:
            raise ValueError("contrast relevance needs the prompts of the batch (RelevanceInputs.prompts)")
        # One forward per distinct (response, prompt): the full prompt is shared by all rubrics removed from it.
        sequences: dict[tuple[int, tuple[int, ...]], int] = {}
        pairs: dict[tuple[int, int], tuple[int, int]] = {}  # (i, k) -> indices of its 'with' and 'without'
        completions = [inputs.completion_ids[i][inputs.completion_mask[i].bool()].tolist()
                       for i in range(inputs.shape[0])]
        for i, rubrics in enumerate(inputs.scored.rubrics):
            for k, rubric in enumerate(rubrics):
                if not torch.isnan(inputs.scored.verdicts[i, k]):
                    chats = without_rubric(_messages(inputs.prompts[i]), rubric)
                    keys = [(i, tuple(self._prompt_ids(chat))) for chat in chats]
                    pairs[i, k] = tuple(sequences.setdefault(key, len(sequences)) for key in keys)
        logps = self._completion_logps([(list(prompt), completions[i]) for i, prompt in sequences])
        return {pair: logps[with_rubric] - logps[without] for pair, (with_rubric, without) in pairs.items()}

    def _prompt_ids(self, messages: list[dict]) -> list[int]:
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)

    @torch.no_grad()
    def _completion_logps(self, sequences: list[tuple[list[int], list[int]]]) -> list[torch.Tensor]:
        """Per sequence ``(prompt, completion)``: log p of each completion token ``(len(completion),)``.

        Never a (sequences, length, V) tensor: each forward keeps only the logits from the first position that
        predicts a completion token (``logits_to_keep``, as TRL's own log-probabilities do), and the taken tokens'
        log-probabilities are computed from them a chunk of positions at a time, in float32.
        """
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        results: list[torch.Tensor | None] = [None] * len(sequences)
        for chunk in self._forwards(sequences):
            rows = [sequences[j][0] + sequences[j][1] for j in chunk]
            width = max(map(len, rows))
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, row in enumerate(rows):  # right padding: positions are those of an unpadded forward
                ids[r, :len(row)] = torch.tensor(row)
                mask[r, :len(row)] = 1
            first = min(len(sequences[j][0]) for j in chunk) - 1  # the first position that predicts a completion
            logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False,
                                logits_to_keep=width - first).logits  # (b, width - first, V)
            row_index, positions, lengths = [], [], []
            for r, j in enumerate(chunk):
                prompt_length, completion_length = map(len, sequences[j])
                row_index += [r] * completion_length
                positions += range(prompt_length - 1, prompt_length - 1 + completion_length)
                lengths.append(completion_length)
            row_index, positions = torch.tensor(row_index, dtype=torch.long), torch.tensor(positions, dtype=torch.long)
            taken = self._taken_logps(logits, row_index.to(device), (positions - first).to(device),
                                      ids[row_index, positions + 1].to(device))  # (completion tokens,)
            for j, logps in zip(chunk, taken.split(lengths)):
                results[j] = logps.cpu()
        return results

    def _forwards(self, sequences: list[tuple[list[int], list[int]]]) -> Iterator[list[int]]:
        """Sequence indices, longest first (similar lengths pad little), grouped into forwards of at most
        `batch_size` sequences whose kept logits (sequences x kept positions x V) fit in `logits_at_once`."""
        vocab = self.model.config.get_text_config().vocab_size
        order = sorted(range(len(sequences)), key=lambda j: -sum(map(len, sequences[j])))
        group: list[int] = []
        for j in order:
            candidate = [*group, j]
            width = sum(map(len, sequences[candidate[0]]))  # the longest: sorted
            kept = width - min(len(sequences[k][0]) for k in candidate) + 1
            if group and (len(candidate) > self.batch_size or len(candidate) * kept * vocab > self.logits_at_once):
                yield group
                candidate = [j]
            group = candidate
        if group:
            yield group

    def _taken_logps(self, logits: torch.Tensor, row_index: torch.Tensor, positions: torch.Tensor,
                     targets: torch.Tensor) -> torch.Tensor:
        """``(N,)`` log-softmax of ``logits (b, P, V)`` at ``(row_index[n], positions[n])``, taken at ``targets[n]``,
        computed over chunks of positions so that at most `logits_at_once` values are cast to float32 at once."""
        step = max(1, self.logits_at_once // logits.shape[-1])
        pieces = [torch.zeros(0, device=logits.device)]  # so that no position at all gives an empty result
        for start in range(0, len(targets), step):
            picked = logits[row_index[start:start + step], positions[start:start + step]].float()  # (n, V)
            taken = picked.gather(-1, targets[start:start + step, None])[:, 0]
            pieces.append(taken - picked.logsumexp(dim=-1))  # log_softmax(x)_t = x_t - logsumexp(x)
        return torch.cat(pieces)


def _messages(prompt: Any) -> list[dict[str, str]]:
    """TRL's prompt column: chat messages, or plain text (one user message)."""
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
