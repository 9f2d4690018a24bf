"""Load workers: each sends its share of a stage's requests from its own event loop.

One worker runs inside the `igwlab load` process; more run as child processes (multiprocessing,
spawn) when one core cannot keep up with the rate. Every worker computes the same stage schedule
from the same seed and sends the requests whose number falls to it (number mod workers), so
together they send exactly the schedule. Workers warm up (connections open, code paths run)
before the first stage's clock starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import random
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from igwlab.observe.client import LoadClient
from igwlab.observe.metrics import RequestRecord
from igwlab.observe.pacing import Arrival, arrival_offsets

COMPLETIONS = "/v1/completions"
OBJECTIVE_HEADER = "x-gateway-inference-objective"
WARM_UP_REQUESTS = 4
_GOLDEN = 0.6180339887498949
T = TypeVar("T")
DRAIN_NOTE_S = 5.0
"""Once a stage's sending has stopped, how often a worker says how many requests are still in flight."""
DrainNote = Callable[[int, float], None]
"""(requests still in flight, seconds they may still take at most)."""


def run_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on uvloop where it is installed (a dependency except on Windows): the same
    asyncio API with about a fifth less CPU per request, as inference-perf's workers run."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker needs, picklable for child processes. `max_in_flight` is this worker's
    share of the in-flight cap; `seed` fixes the Poisson schedule and the class mix."""

    index: int
    count: int
    url: str
    model: str
    max_in_flight: int
    timeout_s: float
    seed: int
    stream: bool = True
    include_usage: bool = True
    prefixes: int = 0
    prompt_tokens: int = 256
    max_tokens: int = 16
    sheddable_share: float = 0.0
    sheddable_objective: str = "sheddable"
    critical_objective: str | None = None


@dataclass(frozen=True)
class StagePlan:
    """One stage: open loop at `rps` (with `arrival`) or closed loop with `concurrency` in flight."""

    number: int
    duration_s: float
    rps: float | None = None
    concurrency: int | None = None
    arrival: Arrival = "constant"

    @property
    def label(self) -> str:
        if self.rps is not None:
            return f"{self.rps:g} req/s {self.arrival}"
        return f"{self.concurrency} in flight"


@dataclass
class WorkerResult:
    """A worker's share of a stage: its requests, the scheduled ones it skipped because its
    in-flight cap was reached, and the TCP connections it opened during the stage."""

    records: list[RequestRecord] = field(default_factory=list)
    skipped: int = 0
    connections_opened: int = 0


class Requests:
    """Request number -> (prefix label, class, JSON body, headers). Deterministic: the same number
    gives the same request in any worker."""

    def __init__(self, setup: WorkerSetup) -> None:
        self.setup = setup
        words = setup.prompt_tokens
        self.prefixes = [" ".join(f"ctx{k}w{i}" for i in range(words)) for k in range(setup.prefixes)]
        # A unique prompt differs from the others in its first word, so no cache block is shared.
        self.tail = " ".join(f"w{i}" for i in range(1, words))
        body: dict[str, Any] = {"model": setup.model, "max_tokens": setup.max_tokens, "stream": setup.stream}
        if setup.stream and setup.include_usage:
            body["stream_options"] = {"include_usage": True}
        self.head = json.dumps(body)[:-1].encode() + b', "prompt": '
        self.class_offset = random.Random(setup.seed).random()

    def prompt(self, number: int) -> tuple[str, str]:
        if self.prefixes:
            which = number % len(self.prefixes)
            return f"prefix-{which}", f"{self.prefixes[which]} question {number}"
        return "unique", f"r{number} {self.tail}".rstrip()

    def klass(self, number: int) -> str:
        """Sheddable for a share of the numbers, spread evenly (a Weyl sequence)."""
        share = self.setup.sheddable_share
        return "sheddable" if share and (self.class_offset + number * _GOLDEN) % 1.0 < share else "critical"

    def build(self, number: int) -> tuple[str, str, bytes, dict[str, str]]:
        label, prompt = self.prompt(number)
        klass = self.klass(number)
        headers = {"Content-Type": "application/json"}
        objective = self.setup.sheddable_objective if klass == "sheddable" else self.setup.critical_objective
        if objective:
            headers[OBJECTIVE_HEADER] = objective
        return label, klass, self.head + json.dumps(prompt).encode() + b"}", headers


class Worker:
    """Sends its share of each stage. Use as an async context manager."""

    def __init__(self, setup: WorkerSetup, on_drain: DrainNote | None = None) -> None:
        self.setup = setup
        self.on_drain = on_drain
        self.requests = Requests(setup)
        self.client = LoadClient(setup.url, max_connections=setup.max_in_flight, timeout_s=setup.timeout_s)

    async def __aenter__(self) -> Worker:
        await self.client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.__aexit__(*exc)

    async def warm_up(self) -> list[RequestRecord]:
        """A few requests before any clock starts (max_tokens 1, not reported): one alone, then
        some at once, so connections are open and every code path has run once."""
        setup = self.setup
        body: dict[str, Any] = {"model": setup.model, "prompt": "igwlab load warm-up", "max_tokens": 1}
        body["stream"] = setup.stream
        if setup.stream and setup.include_usage:
            body["stream_options"] = {"include_usage": True}
        payload = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if setup.critical_objective:
            headers[OBJECTIVE_HEADER] = setup.critical_objective

        async def one() -> RequestRecord:
            record = RequestRecord(index=-1, prefix="warm-up", klass="critical", sent_s=0.0)
            await self.client.send(
                COMPLETIONS, payload, headers, record, stream=setup.stream, origin=time.perf_counter()
            )
            return record

        first = await one()
        if first.error in ("connect", "timeout"):
            return [first]
        rest = await asyncio.gather(*(one() for _ in range(min(WARM_UP_REQUESTS, setup.max_in_flight))))
        return [first, *rest]

    async def _one(self, number: int, intended: float | None, origin: float, result: WorkerResult) -> None:
        label, klass, payload, headers = self.requests.build(number)
        record = RequestRecord(index=number, prefix=label, klass=klass, sent_s=0.0, intended_s=intended)
        await self.client.send(COMPLETIONS, payload, headers, record, stream=self.setup.stream, origin=origin)
        result.records.append(record)

    async def run_stage(self, plan: StagePlan, start_at: float) -> WorkerResult:
        """Run this worker's share of `plan`, its clock starting at `start_at` (a perf_counter
        value); returns once its last request has ended."""
        result = WorkerResult()
        opened_before = self.client.connections_opened
        # A full garbage collection over a stage's records pauses the loop for tens of ms, which
        # shows up as send lag; requests leave almost no cyclic garbage (under 0.1 objects each),
        # so the collector rests while the stage runs.
        collecting = gc.isenabled()
        gc.disable()
        try:
            delay = start_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if plan.rps is not None:
                await self._open_loop(plan, start_at, result)
            else:
                await self._closed_loop(plan, start_at, result)
        finally:
            if collecting:
                gc.enable()
        result.connections_opened = self.client.connections_opened - opened_before
        return result

    async def _open_loop(self, plan: StagePlan, origin: float, result: WorkerResult) -> None:
        assert plan.rps is not None
        setup = self.setup
        tasks: set[asyncio.Task[None]] = set()
        offsets = arrival_offsets(plan.rps, plan.duration_s, plan.arrival, setup.seed + plan.number)
        for number, offset in enumerate(offsets):
            if number % setup.count != setup.index:
                continue
            delay = origin + offset - time.perf_counter()
            # Behind schedule, still let the loop run once, so answers keep being read.
            await asyncio.sleep(max(0.0, delay))
            if len(tasks) >= setup.max_in_flight:
                result.skipped += 1
                continue
            task = asyncio.create_task(self._one(number, offset, origin, result))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await self._drain(asyncio.gather(*tasks), time.perf_counter(), lambda: len(tasks))

    async def _closed_loop(self, plan: StagePlan, origin: float, result: WorkerResult) -> None:
        assert plan.concurrency is not None
        setup = self.setup
        mine = plan.concurrency // setup.count + (1 if setup.index < plan.concurrency % setup.count else 0)
        deadline = origin + plan.duration_s
        numbers = iter(range(setup.index, 1 << 62, setup.count))
        in_flight = [0]

        async def loop() -> None:
            while time.perf_counter() < deadline:
                in_flight[0] += 1
                try:
                    await self._one(next(numbers), None, origin, result)
                finally:
                    in_flight[0] -= 1

        await self._drain(asyncio.gather(*(loop() for _ in range(mine))), deadline, lambda: in_flight[0])

    async def _drain(self, work: Awaitable[Any], stopped_at: float, in_flight: Callable[[], int]) -> None:
        """Await `work`; once sending has stopped (`stopped_at`, a perf_counter value) and requests are still
        in flight, tell `on_drain` how many and how long at most they may still take (each ends within
        --timeout of being sent), then again every DRAIN_NOTE_S, so a slow server never looks like a hang."""
        task = asyncio.ensure_future(work)
        # Ctrl-C cancels the run part-way: a request then failing as its connection closes would be logged
        # as "exception was never retrieved" with a traceback; the interruption is reported instead.
        task.add_done_callback(_retrieved)
        if self.on_drain is None:
            await task
            return
        await asyncio.wait({task}, timeout=max(0.0, stopped_at - time.perf_counter()))
        while not task.done():
            if in_flight():
                self.on_drain(in_flight(), max(0.0, stopped_at + self.setup.timeout_s - time.perf_counter()))
            await asyncio.wait({task}, timeout=DRAIN_NOTE_S)
        await task


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def serve(connection: Connection, setup: WorkerSetup) -> None:
    """A child process's main: warm up, report, then run each stage it is sent until told to stop.

    Ctrl-C is the parent's to handle (it stops the children); whatever goes wrong here is sent
    back as a message, never printed as a traceback.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        run_loop(_serve(connection, setup))
    except BaseException as error:  # reported to the parent, which turns it into an igwlab error
        with contextlib.suppress(OSError, ValueError):
            connection.send(("error", f"{type(error).__name__}: {error}"))


async def _serve(connection: Connection, setup: WorkerSetup) -> None:
    def drain(count: int, remaining_s: float) -> None:
        connection.send(("draining", count, remaining_s))

    async with Worker(setup, on_drain=drain) as worker:
        connection.send(("ready", await worker.warm_up()))
        while True:
            try:
                message = connection.recv()  # between stages nothing else needs the loop
            except EOFError:
                return
            if message[0] != "stage":
                return
            _, plan, start_at = message
            connection.send(("done", await worker.run_stage(plan, start_at)))
