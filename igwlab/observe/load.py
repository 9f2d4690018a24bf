"""`igwlab load`: bounded traffic for a lab, open-loop (a request rate) or closed-loop (a number of
requests in flight), with shared long prefixes so prefix affinity has something to work on.

Bounded by design: a duration cap, a rate cap, a concurrency cap; it stops by itself.
"""

from __future__ import annotations

import asyncio
import random
import re
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from igwlab.errors import UsageError
from igwlab.verify.engine import Engine, Observation

MAX_DURATION_S = 1800.0
MAX_RPS = 1000.0
MAX_CONCURRENCY = 256
OBJECTIVE_HEADER = "x-gateway-inference-objective"


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


@dataclass(frozen=True)
class LoadOptions:
    url: str
    model: str
    duration_s: float = 60.0
    rps: float | None = None
    concurrency: int | None = None
    prefixes: int = 0
    prompt_tokens: int = 256
    max_tokens: int = 16
    stream: bool = True
    sheddable_share: float = 0.0
    sheddable_objective: str = "sheddable"
    critical_objective: str | None = None
    timeout_s: float = 60.0
    seed: int | None = None

    def validate(self) -> None:
        if (self.rps is None) == (self.concurrency is None):
            raise UsageError(
                "give either --rps or --concurrency",
                why="one picks open-loop, the other closed-loop load",
                fix="e.g. --rps 10, or --concurrency 8",
            )
        if not 0 < self.duration_s <= MAX_DURATION_S:
            raise UsageError(f"--duration must be more than 0 and at most {MAX_DURATION_S:.0f}s")
        if self.rps is not None and not 0 < self.rps <= MAX_RPS:
            raise UsageError(f"--rps must be more than 0 and at most {MAX_RPS:.0f}")
        if self.concurrency is not None and not 0 < self.concurrency <= MAX_CONCURRENCY:
            raise UsageError(f"--concurrency must be between 1 and {MAX_CONCURRENCY}")
        if not 0 <= self.sheddable_share <= 1:
            raise UsageError("--sheddable must be a share between 0 and 1")
        if self.prefixes < 0 or self.prompt_tokens < 1:
            raise UsageError("--prefixes must be 0 or more and --prompt-tokens at least 1")


@dataclass
class Sample:
    prefix: str
    klass: str
    observation: Observation


@dataclass
class LoadReport:
    url: str
    model: str
    mode: str
    duration_s: float
    samples: list[Sample] = field(default_factory=list)
    skipped: int = 0  # open loop: requests not sent because too many were still in flight

    def as_dict(self) -> dict[str, Any]:
        observations = [s.observation for s in self.samples]
        ok = [o for o in observations if o.ok]
        per_prefix: dict[str, Counter[str]] = defaultdict(Counter)
        for sample in self.samples:
            if sample.observation.ok:
                per_prefix[sample.prefix][sample.observation.pod or "(unknown)"] += 1
        classes: dict[str, dict[str, int]] = defaultdict(dict)
        for sample in self.samples:
            outcome = sample.observation.outcome()
            classes[sample.klass][outcome] = classes[sample.klass].get(outcome, 0) + 1
        return {
            "url": self.url,
            "model": self.model,
            "mode": self.mode,
            "duration_s": round(self.duration_s, 3),
            "requests": len(observations),
            "succeeded": len(ok),
            "achieved_rps": round(len(observations) / self.duration_s, 2) if self.duration_s else 0.0,
            "skipped_client_saturated": self.skipped,
            "status": dict(Counter(o.outcome() for o in observations).most_common()),
            "by_class": dict(classes),
            "latency_s": _percentiles([o.elapsed_s for o in ok]),
            "ttft_s": _percentiles([o.ttft_s for o in ok if o.ttft_s is not None]),
            "pods": dict(Counter(o.pod or "(unknown)" for o in ok).most_common()),
            "per_prefix": {
                prefix: {
                    "pods": dict(pods.most_common()),
                    "top_pod_share": round(pods.most_common(1)[0][1] / sum(pods.values()), 3),
                }
                for prefix, pods in sorted(per_prefix.items())
            },
        }


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)
    if len(ordered) == 1:
        return {
            "p50": round(ordered[0], 4),
            "p90": round(ordered[0], 4),
            "p99": round(ordered[0], 4),
            "max": round(ordered[0], 4),
        }
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "p50": round(cuts[49], 4),
        "p90": round(cuts[89], 4),
        "p99": round(cuts[98], 4),
        "max": round(ordered[-1], 4),
    }


class _Prompts:
    def __init__(self, options: LoadOptions, rng: random.Random) -> None:
        self.options = options
        self.rng = rng
        self.prefixes = [" ".join(f"ctx{k}w{i}" for i in range(options.prompt_tokens)) for k in range(options.prefixes)]
        self.count = 0

    def next(self) -> tuple[str, str, dict[str, Any], dict[str, str]]:
        index = self.count
        self.count += 1
        if self.prefixes:
            label = f"prefix-{index % len(self.prefixes)}"
            prompt = f"{self.prefixes[index % len(self.prefixes)]} question {index}"
        else:
            label = "unique"
            prompt = " ".join(f"r{index}w{i}" for i in range(self.options.prompt_tokens))
        headers = {}
        klass = "critical"
        if self.rng.random() < self.options.sheddable_share:
            klass = "sheddable"
            headers[OBJECTIVE_HEADER] = self.options.sheddable_objective
        elif self.options.critical_objective:
            headers[OBJECTIVE_HEADER] = self.options.critical_objective
        body = {"model": self.options.model, "prompt": prompt, "max_tokens": self.options.max_tokens}
        return label, klass, body, headers


async def run_load(options: LoadOptions) -> LoadReport:
    options.validate()
    rng = random.Random(options.seed)
    prompts = _Prompts(options, rng)
    in_flight_cap = options.concurrency or max(8, min(MAX_CONCURRENCY, int(options.rps or 1) * 4))
    mode = f"closed-loop, {options.concurrency} in flight" if options.concurrency else f"open-loop, {options.rps} req/s"
    report = LoadReport(options.url, options.model, mode, 0.0)
    start = time.monotonic()
    deadline = start + options.duration_s

    async with Engine(options.url, concurrency=in_flight_cap, timeout_s=options.timeout_s) as engine:

        async def one() -> None:
            label, klass, body, headers = prompts.next()
            if options.stream:
                observation = await engine.stream("/v1/completions", body, headers=headers)
            else:
                observation = await engine.post("/v1/completions", body, headers=headers)
            report.samples.append(Sample(label, klass, observation))

        if options.concurrency:

            async def worker() -> None:
                while time.monotonic() < deadline:
                    await one()

            await asyncio.gather(*(worker() for _ in range(options.concurrency)))
        else:
            assert options.rps is not None
            interval = 1.0 / options.rps
            tasks: set[asyncio.Task[None]] = set()
            sent = 0
            while True:
                due = start + sent * interval
                if due >= deadline:
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                sent += 1
                if len(tasks) >= in_flight_cap:
                    report.skipped += 1
                    continue
                task = asyncio.create_task(one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
    report.duration_s = time.monotonic() - start
    return report
