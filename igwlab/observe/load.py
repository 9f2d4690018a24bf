"""`igwlab load`: bounded traffic for a lab, open loop (request rates) or closed loop (requests in
flight), in one or more stages, with shared long prefixes so prefix affinity has something to
work on.

Bounded by design: at most 30 minutes in all, 1000 requests a second, 256 in flight; it stops by
itself. When one process cannot keep up with the rate, workers run in child processes.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit

from igwlab.errors import ChecksFailedError, IgwlabError, Interrupted, UsageError
from igwlab.observe.metrics import RequestRecord
from igwlab.observe.pacing import ARRIVALS, Arrival
from igwlab.observe.report import LoadReport, StageResult, stage_report
from igwlab.observe.workers import DRAIN_NOTE_S, StagePlan, Worker, WorkerResult, WorkerSetup, run_loop, serve
from igwlab.urls import unresolved
from igwlab.wording import counted

MAX_DURATION_S = 1800.0
MAX_RPS = 1000.0
MAX_CONCURRENCY = 256
MAX_STAGES = 20
MAX_WORKERS = 16
RPS_PER_WORKER = 100.0
"""Open loop: one worker process per this many requests a second (up to the CPUs there are)."""
STAGE_START_MARGIN_S = 0.1
"""Child processes: the stage clock starts this long after the parent sends the plan, so all are listening."""
IN_PROCESS_START_MARGIN_S = 0.005
WORKER_START_TIMEOUT_S = 120.0


class LoadError(IgwlabError):
    """A load worker process failed, so the stage could not be sent."""


def parse_duration(text: str) -> float:
    """`60s`, `2m`, `500ms`, `1m30s` or plain seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UsageError(f"--duration {text!r} is not a duration", fix="use a form like 30s, 2m or 1m30s")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(number) * scale[unit] for number, unit in parts)


def _levels(text: str, flag: str, kind: str, convert: Callable[[str], float]) -> list[float]:
    values = []
    for item in (part.strip() for part in text.split(",")):
        try:
            value = convert(item)
        except ValueError:
            raise UsageError(
                f"{flag} {text!r}: {item!r} is not {kind}", fix=f"e.g. {flag} 10, or {flag} 10,50,100 for three stages"
            ) from None
        if not math.isfinite(value):
            raise UsageError(f"{flag} {text!r}: {item!r} is not a finite number")
        values.append(value)
    return values


def parse_rates(text: str) -> tuple[float, ...]:
    """`--rps 10,50,100` -> (10.0, 50.0, 100.0): one stage per rate, in the order given."""
    return tuple(_levels(text, "--rps", "a number", float))


