"""Run aiohttp apps: in the foreground (`igwlab sim`) or on a background thread (tests, benchmarks)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from aiohttp import web

from igwlab.sim.config import SimConfig
from igwlab.sim.server import PORT_KEY, STATE_KEY, build_app
from igwlab.sim.state import SimState


async def start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return runner, int(runner.addresses[0][1])


class BackgroundServer:
    """An aiohttp app served from its own event-loop thread; `url` is where it listens.

    The app is built on that loop, since aiohttp objects belong to the loop that made them.
    """

    def __init__(self, build: Callable[[], web.Application], host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._build = build
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="igwlab-server", daemon=True)
        self._runner: web.AppRunner | None = None
        self.app: web.Application | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        async def boot() -> tuple[web.Application, web.AppRunner, int]:
            app = self._build()
            runner, port = await start_site(app, self.host, self.port)
            return app, runner, port

        self._thread.start()
        self.app, self._runner, self.port = asyncio.run_coroutine_threadsafe(boot(), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


class RunningSim(BackgroundServer):
    def __init__(self, config: SimConfig) -> None:
        super().__init__(lambda: build_app(config), config.host, config.port)
        self.config = config

    def start(self) -> RunningSim:
        super().start()
        assert self.app is not None
        self.app[PORT_KEY].append(self.port)
        return self

    @property
    def state(self) -> SimState:
        assert self.app is not None
        return self.app[STATE_KEY]


@contextmanager
def running_sim(config: SimConfig | None = None, **overrides: object) -> Iterator[RunningSim]:
    """Start a simulator on a free 127.0.0.1 port (unless the config names one) for a `with` block."""
    config = replace(config or SimConfig(port=0), **overrides)  # type: ignore[arg-type]
    sim = RunningSim(config).start()
    try:
        yield sim
    finally:
        sim.stop()


def serve_forever(config: SimConfig, on_ready: Callable[[int], None] | None = None) -> None:
    """Serve until interrupted (Ctrl-C): the `igwlab sim` command. `on_ready(port)` runs once it listens."""

    async def main() -> None:
        app = build_app(config)
        runner, port = await start_site(app, config.host, config.port)
        app[PORT_KEY].append(port)
        if on_ready is not None:
            on_ready(port)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())
