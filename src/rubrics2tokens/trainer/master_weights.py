"""Float32 master weights for a policy that trains in bf16 (or fp16).

A bf16 policy computes its forward and backward at the CPU's or GPU's bf16 rate, but an optimizer that
updates bf16 weights in place loses every update smaller than the weight's rounding step (a 2e-5
learning rate on a weight of 0.05 moves it by less than bf16's step of 2.4e-4 near that value). The
classic remedy: the optimizer keeps a float32 copy of each weight and its AdamW moments, adds the
gradient's update to the float32 copy, and writes the rounded copy back into the bf16 weight the model
computes with.

`with_master_weights` turns the optimizer class `Trainer` would pick (AdamW, fused or not, or any torch
optimizer) into one that does this; the trainer uses it when the policy's parameters are low precision.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

LOW_PRECISION = (torch.bfloat16, torch.float16)
MASTER_KEY = "master_weights"  # extra key of the optimizer's state dict: a checkpoint resumes the exact weights


class MasterWeights:
    """Mixin before a torch optimizer class: the optimizer steps float32 copies of the parameters.

    Parameters already in float32 are stepped as they are. After each step the float32 copies are
    written back into the model's parameters (rounded to their dtype) and their gradients freed.
    """

    def __init__(self, params: Iterable[Any], *args: Any, **kwargs: Any):
        groups = list(params)
        if groups and isinstance(groups[0], torch.Tensor):
            groups = [{"params": groups}]
        self._pairs: list[tuple[torch.Tensor, torch.Tensor]] = []  # (model parameter, float32 master)
        master_groups = []
        for group in groups:
            masters = [self._master(param) for param in group["params"]]
            master_groups.append({**group, "params": masters})
        super().__init__(master_groups, *args, **kwargs)

    def _master(self, param: torch.Tensor) -> torch.Tensor:
        if param.dtype not in LOW_PRECISION:
            return param
        master = param.detach().float().clone().requires_grad_(True)
        self._pairs.append((param, master))
        return master

    @torch.no_grad()
    def step(self, closure=None):
        for param, master in self._pairs:
            master.grad = None if param.grad is None else param.grad.float()
        loss = super().step(closure)
        for param, master in self._pairs:
            param.copy_(master)
            master.grad = None
        return loss

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state[MASTER_KEY] = [master for _, master in self._pairs]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        masters = state_dict.pop(MASTER_KEY, None)
        if masters is not None and len(masters) != len(self._pairs):
            raise ValueError(f"the checkpoint holds {len(masters)} master weights, this optimizer has "
                             f"{len(self._pairs)} low-precision parameters")
        super().load_state_dict(state_dict)
        if masters is None:  # a checkpoint written without master weights: start from the model's weights
            return
        with torch.no_grad():
            for (param, master), saved in zip(self._pairs, masters):
                master.copy_(saved)
                param.copy_(master)


def with_master_weights(optimizer_cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """``optimizer_cls`` stepping float32 master copies of low-precision parameters (`MasterWeights`)."""
    return type(f"MasterWeight{optimizer_cls.__name__}", (MasterWeights, optimizer_cls), {})


def has_low_precision_parameters(model: torch.nn.Module) -> bool:
    return any(param.dtype in LOW_PRECISION for param in model.parameters() if param.requires_grad)
