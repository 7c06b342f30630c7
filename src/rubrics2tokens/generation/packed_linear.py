"""Linear layers on prepacked oneDNN weights, for decoding in bf16 on a CPU.

A decode step of a small policy multiplies a few rows by every weight matrix, so its cost is reading the
weights. oneDNN reads a bf16 weight kept in PyTorch's plain layout more slowly than the same weight
reordered once into its own blocked layout (what torch.compile does for a frozen inference graph): on the
2-core Xeon of docs/performance.md the 30 layers of SmolLM2-135M at 8 rows took 23 ms plain and 15 ms
packed. `packed_linears` reorders every bf16 `nn.Linear` weight of a model once, when decoding starts,
and routes the layers through the packed copies until it ends; weights change between rollouts (the
policy trains), so the packing is redone at each decode, one pass over the weights.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch


def can_pack(model: torch.nn.Module) -> bool:
    """A bf16 model on a CPU whose oneDNN build computes bf16 (the private ops torch.compile uses exist)."""
    parameter = next(model.parameters())
    private_ops = ("_is_mkldnn_bf16_supported", "_reorder_linear_weight", "_linear_pointwise")
    return (parameter.device.type == "cpu" and parameter.dtype == torch.bfloat16
            and torch.backends.mkldnn.is_available() and all(hasattr(torch.ops.mkldnn, op) for op in private_ops)
            and torch.ops.mkldnn._is_mkldnn_bf16_supported())


@contextlib.contextmanager
def packed_linears(model: torch.nn.Module, rows: int) -> Iterator[None]:
    """Within the block, ``model``'s bf16 linear layers compute on packed weights (``rows``: the usual number
    of input rows, oneDNN's layout hint). Without grad only; a model that `can_pack` refuses is left as it is."""
    if not can_pack(model):
        yield
        return
    packed = [module for module in model.modules()
              if type(module) is torch.nn.Linear and module.weight.dtype == torch.bfloat16]
    for module in packed:
        weight = torch.ops.mkldnn._reorder_linear_weight(module.weight.detach(), rows)
        module.forward = functools.partial(_packed_forward, weight, module.bias)
    try:
        yield
    finally:
        for module in packed:
            del module.forward  # the class's own forward again


def _packed_forward(weight: torch.Tensor, bias: torch.Tensor | None, inputs: torch.Tensor) -> torch.Tensor:
    """``(..., in)`` -> ``(..., out)`` through oneDNN's linear on a packed weight."""
    rows = inputs.reshape(-1, inputs.shape[-1])
    output = torch.ops.mkldnn._linear_pointwise(rows, weight, bias, "none", [], "")
    return output.reshape(*inputs.shape[:-1], output.shape[-1])
