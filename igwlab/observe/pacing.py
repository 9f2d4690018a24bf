"""Open-loop pacing: when each request of a stage is meant to go out, and how honestly it did.

A load tool that falls behind its schedule sends late without saying so, and every latency it
then reports carries that lag. `igwlab load` records each request's intended and actual send
time (seconds from the stage start) and judges its own figures with `pacing_report`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from igwlab.observe.metrics import Summary, summarize

Arrival = Literal["constant", "poisson"]
ARRIVALS: tuple[Arrival, ...] = ("constant", "poisson")

LAG_FLOOR_S = 0.010
"""Send lag p99 up to this is always fine; above it, up to half the mean interval still is."""


def arrival_offsets(rate: float, duration_s: float, arrival: Arrival, seed: int) -> Iterator[float]:
    """Intended send times of a stage, in seconds from its start, all below `duration_s`.

    `constant`: every `1/rate` s from 0. `poisson`: the first at 0, then exponential gaps with
    mean `1/rate` drawn from `random.Random(seed)` — the same seed gives the same schedule in
    every worker process. Lazy, so a long stage costs no memory up front.
    """
    if rate <= 0 or duration_s <= 0:
        return
    if arrival == "constant":
        for k in range(math.ceil(rate * duration_s)):
            offset = k / rate
            if offset >= duration_s:
                return
            yield offset
        return
    rng = random.Random(seed)
    offset = 0.0
    while offset < duration_s:
        yield offset
        offset += rng.expovariate(rate)


def lag_limit_s(rate: float) -> float:
    """The send-lag p99 above which a stage's figures are not trustworthy: max(10 ms, interval / 2)."""
    return max(LAG_FLOOR_S, 0.5 / rate)


@dataclass(frozen=True)
class PacingReport:
    """How a stage's sends kept to plan. Times in seconds.

    `achieved_rps` is (sent - 1) / send window, the window running from the first actual send to
    the last, so a perfect constant schedule gives exactly its rate. Open loop only: `send_lag`
    (actual - intended), `lag_limit_s`, and `trustworthy` = lag p99 within the limit.
    """

    target_rps: float | None
    sent: int
    skipped: int
    send_window_s: float | None
    achieved_rps: float | None
    send_lag: Summary | None
    lag_limit_s: float | None
    trustworthy: bool
    warning: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "target_rps": self.target_rps,
            "sent": self.sent,
            "skipped_client_saturated": self.skipped,
            "send_window_s": _round(self.send_window_s),
            "achieved_rps": _round(self.achieved_rps, 3),
            "send_lag_s": self.send_lag.as_dict() if self.send_lag else None,
            "lag_limit_s": _round(self.lag_limit_s),
            "trustworthy": self.trustworthy,
            "warning": self.warning,
        }


def pacing_report(
    actual: Sequence[float],
    intended: Sequence[float] | None = None,
    *,
    target_rps: float | None = None,
    skipped: int = 0,
) -> PacingReport:
    """Judge a stage's sends. `actual[i]` and `intended[i]` belong to the same request;
    `intended` is None for closed loop (no schedule). `skipped`: scheduled requests not sent
    because the in-flight cap was reached."""
    if intended is not None and len(intended) != len(actual):
        raise ValueError("intended and actual send times must pair up")
    sent = len(actual)
    window = (max(actual) - min(actual)) if sent else None
    achieved = (sent - 1) / window if window else None
    lag: Summary | None = None
    limit: float | None = None
    warnings: list[str] = []
    if intended is not None and target_rps:
        lag = summarize([a - i for a, i in zip(actual, intended, strict=True)])
        limit = lag_limit_s(target_rps)
        if lag is not None and lag.p99 > limit:
            warnings.append(
                f"the client sent late: send lag p99 {lag.p99 * 1000:.1f} ms is above {limit * 1000:.1f} ms, "
                "so the achieved rate and the latencies of this stage are not trustworthy; "
                "give more --workers or a lower --rps"
            )
    if skipped:
        warnings.append(
            f"{skipped} scheduled requests were not sent because every in-flight slot was taken: "
            "the server answers more slowly than the rate asks for"
        )
    trustworthy = lag is None or limit is None or lag.p99 <= limit
    return PacingReport(
        target_rps=target_rps,
        sent=sent,
        skipped=skipped,
        send_window_s=window,
        achieved_rps=achieved,
        send_lag=lag,
        lag_limit_s=limit,
        trustworthy=trustworthy,
        warning="; ".join(warnings) or None,
    )


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)