def parse_counts(text: str) -> tuple[int, ...]:
    """`--concurrency 4,16` -> (4, 16): one stage per number of requests in flight."""
    return tuple(int(v) for v in _levels(text, "--concurrency", "a whole number", int))


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class LoadOptions:
    """Times in seconds. `rps` or `concurrency` holds one value per stage; `workers` None picks
    enough processes for the rate; `slo` maps objective names to ceilings (see metrics.parse_slo)."""

    url: str
    model: str
    duration_s: float = 60.0
    rps: tuple[float, ...] | None = None
    concurrency: tuple[int, ...] | None = None
    arrival: Arrival | None = None  # open loop only; None: "constant"
    prefixes: int = 0
    prompt_tokens: int = 256
    max_tokens: int = 16
    stream: bool = True
    include_usage: bool | None = None  # None: ask streams for usage; given, it needs stream
    sheddable_share: float = 0.0
    sheddable_objective: str | None = None  # None: "sheddable"; given, it needs sheddable_share > 0
    critical_objective: str | None = None
    timeout_s: float = 60.0
    seed: int | None = None
    workers: int | None = None
    slo: dict[str, float] | None = None

    def validate(self) -> None:
        if (self.rps is None) == (self.concurrency is None):
            raise UsageError(
                "give either --rps or --concurrency",
                why="one picks open-loop, the other closed-loop load",
                fix="e.g. --rps 10, --rps 10,50,100 (one stage each), or --concurrency 8",
            )
        levels = self.rps if self.rps is not None else self.concurrency
        assert levels is not None
        if not 1 <= len(levels) <= MAX_STAGES:
            raise UsageError(f"give 1 to {MAX_STAGES} stages")
        if not 0 < self.duration_s <= MAX_DURATION_S:
            raise UsageError(f"--duration must be more than 0 and at most {MAX_DURATION_S:.0f}s")
        if self.duration_s * len(levels) > MAX_DURATION_S:
            raise UsageError(
                f"{len(levels)} stages of {self.duration_s:g}s is more than {MAX_DURATION_S / 60:.0f} minutes in all",
                fix="shorten --duration or give fewer stages",
            )
        if self.rps is not None and not all(0 < r <= MAX_RPS for r in self.rps):
            raise UsageError(f"--rps must be more than 0 and at most {MAX_RPS:.0f}")
        if self.concurrency is not None and not all(0 < c <= MAX_CONCURRENCY for c in self.concurrency):
            raise UsageError(f"--concurrency must be between 1 and {MAX_CONCURRENCY}")
        if self.arrival is not None and self.arrival not in ARRIVALS:
            raise UsageError(f"--arrival must be one of {', '.join(ARRIVALS)}")
        if self.arrival is not None and self.concurrency is not None:
            raise UsageError(
                "--arrival applies to open-loop load (--rps), not to --concurrency",
                why="closed-loop load sends each request when one in flight ends: there is no arrival process",
                fix="drop --arrival, or use --rps RATE with --arrival poisson",
            )
        if not 0 <= self.sheddable_share <= 1:
            raise UsageError("--sheddable must be a share between 0 and 1")
        if self.include_usage is not None and not self.stream:
            raise UsageError(
                f"--{'usage' if self.include_usage else 'no-usage'} applies to streamed answers",
                why="the usage report is a stream option (stream_options.include_usage); an answer without a "
                "stream carries its usage anyway",
                fix="drop it, or drop --no-stream",
            )
        if self.sheddable_objective is not None and self.sheddable_share == 0:
            raise UsageError(
                "--sheddable-objective needs --sheddable",
                why="it names the objective of the sheddable share of requests, and --sheddable 0 sends none",
                fix="add --sheddable SHARE (e.g. --sheddable 0.3), or drop --sheddable-objective",
            )
        if self.prefixes < 0 or self.prompt_tokens < 1 or self.max_tokens < 1:
            raise UsageError("--prefixes must be 0 or more, --prompt-tokens and --max-tokens at least 1")
        if self.workers is not None and not 1 <= self.workers <= MAX_WORKERS:
            raise UsageError(f"--workers must be between 1 and {MAX_WORKERS}")
        if not self.timeout_s > 0:
            raise UsageError("--timeout must be more than 0")
        if self.slo and not self.stream and {"ttft", "tpot", "itl"} & set(self.slo):
            raise UsageError(
                "--slo on ttft, tpot or itl needs streamed answers",
                why="without a stream there is no first token and no gap between tokens to measure",
                fix="drop --no-stream, or keep only e2e in --slo",
            )

    def stages(self) -> list[StagePlan]:
        if self.rps is not None:
            return [
                StagePlan(number=n, duration_s=self.duration_s, rps=r, arrival=self.arrival or "constant")
                for n, r in enumerate(self.rps, 1)
            ]
        assert self.concurrency is not None
        return [
            StagePlan(number=n, duration_s=self.duration_s, concurrency=c) for n, c in enumerate(self.concurrency, 1)
        ]

    def worker_count(self) -> int:
        """`workers`, else: open loop, one per RPS_PER_WORKER of the highest rate; closed loop, one
        per 64 in flight; never more than the CPUs this process may use."""
        if self.workers is not None:
            return self.workers
        if self.rps is not None:
            wanted = math.ceil(max(self.rps) / RPS_PER_WORKER)
        else:
            assert self.concurrency is not None
            wanted = math.ceil(max(self.concurrency) / 64)
        return max(1, min(wanted, available_cpus()))

    def in_flight_cap(self) -> int:
        if self.concurrency is not None:
            return max(self.concurrency)
        return MAX_CONCURRENCY

    @property
    def mode(self) -> str:
        return "open-loop" if self.rps is not None else "closed-loop"


