"""The report of `igwlab load`: one section per stage, as data (`--json`) and as files (`--out`).

Besides the figures any load tool gives (pacing, latencies, throughput, goodput), each stage
says what only a gateway lab shows: which pods served each shared prefix, and how sheddable and
critical requests fared. The per-stage JSON follows `stage.schema.json` beside this module.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from igwlab.observe import metrics
from igwlab.observe.metrics import RequestRecord
from igwlab.observe.pacing import PacingReport, pacing_report
from igwlab.observe.workers import StagePlan

STAGE_KIND = "igwlab.load.stage"
STAGE_VERSION = 1


@dataclass
class StageResult:
    """What the workers brought back from one stage."""

    plan: StagePlan
    records: list[RequestRecord]
    skipped: int = 0
    connections_opened: int = 0
    workers: int = 1


def stage_report(result: StageResult, slo: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The JSON-ready report of one stage (see `stage.schema.json`)."""
    plan = result.plan
    records = sorted(result.records, key=lambda r: r.sent_s)
    pacing: PacingReport = pacing_report(
        [r.sent_s for r in records],
        [r.intended_s or 0.0 for r in records] if plan.rps is not None else None,
        target_rps=plan.rps,
        skipped=result.skipped,
    )
    ok = [r for r in records if r.ok]
    span = metrics.stage_span(records)
    return {
        "kind": STAGE_KIND,
        "version": STAGE_VERSION,
        "stage": plan.number,
        "label": plan.label,
        "target": {"rps": plan.rps, "arrival": plan.arrival}
        if plan.rps is not None
        else {"concurrency": plan.concurrency},
        "duration_s": plan.duration_s,
        "workers": result.workers,
        "requests": len(records),
        "succeeded": len(ok),
        "status": dict(Counter(r.outcome() for r in records).most_common()),
        "errors": _error_samples(records),
        "pacing": pacing.as_dict(),
        **metrics.latencies(records).as_dict(),
        "throughput": metrics.throughput(records).as_dict(),
        "goodput": metrics.goodput(records, slo, span).as_dict() if slo else None,
        "connections_opened": result.connections_opened,
        "by_class": _by_class(records),
        "pods": dict(Counter(r.pod or "(unknown)" for r in ok).most_common()),
        "per_prefix": _per_prefix(ok),
    }


def _error_samples(records: Sequence[RequestRecord], limit: int = 5) -> dict[str, str]:
    """The first message seen for each failing outcome, so a failure explains itself."""
    samples: dict[str, str] = {}
    for record in records:
        if not record.ok and record.outcome() not in samples and len(samples) < limit:
            samples[record.outcome()] = record.error_detail
    return samples


def _by_class(records: Sequence[RequestRecord]) -> dict[str, Any]:
    classes: dict[str, list[RequestRecord]] = defaultdict(list)
    for record in records:
        classes[record.klass].append(record)
    report: dict[str, Any] = {}
    for klass, members in sorted(classes.items()):
        total = metrics.summarize(r.latency_s for r in members if r.ok)
        report[klass] = {
            "requests": len(members),
            "outcomes": dict(Counter(r.outcome() for r in members).most_common()),
            "latency_s": total.as_dict() if total else None,
        }
    return report


def _per_prefix(ok: Sequence[RequestRecord]) -> dict[str, Any]:
    per_prefix: dict[str, Counter[str]] = defaultdict(Counter)
    for record in ok:
        per_prefix[record.prefix][record.pod or "(unknown)"] += 1
    return {
        prefix: {
            "pods": dict(pods.most_common()),
            "top_pod_share": round(pods.most_common(1)[0][1] / sum(pods.values()), 6),
        }
        for prefix, pods in sorted(per_prefix.items(), key=lambda item: _natural(item[0]))
    }


def _natural(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


@dataclass
class LoadReport:
    """A whole run: where it went, how it was sent, and each stage's report."""

    url: str
    model: str
    mode: str
    arrival: str | None
    workers: int
    seed: int
    slo: Mapping[str, float] | None
    stages: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "model": self.model,
            "mode": self.mode,
            "arrival": self.arrival,
            "workers": self.workers,
            "seed": self.seed,
            "slo_s": dict(self.slo) if self.slo else None,
            "requests": sum(stage["requests"] for stage in self.stages),
            "succeeded": sum(stage["succeeded"] for stage in self.stages),
            "stages": self.stages,
        }


def stage_file_name(stage: Mapping[str, Any]) -> str:
    target = stage["target"]
    what = f"rps-{target['rps']:g}" if target.get("rps") is not None else f"concurrency-{target['concurrency']}"
    return f"stage-{stage['stage']}-{what}.json"


def write_stage_files(report: Mapping[str, Any], directory: Path) -> list[Path]:
    """One JSON file per stage, each self-contained (the run's URL, model and seed included)."""
    run = {key: value for key, value in report.items() if key != "stages"}
    written = []
    for stage in report["stages"]:
        path = directory / stage_file_name(stage)
        path.write_text(json.dumps({**stage, "run": run}, indent=2) + "\n")
        written.append(path)
    return written


def stage_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a stage file."""
    text = resources.files("igwlab.observe").joinpath("stage.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema
