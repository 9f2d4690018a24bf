"""What one request measured, and the arithmetic over a stage's requests: latency summaries,
time to first token (TTFT), time between tokens (ITL), time per output token (TPOT), output
tokens per second and goodput against latency objectives.

Definitions follow the serving benchmarks of vLLM and inference-perf (kubernetes-sigs), so the
figures compare: TTFT = first content chunk - send; ITL = the gaps between consecutive content
chunks, all requests pooled; TPOT = (last content chunk - first) / (output tokens - 1), per
request; output tokens from the server's usage report (`stream_options.include_usage`) where it
sent one, else the number of content chunks. All times are seconds.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from igwlab.errors import UsageError


@dataclass(frozen=True)
class Summary:
    """count, mean and percentiles (linear interpolation between closest ranks, as numpy's default)."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "count": self.count,
            "mean": round(self.mean, 6),
            "p50": round(self.p50, 6),
            "p90": round(self.p90, 6),
            "p99": round(self.p99, 6),
            "max": round(self.max, 6),
        }


def percentile(ordered: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) of already sorted values."""
    if not ordered:
        raise ValueError("no values")
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: Iterable[float]) -> Summary | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return Summary(
        count=len(ordered),
        mean=math.fsum(ordered) / len(ordered),
        p50=percentile(ordered, 50),
        p90=percentile(ordered, 90),
        p99=percentile(ordered, 99),
        max=ordered[-1],
    )


@dataclass(slots=True)
class RequestRecord:
    """One request of a stage. Times in seconds: `intended_s` and `sent_s` from the stage start
    (`intended_s` is None in closed loop), the rest from `sent_s`. `token_times_s` holds the
    arrival of each content-bearing chunk (an `array('d')`); `output_tokens` is the server's count when
    `usage_reported`, else the number of content chunks."""

    index: int
    prefix: str
    klass: str
    sent_s: float
    intended_s: float | None = None
    status: int | None = None
    error: str | None = None  # connect | timeout | protocol | bad-stream | bad-json
    error_detail: str = ""
    pod: str | None = None
    latency_s: float = 0.0
    token_times_s: array[float] = field(default_factory=lambda: array("d"))  # compact: a stage may hold millions
    output_tokens: int = 0
    prompt_tokens: int | None = None
    usage_reported: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None

    def outcome(self) -> str:
        """A short label: `200`, `503`, `connect`, `timeout`, `bad-stream`..."""
        return self.error or str(self.status)

    @property
    def ttft_s(self) -> float | None:
        return self.token_times_s[0] if self.token_times_s else None

    @property
    def itl_s(self) -> list[float]:
        times = self.token_times_s
        return [later - earlier for earlier, later in pairwise(times)]

    @property
    def tpot_s(self) -> float | None:
        times = self.token_times_s
        if len(times) < 2 or self.output_tokens < 2:
            return None
        return (times[-1] - times[0]) / (self.output_tokens - 1)


OBJECTIVES = {
    "ttft": "time to first token",
    "tpot": "time per output token",
    "itl": "longest gap between two tokens of a request",
    "e2e": "total latency",
}
"""Latency objectives `--slo` understands, each a ceiling for one request."""


def parse_slo(text: str) -> dict[str, float]:
    """`ttft=200ms,tpot=50ms` -> {"ttft": 0.2, "tpot": 0.05}. Each value needs a unit: ms or s."""
    objectives: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        name = name.strip().lower()
        if name not in OBJECTIVES:
            raise UsageError(
                f"--slo {item!r}: unknown objective {name!r}",
                fix="use " + ", ".join(f"{key} ({meaning})" for key, meaning in OBJECTIVES.items()),
            )
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*", value)
        if not match:
            raise UsageError(f"--slo {item!r}: {value!r} is not a time with a unit", fix="e.g. ttft=200ms or e2e=2s")
        seconds = float(match.group(1)) * (0.001 if match.group(2) == "ms" else 1.0)
        if seconds <= 0:
            raise UsageError(f"--slo {item!r}: an objective must be more than 0")
        objectives[name] = seconds
    if not objectives:
        raise UsageError("--slo is empty", fix="e.g. --slo ttft=200ms,tpot=50ms")
    return objectives


def objective_values(record: RequestRecord) -> dict[str, float | None]:
    """A successful request's value for each objective (None where it has none, e.g. no stream)."""
    gaps = record.itl_s
    return {
        "ttft": record.ttft_s,
        "tpot": record.tpot_s,
        "itl": max(gaps) if gaps else None,
        "e2e": record.latency_s,
    }


