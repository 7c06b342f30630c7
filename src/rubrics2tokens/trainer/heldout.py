"""Held-out evaluation in every run: what the policy does on prompts it never trains on.

TRL's own evaluation loop does the work (``eval_dataset``, ``eval_strategy="steps"``, ``eval_on_start``):
it samples ``num_generations_eval`` completions per held-out prompt with the training sampler and logs
``eval_*`` metrics (the rubric pass rates, ``entropy``, ``completions/mean_length``,
``completions/clipped_ratio``). This module adds what a comparison between runs needs:

- a fixed sampling seed per held-out batch (`heldout_seed`), so every evaluation of a run, and every
  run of a study, samples with the same random numbers (transformers and static backends; vLLM
  samples with its own generator);
- one JSON line per held-out response in ``OUTPUT/heldout/step_<N>.jsonl`` (`response_records`): verdicts,
  length, truncation and the per-token advantages the run's settings give it, for intervals over prompts
  and token-credit heatmaps (`rtt report`);
- ``heldout/*`` names for TRL's ``eval_*`` metrics in ``metrics.jsonl`` (`heldout_name`), an
  evaluation after the last step, and a collapse warning from the records (`HeldoutWriter`): the failure measured in
  docs/testbed.md §3 (entropy 3.4 -> 0.02, 98% of responses at the length limit) shows first as
  held-out entropy falling below `ENTROPY_WARN_FRACTION` of its value at the first evaluation, or as the
  truncated fraction rising above `TRUNCATION_WARN` and above its value at the first evaluation (a base policy that
  already runs long is said so once, at that first evaluation, not taken for a collapse).
"""

from __future__ import annotations

import json
import logging
import math
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase, TrainerCallback

from rubrics2tokens.advantages import response_rewards
from rubrics2tokens.generation.stopping import ends_with_stop
from rubrics2tokens.relevance.alignment import token_char_spans
from rubrics2tokens.scoring.scorer import ScoredBatch

HELDOUT_DIR = "heldout"
ENTROPY_WARN_FRACTION = 0.5
TRUNCATION_WARN = 0.5
logger = logging.getLogger(__name__)
RENAMED = {"rubrics/": "", "completions/mean_length": "mean_length", "completions/clipped_ratio": "truncated_frac"}
"""TRL eval metric (without ``eval_``) -> its held-out name (without ``heldout/``); prefixes end in '/'."""


def heldout_name(key: str) -> str:
    """``eval_rubrics/all_pass`` -> ``heldout/all_pass``; ``eval_completions/clipped_ratio`` ->
    ``heldout/truncated_frac``; any other ``eval_x`` -> ``heldout/x``; other keys unchanged."""
    if not key.startswith("eval_"):
        return key
    name = key.removeprefix("eval_")
    for old, new in RENAMED.items():
        if name == old or (old.endswith("/") and name.startswith(old)):
            name = new + name.removeprefix(old)
            break
    return f"heldout/{name}"


def heldout_seed(base_seed: int, prompt_ids: list[str]) -> int:
    """A sampling seed that depends only on the run's seed and the batch's prompts (not on the step)."""
    return (base_seed * 1_000_003 + zlib.crc32("\n".join(prompt_ids).encode("utf-8"))) % 2**31


def unmasked_completion_mask(completion_ids: torch.Tensor, eos_ids: Sequence[int]) -> torch.Tensor:
    """``(B, T)`` 1 up to and including each completion's first EOS, everywhere in a completion without one: TRL's
    ``completion_mask`` before ``mask_truncated_completions`` zeroes the truncated completions (their loss goes,
    but a held-out record still describes them)."""
    is_eos = torch.isin(completion_ids, torch.tensor(list(eos_ids), device=completion_ids.device))
    length = completion_ids.size(1)
    last = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1), length - 1)
    return (torch.arange(length, device=completion_ids.device)[None, :] <= last[:, None]).int()


