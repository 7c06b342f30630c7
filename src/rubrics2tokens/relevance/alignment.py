"""Character <-> token alignment for generated token ids.

TRL decodes a completion with ``skip_special_tokens=True`` and the verifiers report character spans
in that text. To give those spans to the policy's tokens we need each generated token's character
range in the decoded text, computed from the ids themselves (re-tokenizing the text could produce
other ids: "re-tokenization drift").
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Sequence

import torch
from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

TokenSpans = list[tuple[int, int]]
"""Per token, its half-open character range in the decoded text; special tokens get an empty range."""

@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's reversible byte <-> printable-unicode table, inverted (char -> byte)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def _is_byte_level(tokenizer: PreTrainedTokenizerBase) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and "ByteLevel" in type(backend.decoder).__name__ \
        if backend is not None and backend.decoder is not None else False


def _byte_level_pieces(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int], special: set[int]
                       ) -> list[bytes] | None:
    table = _byte_decoder()
    pieces = []
    for token_id, token in zip(ids, tokenizer.convert_ids_to_tokens(list(ids))):
        if token_id in special:
            pieces.append(b"")
        elif token is None or any(ch not in table for ch in token):
            return None  # an added token with plain text: let the generic path handle it
        else:
            pieces.append(bytes(table[ch] for ch in token))
    return pieces


def _byte_owners(data: bytes, text: str) -> list[int]:
    """The index of the character of ``text`` (``data`` decoded with ``errors="replace"``) each byte of ``data``
    decodes into. A sampled policy can emit bytes that form no character (the start of an emoji, then a letter):
    the decoder replaces each such run with one U+FFFD, whose byte count is then not U+FFFD's own 3 but the longest
    run from here that decodes to that one character."""
    owners, position = [], 0
    for index, char in enumerate(text):
        if char == "\ufffd":
            width = max(n for n in range(1, min(4, len(data) - position) + 1)
                        if data[position:position + n].decode("utf-8", errors="replace") == "\ufffd")
        else:
            width = len(char.encode("utf-8"))
        owners.extend([index] * width)
        position += width
    return owners


def _spans_from_bytes(pieces: list[bytes], text: str) -> TokenSpans | None:
    """Turn per-token byte strings into character ranges of ``text``; a token covering part of a
    multi-byte character overlaps that whole character."""
    data = b"".join(pieces)
    if data.decode("utf-8", errors="replace") != text:
        return None
    char_of_byte = _byte_owners(data, text)
    spans, position = [], 0
    for piece in pieces:
        if not piece:
            spans.append((char_of_byte[position] if position < len(data) else len(text),) * 2)
        else:
            first, last = char_of_byte[position], char_of_byte[position + len(piece) - 1]
            spans.append((first, last + 1))
        position += len(piece)
    return spans


def _streaming_spans(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int], special: set[int], text: str
                     ) -> TokenSpans | None:
    """Generic path, as a streaming detokenizer: decode from the last emitted boundary and emit text
    only once it no longer ends in U+FFFD (an incomplete character). The tokens that waited for one
    emission (the bytes of one character under byte fallback) all get that emission's range."""
    spans: TokenSpans = [(0, 0)] * len(ids)
    window_start, read_start, end = 0, 0, 0
    waiting: list[int] = []
    for j, token_id in enumerate(ids):
        if token_id in special:
            spans[j] = (end, end)
            continue
        waiting.append(j)
        emitted = tokenizer.decode(list(ids[window_start:read_start]), skip_special_tokens=True)
        current = tokenizer.decode(list(ids[window_start:j + 1]), skip_special_tokens=True)
        if len(current) <= len(emitted) or current.endswith("\ufffd"):
            continue
        if not current.startswith(emitted) or not text.startswith(current[len(emitted):], end):
            return None
        piece = len(current) - len(emitted)
        for k in waiting:
            spans[k] = (end, end + piece)
        waiting.clear()
        end += piece
        window_start, read_start = read_start, j + 1
    for k in waiting:  # tokens that never completed a character (e.g. a truncated multi-byte tail)
        spans[k] = (end, len(text))
    return spans if end == len(text) or waiting else None


def _prefix_spans(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int]) -> TokenSpans:
    """Slow but exact by definition: token j ends where decode(ids[:j+1]) ends (O(T^2))."""
    spans, previous = [], 0
    for j in range(len(ids)):
        end = max(previous, len(tokenizer.decode(list(ids[:j + 1]), skip_special_tokens=True).rstrip("\ufffd")))
        spans.append((previous, end))
        previous = end
    return spans


def token_char_spans(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int]) -> tuple[str, TokenSpans]:
    """Decode ``ids`` as TRL does (``skip_special_tokens=True``) and return the text and every token's
    character range in it. Byte-level BPE tokenizers (GPT-2, Llama-3, Qwen, SmolLM) take an exact
    byte-mapping path; others a streaming decode; an exact O(T^2) prefix decode is the fallback."""
    ids = [int(i) for i in ids]
    text = tokenizer.decode(ids, skip_special_tokens=True)
    special = set(tokenizer.all_special_ids)
    spans = None
    if _is_byte_level(tokenizer):
        pieces = _byte_level_pieces(tokenizer, ids, special)
        spans = _spans_from_bytes(pieces, text) if pieces is not None else None
    if spans is None:
        spans = _streaming_spans(tokenizer, ids, special, text)
    if spans is None:
        logger.debug("streaming detokenization disagreed with the full decode; using prefix decoding")
        spans = _prefix_spans(tokenizer, ids)
    return text, spans


def spans_to_token_mask(spans: Sequence[tuple[int, int]], token_spans: TokenSpans, length: int) -> torch.Tensor:
    """``(length,)`` float mask: 1 where a token overlaps any character span (a token is 1 if any of its
    characters is 1), 0 elsewhere; empty token ranges (special tokens) never overlap."""
    mask = torch.zeros(length)
    if not spans or not token_spans:
        return mask
    bounds = torch.tensor(token_spans, dtype=torch.long)  # (T_i, 2)
    marks = torch.tensor(list(spans), dtype=torch.long)  # (S, 2)
    starts, ends = bounds[:, :1], bounds[:, 1:]
    overlap = (starts < marks[:, 1]) & (marks[:, 0] < ends) & (starts < ends)  # (T_i, S)
    mask[: len(token_spans)] = overlap.any(dim=1).float()
    return mask
