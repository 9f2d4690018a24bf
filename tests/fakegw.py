"""A small test gateway on 127.0.0.1: an endpoint picker's visible behaviour, with switchable faults.

It rewrites a model name to one of its weighted targets (like InferenceModel/InferenceModelRewrite),
picks a backend simulator (at random, by prompt prefix, or always the first), forwards the request
and streams the answer back. Faults: a wrong split, one pod only, 503s, a stalled stream, garbage
JSON, 5xx for unknown models, a warm-up period of 503s.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import yaml
from aiohttp import web

from igwlab.sim.process import BackgroundServer


@dataclass
class GatewayBehaviour:
    backends: list[str]
    rewrites: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    pick: Literal["random", "prefix", "first"] = "random"
    seed: int = 7
    fail_status: int | None = None
    garbage: bool = False
    stall_stream_s: float = 0.0
    unknown_model_status: int | None = None
    warm_up_s: float = 0.0
    epp_header: bool = True
    # Faults of streams: hold the whole answer and send it at once (a buffering proxy or ext_proc), or drop
    # `stream` from the body on the way (a filter that rewrites the request).
    buffer_stream: bool = False
    ignore_stream: bool = False
    # Several pools: base model -> its backends, chosen by the body's model, by the X-Gateway-Base-Model-Name
    # header the client sends, or ("bbr") by that header set the way GIE v1.5.0's body-based router sets it.
    pools: dict[str, list[str]] = field(default_factory=dict)
    route_by: Literal["body", "header", "bbr"] = "body"
    # For route_by="bbr": the ConfigMaps the router reads. A stand-in for the real BBR binary, which needs
    # a gateway's ext_proc in front of it: the real one runs in the kwok data-path tests.
    bbr_configmaps: list[dict[str, Any]] = field(default_factory=list)


BBR_LABEL = "inference.networking.k8s.io/bbr-managed"


def bbr_base_model(configmaps: list[dict[str, Any]], model: str) -> str:
    """X-Gateway-Base-Model-Name as GIE v1.5.0's base-model-to-header plugin sets it
    (pkg/bbr/plugins/basemodelextractor): from ConfigMaps labelled bbr-managed="true" only, adapters
    first, then base models, else an empty string."""
    adapters: dict[str, str] = {}
    bases: set[str] = set()
    for configmap in configmaps:
        if (configmap.get("metadata", {}).get("labels") or {}).get(BBR_LABEL) != "true":
            continue
        data = configmap.get("data") or {}
        base = str(data.get("baseModel") or "").strip()
        if not base:
            continue
        bases.add(base)
        for adapter in yaml.safe_load(data.get("adapters") or "") or []:
            if str(adapter).strip():
                adapters[str(adapter).strip()] = base
    name = model.strip()
    return adapters.get(name) or (name if name in bases else "")


session_key: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)


def _build(behaviour: GatewayBehaviour) -> web.Application:
    rng = random.Random(behaviour.seed)
    started = time.monotonic()
    known = {name for name in behaviour.rewrites} | {t for ts in behaviour.rewrites.values() for t, _ in ts}

    async def on_startup(app: web.Application) -> None:
        app[session_key] = aiohttp.ClientSession()

    async def on_cleanup(app: web.Application) -> None:
        await app[session_key].close()

    def choose_backend(body: dict, headers: dict[str, str], requested: str) -> str:
        backends = behaviour.backends
        if behaviour.pools:
            if behaviour.route_by == "body":
                key = str(body.get("model"))
            elif behaviour.route_by == "bbr":
                key = bbr_base_model(behaviour.bbr_configmaps, requested)  # BBR runs before the picker
            else:
                key = str(headers.get("X-Gateway-Base-Model-Name"))
            backends = behaviour.pools.get(key, behaviour.backends)
        if behaviour.pick == "first":
            return backends[0]
        if behaviour.pick == "prefix":
            text = str(body.get("prompt") or body.get("messages"))[:400]
            digest = int(hashlib.sha256(text.encode()).hexdigest(), 16)
            return backends[digest % len(backends)]
        return rng.choice(backends)

    async def forward(request: web.Request) -> web.StreamResponse:
        if behaviour.warm_up_s and time.monotonic() - started < behaviour.warm_up_s:
            return web.Response(status=503, text="upstream connect error or disconnect/reset before headers")
        if behaviour.fail_status:
            return web.Response(status=behaviour.fail_status, text="no healthy upstream")
        if behaviour.garbage:
            return web.Response(status=200, text="<html><body>default backend</body></html>", content_type="text/html")
        body = await request.json()
        model = body.get("model")
        if behaviour.unknown_model_status and known and model not in known:
            return web.Response(status=behaviour.unknown_model_status, text="ext_proc error")
        if model in behaviour.rewrites:
            targets = behaviour.rewrites[model]
            body["model"] = rng.choices([t for t, _ in targets], weights=[w for _, w in targets])[0]
        backend = choose_backend(body, dict(request.headers), str(model))
        if behaviour.ignore_stream:
            body.pop("stream", None)
        session = request.app[session_key]
        async with session.post(f"{backend}{request.path}", json=body) as upstream:
            headers = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() in ("content-type", "x-inference-pod", "x-inference-port")
            }
            if behaviour.epp_header:
                headers["x-went-into-resp-headers"] = "true"
            response = web.StreamResponse(status=upstream.status, headers=headers)
            if behaviour.buffer_stream:
                whole = await upstream.read()
                await response.prepare(request)
                await response.write(whole)
                await response.write_eof()
                return response
            await response.prepare(request)
            first = True
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
                if first and behaviour.stall_stream_s and body.get("stream"):
                    await asyncio.sleep(behaviour.stall_stream_s)
                first = False
            await response.write_eof()
            return response

    app = web.Application()
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_post("/v1/completions", forward)
    app.router.add_post("/v1/chat/completions", forward)
    return app


@contextmanager
def running_gateway(behaviour: GatewayBehaviour) -> Iterator[BackgroundServer]:
    server = BackgroundServer(lambda: _build(behaviour)).start()
    try:
        yield server
    finally:
        server.stop()
