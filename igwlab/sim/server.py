"""The simulator's HTTP API (aiohttp): OpenAI completions and chat, SSE streaming, models, metrics."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import uuid
from typing import Any

from aiohttp import ClientPayloadError, web

from igwlab.sim.config import SimConfig
from igwlab.sim.metrics import render_metrics
from igwlab.sim.state import SimState

_WORDS = (
    "the",
    "gateway",
    "routes",
    "each",
    "request",
    "to",
    "the",
    "endpoint",
    "picker",
    "which",
    "scores",
    "every",
    "model",
    "server",
    "by",
    "queue",
    "depth",
    "cache",
    "use",
    "and",
    "adapter",
    "affinity",
    "before",
    "the",
    "proxy",
    "forwards",
    "the",
    "prompt",
)
_ERROR_TYPES = {400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError", 429: "RateLimitError"}

STATE_KEY: web.AppKey[SimState] = web.AppKey("state", SimState)
SLOTS_KEY: web.AppKey[asyncio.Semaphore] = web.AppKey("slots", asyncio.Semaphore)
PORT_KEY: web.AppKey[list[int]] = web.AppKey("port", list)


class SimError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param


def error_response(status: int, message: str, param: str | None = None) -> web.Response:
    """vLLM's (and the simulator's, v0.5+) error shape."""
    kind = _ERROR_TYPES.get(status, "InternalServerError" if status >= 500 else "BadRequestError")
    body = {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return web.json_response(body, status=status)


def _pod_headers(app: web.Application) -> dict[str, str]:
    config = app[STATE_KEY].config
    headers = dict(config.extra_headers)
    if config.pod_name:
        headers["x-inference-pod"] = config.pod_name
        headers["x-inference-port"] = str(app[PORT_KEY][0] if app[PORT_KEY] else config.port)
    if config.namespace:
        headers["x-inference-namespace"] = config.namespace
    return headers


def _prompt_text(body: dict[str, Any], chat: bool) -> str:
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise SimError(400, "messages must be a non-empty list", "messages")
        parts: list[str] = []
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts += [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return " ".join(parts)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return " ".join(prompt)
    if not isinstance(prompt, str):
        raise SimError(400, "prompt must be a string or a list of strings", "prompt")
    return prompt


def _max_tokens(body: dict[str, Any]) -> int:
    value = body.get("max_tokens", body.get("max_completion_tokens", 16))
    if value is None:
        value = 16
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SimError(400, "max_tokens must be a positive integer", "max_tokens")
    return value


class _Request:
    """One parsed generation request."""

    def __init__(self, config: SimConfig, body: Any, chat: bool) -> None:
        if not isinstance(body, dict):
            raise SimError(400, "the request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise SimError(400, "model is required", "model")
        if model not in config.served_models():
            raise SimError(404, f"The model `{model}` does not exist.")  # param null, as vLLM and the real sim
        self.model = model
        self.chat = chat
        self.prompt_tokens = _prompt_text(body, chat).split()
        self.max_tokens = _max_tokens(body)
        if len(self.prompt_tokens) + self.max_tokens > config.max_model_len:
            raise SimError(
                400,
                f"This model's maximum context length is {config.max_model_len} tokens. However, you requested "
                f"{len(self.prompt_tokens) + self.max_tokens} tokens ({len(self.prompt_tokens)} in the messages, "
                f"{self.max_tokens} in the completion). Please reduce the length of the messages or completion.",
            )
        self.stream = bool(body.get("stream"))
        options = body.get("stream_options")
        self.include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        self.is_lora = model != config.model

    def output_tokens(self, config: SimConfig, rng: random.Random) -> list[str]:
        if config.mode == "echo":
            return self.prompt_tokens[: self.max_tokens]
        return [rng.choice(_WORDS) for _ in range(self.max_tokens)]


async def _generate(request: web.Request, chat: bool) -> web.StreamResponse:
    app = request.app
    state = app[STATE_KEY]
    config = state.config
    try:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SimError(400, "the request body is not valid JSON") from None
        parsed = _Request(config, body, chat)
    except SimError as error:
        return error_response(error.status, error.message, error.param)

    if state.waiting >= config.max_waiting_queue_length:
        return error_response(429, "Failed to enqueue request, waiting requests queue is full")
    state.waiting += 1
    if parsed.is_lora:
        state.waiting_loras[parsed.model] += 1
        state.lora_state_changed()
    queued_since = time.perf_counter()
    try:
        await app[SLOTS_KEY].acquire()
    finally:
        state.waiting -= 1
        if parsed.is_lora:
            _decrement(state.waiting_loras, parsed.model)
    queued_s = time.perf_counter() - queued_since
    state.running += 1
    if parsed.is_lora:
        state.running_loras[parsed.model] += 1
        state.lora_state_changed()
    blocks = state.kv.block_hashes(parsed.model, parsed.prompt_tokens) if config.enable_kvcache else []
    cached_blocks = state.kv.acquire(blocks) if blocks else 0
    try:
        rng = random.Random(config.seed if config.seed is not None else None)
        tokens = parsed.output_tokens(config, rng)
        finish = "length" if len(tokens) >= parsed.max_tokens else "stop"
        usage = {
            "prompt_tokens": len(parsed.prompt_tokens),
            "completion_tokens": len(tokens),
            "total_tokens": len(parsed.prompt_tokens) + len(tokens),
            # As llm-d-inference-sim v0.10.2 answers: the details object always, 0 cached without KV-cache.
            "prompt_tokens_details": {"cached_tokens": cached_blocks * config.block_size},
        }
        if parsed.stream:
            response = await _stream(request, parsed, tokens, finish, usage)
        else:
            await asyncio.sleep(
                _seconds(config.time_to_first_token_ms + config.inter_token_latency_ms * max(0, len(tokens) - 1))
            )
            response = web.json_response(_completion_body(parsed, tokens, finish, usage), headers=_pod_headers(app))
        state.successes[(parsed.model, finish)] += 1
        state.served_total += 1
        state.record(
            queued_s=queued_s,
            ttft_s=_seconds(config.time_to_first_token_ms),
            decode_s=_seconds(config.inter_token_latency_ms * max(0, len(tokens) - 1)),
            prompt_tokens=len(parsed.prompt_tokens),
            output_tokens=len(tokens),
            max_tokens=parsed.max_tokens,
        )
        return response
    finally:
        if blocks:
            state.kv.release(blocks)
        state.running -= 1
        if parsed.is_lora:
            _decrement(state.running_loras, parsed.model)
            state.lora_state_changed()
        app[SLOTS_KEY].release()


def _decrement(counter: Any, key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def _seconds(milliseconds: float) -> float:
    return max(0.0, milliseconds) / 1000.0


def _completion_body(parsed: _Request, tokens: list[str], finish: str, usage: dict[str, Any]) -> dict[str, Any]:
    text = " ".join(tokens)
    if parsed.chat:
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish,
            "logprobs": None,
        }
        return {
            "id": f"chatcmpl-{uuid.uuid4()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": parsed.model,
            "choices": [choice],
            "usage": usage,
        }
    return {
        "id": f"cmpl-{uuid.uuid4()}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": parsed.model,
        "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
        "usage": usage,
    }


async def _stream(
    request: web.Request, parsed: _Request, tokens: list[str], finish: str, usage: dict[str, Any]
) -> web.StreamResponse:
    config = request.app[STATE_KEY].config
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **_pod_headers(request.app)}
    )
    await response.prepare(request)
    ident = f"{'chatcmpl' if parsed.chat else 'cmpl'}-{uuid.uuid4()}"
    created = int(time.time())
    kind = "chat.completion.chunk" if parsed.chat else "text_completion"

    async def send(choices: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> None:
        chunk = {"id": ident, "object": kind, "created": created, "model": parsed.model, "choices": choices}
        if extra:
            chunk.update(extra)
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

    await asyncio.sleep(_seconds(config.time_to_first_token_ms))
    if parsed.chat:
        await send([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}])
    for position, token in enumerate(tokens):
        if position:
            await asyncio.sleep(_seconds(config.inter_token_latency_ms))
        piece = token if position == 0 else f" {token}"
        if parsed.chat:
            await send([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
        else:
            await send([{"index": 0, "text": piece, "finish_reason": None}])
    if parsed.chat:
        await send([{"index": 0, "delta": {}, "finish_reason": finish}])
    else:
        await send([{"index": 0, "text": "", "finish_reason": finish}])
    if parsed.include_usage:
        await send([], {"usage": usage})
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, chat=False)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, chat=True)


async def models(request: web.Request) -> web.Response:
    config = request.app[STATE_KEY].config
    created = int(time.time())
    data = [
        {
            "id": config.model,
            "object": "model",
            "created": created,
            "owned_by": "vllm",
            "root": config.model,
            "parent": None,
            "max_model_len": config.max_model_len,
        }
    ]
    data += [
        {
            "id": lora,
            "object": "model",
            "created": created,
            "owned_by": "vllm",
            "root": lora,
            "parent": config.model,
            "max_model_len": config.max_model_len,
        }
        for lora in config.loras
    ]
    return web.json_response({"object": "list", "data": data})


async def health(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text=render_metrics(request.app[STATE_KEY]), content_type="text/plain", charset="utf-8")


@web.middleware
async def _guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """No traceback from the server: a client that went away is not an error, anything else is a 500
    with vLLM's error body and one line on stderr."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException:
        raise
    except (ConnectionError, ClientPayloadError, asyncio.IncompleteReadError):
        # The client disconnected mid-request (a cancelled curl, a load test stopping).
        return web.Response(status=499)
    except Exception as error:
        print(
            f"igwlab sim: {request.method} {request.path} failed: {type(error).__name__}: {error}",
            file=sys.stderr,
            flush=True,
        )
        return error_response(500, f"internal error: {type(error).__name__}")


def build_app(config: SimConfig) -> web.Application:
    app = web.Application(middlewares=[_guard])
    app[STATE_KEY] = SimState(config)
    app[SLOTS_KEY] = asyncio.Semaphore(config.max_num_seqs)
    app[PORT_KEY] = []
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", health)
    app.router.add_get("/metrics", metrics)
    return app
