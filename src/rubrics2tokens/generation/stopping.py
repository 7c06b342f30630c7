"""The token ids that end a response.

Chat models often stop on more than the tokenizer's EOS: Qwen and Llama instruct models list several ids in
``generation_config.eos_token_id`` (an end-of-turn and an end-of-text token). Every place that asks "did this
response stop on its own?" (truncation, the stop a verdict blames, the decoders) uses this one set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def stop_token_ids(tokenizer: Any, generation_config: Any = None) -> list[int]:
    """The tokenizer's EOS id and every id in ``generation_config.eos_token_id`` (an int, a list or None), sorted."""
    configured = getattr(generation_config, "eos_token_id", None)
    configured = configured if isinstance(configured, (list, tuple)) else [configured]
    return sorted({tokenizer.eos_token_id, *configured} - {None})


def ends_with_stop(ids: Sequence[int], stop_ids: Sequence[int]) -> bool:
    """Whether a response (its token ids, padding removed) ended on a stop token rather than at the length limit."""
    return bool(ids) and ids[-1] in stop_ids
