"""The HTTP client of `igwlab load`: aiohttp, one session per worker, connections kept alive.

Every stream is read to the end of its body, past `data: [DONE]`, so its connection goes back to
the pool instead of being closed; a connection counter (aiohttp's tracing hooks) shows how many
TCP connections a stage opened. Times come from `time.perf_counter()`, one clock for the whole
machine on Linux and macOS, so worker processes can share a stage start.
"""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace
from typing import Any

import aiohttp

from igwlab.observe.metrics import RequestRecord

POD_HEADER = "x-inference-pod"


class LoadClient:
    """POST JSON bodies to one base URL with at most `max_connections` connections.

    Use as an async context manager. `send` fills a RequestRecord's outcome and timings; it
    never raises for what the server or the network did.
    """

    def __init__(self, base_url: str, *, max_connections: int, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_connections = max(1, max_connections)
        self.timeout_s = timeout_s
        self.connections_opened = 0
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LoadClient:
        tracing = aiohttp.TraceConfig()
        tracing.on_connection_create_end.append(self._connection_opened)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0, keepalive_timeout=75),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s, connect=min(5.0, self.timeout_s)),
            trace_configs=[tracing],
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _connection_opened(self, session: aiohttp.ClientSession, context: SimpleNamespace, params: Any) -> None:
        self.connections_opened += 1

    async def send(
        self, path: str, payload: bytes, headers: dict[str, str], record: RequestRecord, *, stream: bool, origin: float
    ) -> None:
        """Send one request and record it. The actual send time is when this coroutine starts:
        `record.sent_s` is that moment less `origin` (a `perf_counter()` value, the stage start);
        `latency_s` and the token times run from it."""
        assert self._session is not None, "use LoadClient as an async context manager"
        start = time.perf_counter()
        record.sent_s = start - origin
        try:
            async with self._session.post(self.base_url + path, data=payload, headers=headers) as response:
                record.status = response.status
                record.pod = response.headers.get(POD_HEADER)
                if response.status != 200:
                    text = (await response.read()).decode(errors="replace")
                    record.error_detail = _error_message(text)
                elif stream:
                    await _read_stream(response, record, start)
                else:
                    _read_body(await response.read(), record)
        except asyncio.TimeoutError:
            record.error, record.error_detail = "timeout", f"no complete answer within {self.timeout_s:g}s"
        except aiohttp.ClientConnectorError as error:
            record.error, record.error_detail = "connect", str(error)
        except aiohttp.ClientError as error:
            record.error, record.error_detail = "protocol", str(error) or type(error).__name__
        record.latency_s = time.perf_counter() - start


async def _read_stream(response: aiohttp.ClientResponse, record: RequestRecord, start: float) -> None:
    """Server-sent events to the end of the body: a time for each content-bearing chunk, the
    usage report if the server sent one, `[DONE]` expected last."""
    done = False
    chunks = 0
    pending = b""
    times = record.token_times_s
    async for data in response.content.iter_any():
        now = time.perf_counter() - start
        lines = (pending + data).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                done = True
                continue
            if record.error:
                continue  # already bad: read on only to free the connection
            try:
                chunk = json.loads(payload)
            except ValueError:
                record.error, record.error_detail = "bad-stream", f"not JSON: {payload[:80]!r}"
                continue
            if _has_content(chunk):
                times.append(now)
                chunks += 1
            _take_usage(chunk, record)
    if not record.usage_reported:
        record.output_tokens = chunks
    if not done and not record.error:
        record.error, record.error_detail = "bad-stream", f"the stream ended after {chunks} chunks without [DONE]"


def _read_body(raw: bytes, record: RequestRecord) -> None:
    """A whole answer: no token times; output tokens only from its usage report."""
    try:
        body = json.loads(raw)
    except ValueError:
        record.error, record.error_detail = "bad-json", f"not JSON: {raw[:80]!r}"
        return
    if isinstance(body, dict):
        _take_usage(body, record)


def _has_content(chunk: Any) -> bool:
    try:
        choice = chunk["choices"][0]
    except (KeyError, IndexError, TypeError):
        return False
    if not isinstance(choice, dict):
        return False
    if choice.get("text"):
        return True
    for key in ("delta", "message"):
        part = choice.get(key)
        if isinstance(part, dict) and part.get("content"):
            return True
    return False


def _take_usage(chunk: Any, record: RequestRecord) -> None:
    usage = chunk.get("usage") if isinstance(chunk, dict) else None
    if not isinstance(usage, dict):
        return
    completion = usage.get("completion_tokens")
    if isinstance(completion, int) and not isinstance(completion, bool):
        record.output_tokens = completion
        record.usage_reported = True
    prompt = usage.get("prompt_tokens")
    if isinstance(prompt, int) and not isinstance(prompt, bool):
        record.prompt_tokens = prompt


def _error_message(text: str) -> str:
    """The message of an OpenAI-style error body, else the start of the text."""
    try:
        body = json.loads(text)
    except ValueError:
        return text[:200]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:200]
        if isinstance(error, str):
            return error[:200]
        if isinstance(body.get("message"), str):
            return str(body["message"])[:200]
    return text[:200]
