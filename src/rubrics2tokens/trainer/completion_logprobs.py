"""The policy's log-probabilities of its completion tokens, computed fast on a CPU.

TRL 1.16 scores completions through a fused LM head (`trl.trainer.utils.add_fused_lm_head`): the model
is called with ``labels`` and ``fused_lm_head=True`` and returns per-token log-probabilities and
entropies without materialising the ``(B, L, V)`` logits. On CUDA that is a Triton kernel over the
labelled positions only. On a CPU it falls back to torch operations over *every* position, prompts and
padding included, in vocabulary tiles folded by a dozen float32 passes each: on the demo (8 x ~160
positions, 49,152 logits) 3.7 of the update's 5.6 s (measured with torch's profiler, docs/performance.md).

`score_labelled_rows_on_cpu` puts a plain path in front of it on a CPU: the LM head over the labelled
positions only (the completion tokens, about half the rows), one log-softmax in float32, autograd for
the backward. It materialises ``(labelled positions, V)`` float32 logits, so with autograd on it runs only
while they fit in `MAX_LOGITS`; without autograd (the held-out evaluation: 32 completions of 128 tokens are
1.5 times that) it scores them in pieces that fit. Larger training batches, models whose head scales or caps
its logits, and non-CPU devices keep TRL's kernel (the device is checked at each call: the trainer moves the model after this is added). The
output is TRL's `FusedCausalLMOutput` with the fields TRL's GRPO loss reads.
"""

from __future__ import annotations

import functools
import types

import torch
from transformers import PreTrainedModel
from trl.trainer.utils import FusedCausalLMOutput

LOGPROB_HEADS = ("plain", "fused")  # the `logprob_head` choices: this module's path, or TRL's kernel alone
MAX_LOGITS = 2**27
"""Most ``positions x vocabulary`` float32 logits the plain path materialises (512 MB each; autograd keeps
two such tensors until the backward)."""


def score_labelled_rows_on_cpu(model: PreTrainedModel, temperature: float) -> bool:
    """Put the plain CPU path in front of the fused LM head TRL added to ``model``; True when it did.

    Call after TRL's `add_fused_lm_head` (GRPOTrainer's ``__init__``): the path falls through to TRL's
    forward for everything it does not handle.
    """
    config = model.config.get_text_config()
    scales_logits = any(getattr(config, name, None) is not None for name in
                        ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                         "logits_scaling"))
    if scales_logits or model.get_output_embeddings() is None:
        return False
    fused_forward = model.forward

    @functools.wraps(type(model).forward)  # generate() checks its keyword arguments against this signature
    def forward(self, *args, fused_lm_head=False, labels=None, **kwargs):
        plain = (fused_lm_head and labels is not None and self.device.type == "cpu"
                 and kwargs.get("shift_labels") is None and kwargs.get("num_items_in_batch") is None
                 and not kwargs.get("output_router_logits"))
        vocab = self.get_output_embeddings().weight.shape[0]
        # with autograd on, every piece's logits live until the backward: the plain path only while they fit
        if not plain or (torch.is_grad_enabled() and int((labels[:, 1:] != -100).sum()) * vocab > MAX_LOGITS):
            return fused_forward(*args, fused_lm_head=fused_lm_head, labels=labels, **kwargs)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state[:, :-1]
        targets = labels[:, 1:]
        mask = targets != -100
        rows = max(1, MAX_LOGITS // vocab)  # without autograd (held-out evaluation) a piece is freed after use
        pieces = [_scores(self.get_output_embeddings()(piece).float() / temperature, piece_targets)
                  for piece, piece_targets in zip(hidden[mask].split(rows), targets[mask].split(rows))]
        log_probs, entropy = (torch.cat(values) for values in zip(*pieces))
        return FusedCausalLMOutput(
            loss=-log_probs.sum() / mask.sum().clamp(min=1),
            log_probs=_scatter(log_probs, mask),
            entropy=_scatter(entropy, mask),
            label_mask=mask,
        )

    model.forward = types.MethodType(forward, model)
    return True


def _scores(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, V)`` float32 logits of N labelled positions and their ``(N,)`` targets -> (log-probability of each
    target, entropy of each position's distribution), both ``(N,)``."""
    log_softmax = logits.log_softmax(-1)
    return log_softmax.gather(-1, targets.unsqueeze(-1)).squeeze(-1), -(log_softmax.exp() * log_softmax).sum(-1)


def _scatter(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(N,)`` values of the labelled positions into a ``mask``-shaped tensor, zero elsewhere (TRL's layout)."""
    return values.new_zeros(mask.shape).masked_scatter(mask, values)