def worker_setups(options: LoadOptions, seed: int) -> list[WorkerSetup]:
    count = options.worker_count()
    cap = options.in_flight_cap()
    return [
        WorkerSetup(
            index=index,
            count=count,
            url=options.url,
            model=options.model,
            max_in_flight=max(1, math.ceil(cap / count)),
            timeout_s=options.timeout_s,
            seed=seed,
            stream=options.stream,
            include_usage=options.include_usage is not False,
            prefixes=options.prefixes,
            prompt_tokens=options.prompt_tokens,
            max_tokens=options.max_tokens,
            sheddable_share=options.sheddable_share,
            sheddable_objective=options.sheddable_objective or "sheddable",
            critical_objective=options.critical_objective,
        )
        for index in range(count)
    ]


Progress = Callable[[str], None]


def run_load(options: LoadOptions, progress: Progress | None = None) -> LoadReport:
    """Warm up, run every stage, and report. Raises ChecksFailedError when nothing answers at the
    URL, LoadError when a worker process fails, UsageError for bad options."""
    options.validate()
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(1 << 31)
    setups = worker_setups(options, seed)
    stages = options.stages()
    say = progress or (lambda message: None)
    report = LoadReport(
        url=options.url,
        model=options.model,
        mode=options.mode,
        arrival=(options.arrival or "constant") if options.rps is not None else None,
        workers=len(setups),
        seed=seed,
        slo=options.slo,
    )
    say(f"warming up {counted(len(setups), 'worker')} against {options.url}")
    results: list[StageResult] = []  # each stage as it finishes, so an interrupted run keeps them
    try:
        if len(setups) == 1:
            run_loop(_run_here(setups[0], stages, say, results))
        else:
            _run_in_processes(setups, stages, say, results)
    except KeyboardInterrupt:
        report.stages = [stage_report(result, options.slo) for result in results]
        raise Interrupted(
            f"interrupted after {len(results)} of {counted(len(stages), 'stage')}",
            why="Ctrl-C stopped the stage that was running; its requests are not counted",
            fix="run `igwlab load` again (with --json, `data` holds the finished stages' figures)",
            data=report.as_dict(),
        ) from None
    report.stages = [stage_report(result, options.slo) for result in results]
    return report


def _check_warm_up(records: Sequence[RequestRecord], url: str, timeout_s: float) -> None:
    if records and all(r.error == "timeout" for r in records):  # something answers, just not in time
        raise ChecksFailedError(
            f"the warm-up requests to {url} timed out: none got a complete answer within --timeout {timeout_s:g}s",
            why="the server accepted them but took longer than --timeout to answer (a slow model server, or "
            "one still loading its model)",
            fix=f"raise --timeout (e.g. --timeout {max(timeout_s * 4, 60):g}), or lower --max-tokens",
        )
    if records and all(r.error in ("connect", "timeout") for r in records):
        first = next(r for r in records if r.error == "connect")
        if unresolved(first.error_detail):  # not "nothing answers": the name never became an address
            host = urlsplit(url).hostname
            raise ChecksFailedError(
                f"the host {host} of {url} does not resolve ({first.error_detail})",
                why="the warm-up requests found no address for the gateway's host name",
                fix="check the host in --url; `igwlab status` shows the lab's gateway URL",
            )
        raise ChecksFailedError(
            f"nothing answers at {url}: {first.error} ({first.error_detail})",
            why="the warm-up requests sent before the clock starts got no answer",
            fix="check the URL; `igwlab status` shows the lab's gateway URL",
        )


