"""Concurrent HTTP requests through the gateway (httpx, asyncio), recorded as Observations.

Retries happen only in `wait_until_answering`, while the gateway warms up; the checks see every
failure as it happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from igwlab.urls import unresolved

WARMING_STATUSES = {502, 503, 504}
DRAIN_S = 1.0


@dataclass
class Observation:
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    text: str = ""
    error: str | None = None  # dns | connect | timeout | protocol | bad-json | bad-stream
    error_detail: str = ""
    elapsed_s: float = 0.0
    ttft_s: float | None = None
    stream_chunks: int = 0
    stream_done: bool = False
    stream_text: str = ""
    chunk_times_s: list[float] = field(default_factory=list)  # arrival of each event, from the request's start

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None

    @property
    def pod(self) -> str | None:
        return self.headers.get("x-inference-pod")

    @property
    def model(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("model"), str):
            return str(self.body["model"])
        return None

    @property
    def error_message(self) -> str:
        if isinstance(self.body, dict):
            error = self.body.get("error")
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                return str(error["message"])
            if isinstance(error, str):
                return error
            if isinstance(self.body.get("message"), str):
                return str(self.body["message"])
        return self.text[:200]

    def outcome(self) -> str:
        """A short label: `200`, `503`, `connect`, `timeout`..."""
        if self.error and self.error not in ("bad-json", "bad-stream"):
            return self.error
        return str(self.status)


class Engine:
    def __init__(
        self,
        base_url: str,
        *,
        concurrency: int = 10,
        timeout_s: float = 60.0,
        headers_for_model: Callable[[str], dict[str, str] | None] | None = None,
    ) -> None:
        """`headers_for_model(model)` adds headers to every request for that model (verify sends each lab
        model's InferenceObjective header this way)."""
        self.base_url = base_url.rstrip("/")
        self._headers_for_model = headers_for_model
        self.concurrency = max(1, concurrency)
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None
        self._slots = asyncio.Semaphore(self.concurrency)

    async def __aenter__(self) -> Engine:
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(self.timeout_s, connect=min(5.0, self.timeout_s)),
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        assert self._client is not None, "use Engine as an async context manager"
        return self._client

    def _headers(self, body: dict[str, Any], headers: dict[str, str] | None) -> dict[str, str] | None:
        extra = self._headers_for_model(str(body.get("model"))) if self._headers_for_model else None
        if not extra:
            return headers
        return {**extra, **(headers or {})}

    async def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Observation:
        headers = self._headers(body, headers)
        async with self._slots:
            start = time.perf_counter()
            try:
                response = await self.client.post(path, json=body, headers=headers)
            except httpx.HTTPError as error:
                return _failed(error, time.perf_counter() - start)
            observation = Observation(
                status=response.status_code,
                headers={k.lower(): v for k, v in response.headers.items()},
                text=response.text[:2000],
                elapsed_s=time.perf_counter() - start,
            )
            try:
                observation.body = response.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                # Error pages are often plain text: only a 200 that is not JSON is itself a fault.
                if response.status_code == 200:
                    observation.error = "bad-json"
            return observation

    async def stream(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Observation:
        """POST with `stream: true` and read the server-sent events to `data: [DONE]`."""
        headers = self._headers(body, headers)
        async with self._slots:
            start = time.perf_counter()
            observation = Observation(status=None)
            try:
                async with self.client.stream("POST", path, json={**body, "stream": True}, headers=headers) as response:
                    observation.status = response.status_code
                    observation.headers = {k.lower(): v for k, v in response.headers.items()}
                    if response.status_code != 200:
                        raw = (await response.aread()).decode(errors="replace")
                        observation.text = raw[:2000]
                        with contextlib.suppress(json.JSONDecodeError):
                            observation.body = json.loads(raw)
                        return observation
                    pieces: list[str] = []
                    lines = response.aiter_lines()
                    async for line in lines:
                        if not line.startswith("data:"):
                            if len(observation.text) < 2000:  # what came instead of events, for the hint
                                observation.text += line + "\n"
                            continue
                        payload = line[5:].strip()
                        if payload == "[DONE]":
                            observation.stream_done = True
                            break
                        if observation.ttft_s is None:
                            observation.ttft_s = time.perf_counter() - start
                        observation.stream_chunks += 1
                        observation.chunk_times_s.append(time.perf_counter() - start)
                        try:
                            chunk = json.loads(payload)
                        except json.JSONDecodeError:
                            observation.error = "bad-stream"
                            observation.error_detail = f"not JSON: {payload[:80]}"
                            break
                        pieces.append(_chunk_text(chunk))
                    observation.stream_text = "".join(pieces)
                    if observation.stream_done:
                        observation.elapsed_s = time.perf_counter() - start
                        await _drain(lines)
                        return observation
            except httpx.HTTPError as error:
                failed = _failed(error, time.perf_counter() - start)
                observation.error, observation.error_detail = failed.error, failed.error_detail
            observation.elapsed_s = time.perf_counter() - start
            return observation

    async def post_many(self, path: str, bodies: Sequence[dict[str, Any]]) -> list[Observation]:
        return list(await asyncio.gather(*(self.post(path, body) for body in bodies)))

    async def wait_until_answering(self, path: str, body: dict[str, Any], wait_s: float) -> tuple[Observation, int]:
        """Retry with backoff while nothing answers or the gateway says 502/503/504, up to wait_s."""
        deadline = time.monotonic() + wait_s
        delay = 0.25
        attempts = 0
        while True:
            attempts += 1
            observation = await self.post(path, body)
            warming = observation.error in ("connect", "timeout") or observation.status in WARMING_STATUSES
            if not warming or time.monotonic() + delay > deadline:
                return observation, attempts
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def _drain(lines: AsyncIterator[str]) -> None:
    """Read a stream past `data: [DONE]` to the end of its body, so the connection goes back to
    the pool instead of being closed. Bounded: a server that keeps the body open after [DONE]
    costs at most DRAIN_S, and then only that connection."""
    with contextlib.suppress(httpx.HTTPError, asyncio.TimeoutError):
        await asyncio.wait_for(_consume(lines), timeout=DRAIN_S)


async def _consume(lines: AsyncIterator[str]) -> None:
    async for _ in lines:
        pass


def _chunk_text(chunk: Any) -> str:
    try:
        choice = chunk["choices"][0]
    except (KeyError, IndexError, TypeError):
        return ""
    if isinstance(choice.get("text"), str):
        return str(choice["text"])
    delta = choice.get("delta") or {}
    return str(delta.get("content") or "")


def _unresolved(error: BaseException) -> bool:
    """The host name did not resolve (getaddrinfo failed), somewhere in the exception's causes."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return True
        seen = seen.__cause__ or seen.__context__
    return unresolved(str(error))


def _failed(error: httpx.HTTPError, elapsed: float) -> Observation:
    if isinstance(error, httpx.ConnectError) and _unresolved(error):
        kind = "dns"
    elif isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        kind = "connect"
    elif isinstance(error, httpx.TimeoutException):
        kind = "timeout"
    else:
        kind = "protocol"
    return Observation(status=None, error=kind, error_detail=str(error) or type(error).__name__, elapsed_s=elapsed)