@dataclass(frozen=True)
class Goodput:
    """Requests that succeeded and met every objective: `good` of `requests` sent, as a share and
    a rate over the stage's span; `met[name]` counts successful requests within that objective
    (a request without a value, e.g. no TTFT when not streaming, does not meet it)."""

    objectives: Mapping[str, float]
    requests: int
    good: int
    share: float
    rps: float | None
    met: Mapping[str, int]

    def as_dict(self) -> dict[str, object]:
        return {
            "objectives_s": dict(self.objectives),
            "good": self.good,
            "share": round(self.share, 6),
            "rps": None if self.rps is None else round(self.rps, 3),
            "met": dict(self.met),
        }


def goodput(records: Sequence[RequestRecord], objectives: Mapping[str, float], span_s: float | None) -> Goodput:
    met = dict.fromkeys(objectives, 0)
    good = 0
    for record in records:
        if not record.ok:
            continue
        values = objective_values(record)
        all_met = True
        for name, ceiling in objectives.items():
            value = values[name]
            if value is not None and value <= ceiling:
                met[name] += 1
            else:
                all_met = False
        good += all_met
    total = len(records)
    return Goodput(
        objectives=dict(objectives),
        requests=total,
        good=good,
        share=good / total if total else 0.0,
        rps=good / span_s if span_s else None,
        met=met,
    )


@dataclass(frozen=True)
class Throughput:
    """Over the stage's span (first send to last answer): completed requests and output tokens
    per second; `usage_reported` counts successful requests whose token count came from the
    server's usage report rather than from counting chunks."""

    span_s: float | None
    requests_per_s: float | None
    output_tokens: int
    output_tokens_per_s: float | None
    usage_reported: int

    def as_dict(self) -> dict[str, object]:
        return {
            "span_s": None if self.span_s is None else round(self.span_s, 6),
            "requests_per_s": None if self.requests_per_s is None else round(self.requests_per_s, 3),
            "output_tokens": self.output_tokens,
            "output_tokens_per_s": None if self.output_tokens_per_s is None else round(self.output_tokens_per_s, 3),
            "usage_reported": self.usage_reported,
        }


def stage_span(records: Sequence[RequestRecord]) -> float | None:
    """First send to last answer of a stage's requests."""
    if not records:
        return None
    span = max(r.sent_s + r.latency_s for r in records) - min(r.sent_s for r in records)
    return span if span > 0 else None


def throughput(records: Sequence[RequestRecord]) -> Throughput:
    span = stage_span(records)
    ok = [r for r in records if r.ok]
    tokens = sum(r.output_tokens for r in ok)
    return Throughput(
        span_s=span,
        requests_per_s=len(ok) / span if span else None,
        output_tokens=tokens,
        output_tokens_per_s=tokens / span if span else None,
        usage_reported=sum(1 for r in ok if r.usage_reported),
    )


@dataclass(frozen=True)
class Latencies:
    """Summaries over a stage's successful requests: total, TTFT, ITL (every gap, pooled), TPOT."""

    total: Summary | None
    ttft: Summary | None
    itl: Summary | None
    tpot: Summary | None

    def as_dict(self) -> dict[str, object]:
        def one(summary: Summary | None) -> object:
            return summary.as_dict() if summary else None

        return {
            "latency_s": one(self.total),
            "ttft_s": one(self.ttft),
            "itl_s": one(self.itl),
            "tpot_s": one(self.tpot),
        }


def latencies(records: Sequence[RequestRecord]) -> Latencies:
    ok = [r for r in records if r.ok]
    ttfts = [t for t in (r.ttft_s for r in ok) if t is not None]
    tpots = [t for t in (r.tpot_s for r in ok) if t is not None]
    return Latencies(
        total=summarize(r.latency_s for r in ok),
        ttft=summarize(ttfts),
        itl=summarize(gap for r in ok for gap in r.itl_s),
        tpot=summarize(tpots),
    )