def no_success_error(result: dict[str, Any], timeout_s: float) -> ChecksFailedError:
    """The error for a run in which no request succeeded (`result` is LoadReport.as_dict()), naming the
    cause when every request failed the same way: all timed out, all refused (404 for an unknown model,
    400 with the server's words), else the outcomes counted."""
    outcomes: dict[str, int] = {}
    said: dict[str, str] = {}
    for stage in result["stages"]:
        for code, count in stage["status"].items():
            outcomes[code] = outcomes.get(code, 0) + count
        for code, detail in (stage.get("errors") or {}).items():
            said.setdefault(code, detail)
    listed = ", ".join(f"{code}: {count}" for code, count in outcomes.items()) or "none sent"
    what = f"no request succeeded: {result['requests']} sent to {result['url']} ({listed})"
    only = next(iter(outcomes)) if len(outcomes) == 1 else None
    words = f": {said[only]}" if only and said.get(only) else ""
    if only == "timeout":
        return ChecksFailedError(
            what,
            why=f"every request timed out: none got a complete answer within --timeout {timeout_s:g}s",
            fix=f"raise --timeout (e.g. --timeout {max(timeout_s * 4, 60):g}), or lower --max-tokens or --rps",
            data=result,
        )
    if only == "404":
        return ChecksFailedError(
            what,
            why=f"the server does not know model {result['model']!r} (HTTP 404{words})",
            fix="pass --model with a model the lab serves (`igwlab labs show LAB` lists them), or drop --model "
            "to send the lab's first model",
            data=result,
        )
    if only is not None and only.isdigit() and 400 <= int(only) < 500:
        return ChecksFailedError(
            what,
            why=f"the server refused every request (HTTP {only}{words})",
            fix="the server's words name what it refused: check --model, --max-tokens and --prompt-tokens",
            data=result,
        )
    return ChecksFailedError(
        what,
        why="every request failed, so there are no latencies or pods to report"
        + (f" ({', '.join(f'{code}: {detail}' for code, detail in said.items())})" if said else ""),
        fix=f"check the gateway answers: igwlab verify --url {result['url']}",
        data=result,
    )


def _announce(plan: StagePlan, total: int, say: Progress) -> None:
    say(f"stage {plan.number}/{total}: {plan.label} for {plan.duration_s:g}s")


async def _run_here(setup: WorkerSetup, stages: Sequence[StagePlan], say: Progress, results: list[StageResult]) -> None:
    current: list[StagePlan] = []

    def drain(count: int, remaining_s: float) -> None:
        say(_drain_note(current[-1], len(stages), count, remaining_s, setup.timeout_s))

    async with Worker(setup, on_drain=drain) as worker:
        _check_warm_up(await worker.warm_up(), setup.url, setup.timeout_s)
        for plan in stages:
            current.append(plan)
            _announce(plan, len(stages), say)
            part = await worker.run_stage(plan, time.perf_counter() + IN_PROCESS_START_MARGIN_S)
            results.append(_merge(plan, [part]))


def _merge(plan: StagePlan, parts: Sequence[WorkerResult]) -> StageResult:
    return StageResult(
        plan=plan,
        records=[record for part in parts for record in part.records],
        skipped=sum(part.skipped for part in parts),
        connections_opened=sum(part.connections_opened for part in parts),
        workers=len(parts),
    )