def response_records(step: int, prompt_ids: list[str], completion_ids: torch.Tensor, completion_mask: torch.Tensor,
                     scored: ScoredBatch, advantages: torch.Tensor, tokenizer: PreTrainedTokenizerBase,
                     entropies: torch.Tensor, stop_ids: Sequence[int]) -> list[dict[str, Any]]:
    """One record per held-out response (B rows; completion tensors ``(B, T)``, advantages ``(B,)`` or ``(B, T)``,
    entropies ``(B,)``: each response's mean next-token entropy; ``stop_ids``: the ids that end a response).

    ``sample`` numbers the responses of one prompt in batch order; ``advantages`` is the per-token
    advantage the run's settings give the response (GRPO: its response advantage on every token).
    """
    if advantages.dim() == 1:
        advantages = advantages[:, None].expand_as(completion_mask)
    # the rewards' own AON and (weighted) CSR, NaN when nothing is known
    all_pass = response_rewards(scored.verdicts, "aon").tolist()
    satisfaction = response_rewards(scored.verdicts, "csr", scored.rubric_weights).tolist()
    records, samples = [], {}
    for i, prompt_id in enumerate(prompt_ids):
        valid = completion_mask[i].bool()
        ids = completion_ids[i][valid].tolist()
        text, spans = token_char_spans(tokenizer, ids)
        verdicts = [None if torch.isnan(v) else int(v) for v in scored.verdicts[i, :len(scored.rubrics[i])]]
        samples[prompt_id] = samples.get(prompt_id, -1) + 1
        records.append({
            "step": step, "prompt_id": prompt_id, "sample": samples[prompt_id],
            "families": scored.families[i], "verdicts": verdicts,
            "all_pass": None if math.isnan(all_pass[i]) else int(all_pass[i]),
            "satisfaction": None if math.isnan(satisfaction[i]) else satisfaction[i],
            "length": len(ids), "truncated": not ends_with_stop(ids, stop_ids),
            "entropy": round(float(entropies[i]), 4),
            "text": text,
            "tokens": [text[a:b] if b > a else tokenizer.convert_ids_to_tokens(t) for t, (a, b) in zip(ids, spans)],
            "advantages": [round(float(a), 4) for a in advantages[i][valid]],
        })
    return records


def collapse_signals(records: list[dict[str, Any]]) -> tuple[float, float]:
    """(entropy per token, truncated fraction) over every held-out response: read from the records rather than TRL's
    ``eval_entropy``, which averages over its loss mask and so leaves out the responses that
    ``mask_truncated_completions`` drops (the ones a collapse produces)."""
    tokens = sum(record["length"] for record in records)
    entropy = sum(record["entropy"] * record["length"] for record in records) / max(tokens, 1)
    return entropy, sum(bool(record["truncated"]) for record in records) / len(records)


class HeldoutWriter(TrainerCallback):
    """Writes each evaluation's response records, and asks for an evaluation after the last step.

    ``buffer`` is filled by the trainer while it evaluates; each evaluation empties it into
    ``heldout/step_<N>.jsonl`` (a rerun of the same step after a resume overwrites that file).
    """

    def __init__(self, output_dir: str | Path):
        self.folder = Path(output_dir) / HELDOUT_DIR
        self.buffer: list[dict[str, Any]] = []

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps and args.eval_strategy != "no":
            control.should_evaluate = True
        return control

    def on_evaluate(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.buffer:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"step_{state.global_step:06d}.jsonl"
            path.write_text("".join(json.dumps(record) + "\n" for record in self.buffer), encoding="utf-8")
            # the first evaluation on disk, so a resumed run compares with its step 0, not with where it resumed
            first_file = sorted(self.folder.glob("step_*.jsonl"))[0]
            first = first_file.read_text(encoding="utf-8").splitlines()
            first_signals = collapse_signals([json.loads(line) for line in first if line.strip()])
            if first_file == path:  # the policy before training: nothing can have collapsed yet
                self.note_a_long_base_policy(state.global_step, first_signals[1])
            else:
                self.warn_on_collapse(state.global_step, *collapse_signals(self.buffer), *first_signals)
        self.buffer.clear()

    @staticmethod
    def note_a_long_base_policy(step: int, truncated: float) -> None:
        """Say once, plainly, when the policy already runs into the length limit before any training."""
        if truncated > TRUNCATION_WARN:
            logger.info("step %d: before training, %.0f%% of held-out responses already hit the length limit "
                        "(max_completion_length): the base policy writes long; a length warning follows only if "
                        "this rises", step, 100 * truncated)

    @staticmethod
    def warn_on_collapse(step: int, entropy: float, truncated: float, first_entropy: float,
                         first_truncated: float) -> None:
        """Log a warning when held-out entropy falls below its threshold, or truncation rises above its threshold
        and above its first value (module docstring)."""
        if entropy < ENTROPY_WARN_FRACTION * first_entropy:
            logger.warning("step %d: held-out entropy %.3f is below %.0f%% of its first value %.3f: the policy may be "
                           "collapsing (docs/token-credit.md)", step, entropy,
                           100 * ENTROPY_WARN_FRACTION, first_entropy)
        if truncated > TRUNCATION_WARN and truncated > first_truncated:
            logger.warning("step %d: %.0f%% of held-out responses hit the length limit (threshold %.0f%%; %.0f%% at "
                           "the first evaluation): the policy may be collapsing", step, 100 * truncated,
                           100 * TRUNCATION_WARN, 100 * first_truncated)
