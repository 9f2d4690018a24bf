"""The verify report: one result per check; `as_dict()` is the `data` of verify's JSON envelope."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "warn", "skip"]


@dataclass
class CheckResult:
    name: str
    status: Status
    detail: str
    hint: str = ""
    duration_s: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "hint": self.hint,
            "duration_s": round(self.duration_s, 3),
            "data": self.data,
        }


@dataclass
class Report:
    lab: str
    url: str
    checks: list[CheckResult]

    @property
    def passed(self) -> bool:
        return not any(check.status == "fail" for check in self.checks)

    def counts(self) -> dict[str, int]:
        counts = {"pass": 0, "fail": 0, "warn": 0, "skip": 0}
        for check in self.checks:
            counts[check.status] += 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "url": self.url,
            "passed": self.passed,
            "checks": [check.as_dict() for check in self.checks],
        }
