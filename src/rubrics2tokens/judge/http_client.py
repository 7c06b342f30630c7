"""A small stdlib HTTP/1.1 client for chat completions (no extra dependency): one JSON POST on a fresh
connection, the whole reply read (content-length, chunked or until close), and the pieces of a reply the
judge reads (the assistant text, Retry-After)."""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any, Mapping

LOGGED_REPLY_CHARS = 200


@dataclass
class HttpReply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


async def post_json(url: str, payload: Mapping[str, Any], headers: Mapping[str, str]) -> HttpReply:
    """POST ``payload`` as JSON over HTTP/1.1 on a fresh connection and read the whole reply."""
    parts = urllib.parse.urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or ""
    reader, writer = await asyncio.open_connection(host, parts.port or (443 if secure else 80),
                                                   ssl=_tls_context() if secure else None)
    try:
        body = json.dumps(payload).encode("utf-8")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        head_lines = [f"POST {target or '/'} HTTP/1.1", f"Host: {parts.netloc.rpartition('@')[2]}",
                      "Content-Type: application/json", "Accept: application/json",
                      f"Content-Length: {len(body)}", "Connection: close",
                      *(f"{name}: {value}" for name, value in headers.items())]
        writer.write(("\r\n".join(head_lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        return await _read_reply(reader)
    finally:
        writer.close()


async def _read_reply(reader: asyncio.StreamReader) -> HttpReply:
    protocol, status, *_ = (await reader.readline()).decode("latin-1").split(maxsplit=2) + ["", ""]
    if not protocol.startswith("HTTP/") or not status.isdigit():
        raise ValueError(f"malformed HTTP status line {protocol} {status}")
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked_body(reader)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:  # the server marks the end of the body by closing the connection
        body = await reader.read()
    return HttpReply(status=int(status), headers=headers, body=body)


async def _read_chunked_body(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while size := int((await reader.readline()).split(b";")[0], 16):
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)  # the CRLF after each chunk
    return b"".join(chunks)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def chat_content(body: bytes) -> str | None:
    """The assistant text of a chat-completions reply, or None when the body is not one."""
    try:
        content = json.loads(body)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def usage_tokens(body: bytes) -> tuple[int, int] | None:
    """(prompt_tokens, completion_tokens) of a chat-completions reply's ``usage``, or None when it has none
    (servers may leave it out)."""
    try:
        usage = json.loads(body)["usage"]
        tokens = usage["prompt_tokens"], usage["completion_tokens"]
    except (ValueError, KeyError, TypeError):
        return None
    return tokens if all(isinstance(count, int) for count in tokens) else None


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds; the HTTP-date form is not worth parsing here (backoff applies instead)."""
    try:
        seconds = float(headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def truncate(text: str) -> str:
    """``text`` cut to `LOGGED_REPLY_CHARS` for a log line."""
    return text if len(text) <= LOGGED_REPLY_CHARS else text[:LOGGED_REPLY_CHARS] + "..."