def _run_in_processes(
    setups: Sequence[WorkerSetup], stages: Sequence[StagePlan], say: Progress, results: list[StageResult]
) -> None:
    context = multiprocessing.get_context("spawn")
    connections: list[Connection] = []
    processes: list[Any] = []
    finished = False
    try:
        for setup in setups:
            parent_end, child_end = context.Pipe()
            process = context.Process(target=serve, args=(child_end, setup), name=f"igwlab-load-{setup.index}")
            process.daemon = True
            process.start()
            child_end.close()
            connections.append(parent_end)
            processes.append(process)
        warm = [_receive(c, "ready", WORKER_START_TIMEOUT_S) for c in connections]
        _check_warm_up([record for records in warm for record in records], setups[0].url, setups[0].timeout_s)
        wait_s = max(s.timeout_s for s in setups) + 60.0
        for plan in stages:
            _announce(plan, len(stages), say)
            start_at = time.perf_counter() + STAGE_START_MARGIN_S
            for connection in connections:
                connection.send(("stage", plan, start_at))
            parts = _stage_parts(connections, plan.duration_s + wait_s, plan, len(stages), say, setups[0].timeout_s)
            results.append(_merge(plan, parts))
        for connection in connections:
            connection.send(("stop",))
        finished = True
    finally:
        # Stopped early (Ctrl-C, a failed worker): the children go at once, not after their stage.
        for process in processes:
            if not finished:
                process.terminate()
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join(timeout=10)
        for connection in connections:
            connection.close()


def _drain_note(plan: StagePlan, total: int, count: int, remaining_s: float, timeout_s: float) -> str:
    return (
        f"stage {plan.number}/{total}: sending stopped; {counted(count, 'request')} still in flight, "
        f"waiting at most {remaining_s:.0f}s more (each ends within --timeout {timeout_s:g}s)"
    )


def _stage_parts(
    connections: Sequence[Connection], timeout_s: float, plan: StagePlan, total: int, say: Progress, request_s: float
) -> list[WorkerResult]:
    """Every worker's part of a stage, in worker order; while they drain, their in-flight counts summed
    into one note every DRAIN_NOTE_S."""
    from multiprocessing.connection import wait

    parts: dict[int, WorkerResult] = {}
    draining: dict[int, tuple[int, float]] = {}
    deadline = time.monotonic() + timeout_s
    noted = 0.0
    while len(parts) < len(connections):
        pending = [c for i, c in enumerate(connections) if i not in parts]
        ready = {id(c) for c in wait(pending, timeout=max(0.0, deadline - time.monotonic()))}
        if not ready:
            _receive(pending[0], "done", 0, waited_s=timeout_s)  # raises: the worker sent nothing in time
        for index, connection in enumerate(connections):
            if id(connection) not in ready:
                continue
            message = _receive(connection, "done", 0, interim=("draining",), whole=True)
            if message[0] == "draining":
                draining[index] = (message[1], time.monotonic() + message[2])
            else:
                parts[index] = message[1]
                draining.pop(index, None)
        if draining and time.monotonic() - noted >= DRAIN_NOTE_S:
            count = sum(c for c, _ in draining.values())
            remaining = max(until for _, until in draining.values()) - time.monotonic()
            say(_drain_note(plan, total, count, max(0.0, remaining), request_s))
            noted = time.monotonic()
    return [parts[i] for i in range(len(connections))]


def _receive(
    connection: Connection,
    expected: str,
    timeout_s: float,
    interim: tuple[str, ...] = (),
    whole: bool = False,
    waited_s: float | None = None,
) -> Any:
    if not connection.poll(timeout_s):
        raise LoadError(
            f"a load worker sent nothing for {waited_s if waited_s is not None else timeout_s:.0f}s",
            why="the worker process is stuck or was killed",
            fix="run again; with --workers 1 everything runs in one process",
        )
    try:
        message = connection.recv()
    except EOFError:
        raise LoadError(
            "a load worker process ended unexpectedly",
            why="it was killed or ran out of memory",
            fix="run again; with --workers 1 everything runs in one process",
        ) from None
    if message[0] == "error":
        raise LoadError(
            f"a load worker failed: {message[1]}", fix="run again with --workers 1 to see it in one process"
        )
    if message[0] != expected and message[0] not in interim:
        raise LoadError(f"a load worker answered {message[0]!r} where {expected!r} was due")
    return message if whole else message[1]
