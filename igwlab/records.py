"""Run records: one folder per `up`/`teardown` under the state directory, like ansible-runner's
artifact folders: the plan, events with timings, every tool command with its output, the result.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from igwlab.crashes import redact_argv
from igwlab.state import state_dir
from igwlab.tools.proc import CommandResult

MAX_OUTPUT = 20_000
KEEP_RUNS = 20


@dataclass(frozen=True)
class Event:
    time: float
    step: str
    kind: str  # start | skip | apply | wait | done | failed | cancelled | dry-run
    message: str = ""
    duration_s: float | None = None


class RunRecord:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()

    @classmethod
    def create(cls, command: str, lab: str) -> RunRecord:
        runs = state_dir() / "runs"
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        directory = runs / f"{stamp}-{command}-{lab}"
        directory.mkdir(parents=True, exist_ok=False)
        _rotate(runs)
        return cls(directory)

    def write_json(self, name: str, data: Any) -> Path:
        path = self.directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        return path

    def write_text(self, name: str, text: str) -> Path:
        path = self.directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def event(self, event: Event) -> None:
        self._append("events.jsonl", asdict(event))

    def command(self, result: CommandResult) -> None:
        self._append(
            "commands.jsonl",
            {
                "argv": redact_argv(result.argv),
                "returncode": result.returncode,
                "duration_s": round(result.duration_s, 3),
                "stdout": result.stdout[-MAX_OUTPUT:],
                "stderr": result.stderr[-MAX_OUTPUT:],
            },
        )

    def _append(self, name: str, row: dict[str, Any]) -> None:
        with self._lock, (self.directory / name).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, default=str) + "\n")


def _rotate(runs: Path) -> None:
    folders = sorted((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.name)
    for old in folders[:-KEEP_RUNS]:
        for path in sorted(old.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        old.rmdir()


def latest_run(command: str | None = None) -> Path | None:
    runs = state_dir() / "runs"
    if not runs.is_dir():
        return None
    folders = sorted(p for p in runs.iterdir() if p.is_dir() and (command is None or f"-{command}-" in p.name))
    return folders[-1] if folders else None


def private_file(path: Path, text: str) -> None:
    """Write a file only the user can read (kubeconfigs hold credentials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
