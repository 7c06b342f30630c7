"""`SlotCache`: a static KV cache whose rows (slots) advance independently.

transformers' `StaticCache` writes every row of a decode step at one shared position, so a batch stays
together from its prefill until its longest member ends. Here each slot has its own write position: a slot
whose sequence has finished takes the next waiting prompt (its prefill is copied into the slot,
`fill_slots`) while the other slots go on decoding. The buffers are allocated once and updated in place,
so the decode step keeps fixed shapes and addresses (CUDA graphs still apply). Without a graph the step may
attend to a `window`, the cache's first positions up to the furthest one an active slot has reached: a decode
step reads every cached key and value it attends to, and on a CPU that reading is most of its time.
"""

from __future__ import annotations

import torch
from transformers import StaticCache
from transformers.cache_utils import Cache, StaticLayer


class SlotLayer(StaticLayer):
    """One layer's keys and values, (B, H, L, D); a decode step writes row b at ``write_positions[b]``."""

    def __init__(self, max_cache_len: int, write_positions: torch.Tensor):
        super().__init__(max_cache_len=max_cache_len)
        self.write_positions = write_positions
        self.rows = torch.arange(write_positions.shape[0], device=write_positions.device)
        self.window: int | None = None  # positions attended to; None: all

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if key_states.shape[-2] != 1:
            raise ValueError("a SlotCache takes one token per slot per step; prefills go through `fill_slots`")
        self.keys[self.rows, :, self.write_positions] = key_states[:, :, 0]
        self.values[self.rows, :, self.write_positions] = value_states[:, :, 0]
        return self.keys[:, :, :self.window], self.values[:, :, :self.window]


class SlotCache(Cache):
    """``batch_size`` slots of ``max_cache_len`` positions each, for every layer of ``config``'s model.

    ``write_positions`` (B,) long: where each slot's next token goes; the decoder advances it in place.
    """

    def __init__(self, config, batch_size: int, max_cache_len: int, device: torch.device):
        text_config = config.get_text_config(decoder=True)
        layer_types = getattr(text_config, "layer_types", None) or ["full_attention"]
        if any(kind != "full_attention" for kind in layer_types):
            raise ValueError(f"the static decoder supports full-attention models only, not layer types "
                             f"{sorted(set(layer_types))}; use the transformers backend")
        self.write_positions = torch.zeros(batch_size, dtype=torch.long, device=device)
        super().__init__(layers=[SlotLayer(max_cache_len, self.write_positions)
                                 for _ in range(text_config.num_hidden_layers)])

    def set_window(self, window: int | None) -> None:
        """Attend to the first ``window`` positions of every slot (None: all of them)."""
        for layer in self.layers:
            layer.window = window

    def fill_slots(self, slots: torch.Tensor, source: Cache, length: int, rows: torch.Tensor | None = None) -> None:
        """Copy the first ``length`` positions of ``source``'s rows (a prefill's `StaticCache`, or another
        `SlotCache`: its ``rows`` (S,), default all, in the order of ``slots`` (S,)) into those slots, and point
        their write positions just after them."""
        for layer, copied in zip(self.layers, source.layers, strict=True):
            keys, values = copied.keys[:, :, :length], copied.values[:, :, :length]
            if rows is not None:
                keys, values = keys[rows], values[rows]
            if not layer.is_initialized:  # allocated at the first fill, in the source's dtype, heads and device
                batch_size = self.write_positions.shape[0]
                layer.lazy_initialization(keys[:1].expand(batch_size, -1, -1, -1),
                                          values[:1].expand(batch_size, -1, -1, -1))
            layer.keys[slots, :, :length] = keys
            layer.values[slots, :, :length] = values
        self.write_positions[slots] = length
