"""Live progress of `up`: a list of steps with their state and elapsed time, then a summary."""

from __future__ import annotations

import threading
import time
from types import TracebackType

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from igwlab.cli.output import Column, print_table, stderr
from igwlab.plan import Plan
from igwlab.records import Event
from igwlab.runner import RunResult

_STYLE = {
    "waiting": "dim",
    "running": "cyan",
    "done": "green",
    "skipped": "green",
    "failed": "bold red",
    "cancelled": "yellow",
    "dry-run": "blue",
    "not-run": "dim",
}


class Progress:
    """Thread-safe sink for runner events. On a terminal: a live table; elsewhere: one line per event."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.state = {step.id: "waiting" for step in plan.steps}
        self.detail = {step.id: step.title for step in plan.steps}
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self._lock = threading.Lock()
        self._console = stderr()
        self._live = (
            Live(self._render(), console=self._console, refresh_per_second=4, transient=False)
            if self._console.is_terminal
            else None
        )

    def __enter__(self) -> Progress:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(kind, error, trace)

    def __call__(self, event: Event) -> None:
        with self._lock:
            now = time.monotonic()
            if event.kind == "start":
                self.state[event.step] = "running"
                self.started[event.step] = now
            elif event.kind in ("apply", "wait"):
                self.detail[event.step] = f"{event.kind}: {event.message}"
            elif event.kind == "dry-run":
                self.state[event.step] = "dry-run"
            else:
                self.state[event.step] = {
                    "skip": "skipped",
                    "done": "done",
                    "failed": "failed",
                    "cancelled": "cancelled",
                }.get(event.kind, self.state[event.step])
                self.ended[event.step] = now
                if event.message:
                    self.detail[event.step] = event.message
            if self._live is not None:
                self._live.update(self._render())
            elif event.kind != "dry-run":
                duration = f" {event.duration_s:.1f}s" if event.duration_s is not None else ""
                self._console.print(
                    Text.assemble(
                        (f"{event.step}: {event.kind}{duration}", _STYLE.get(self.state[event.step], "")),
                        " ",
                        event.message,
                    ),
                    highlight=False,
                )

    def _elapsed(self, step: str) -> str:
        if step not in self.started:
            return ""
        return f"{self.ended.get(step, time.monotonic()) - self.started[step]:.1f}s"

    def _render(self) -> Group:
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        table.add_column(overflow="ellipsis", no_wrap=True)
        for step in self.plan.steps:
            state = self.state[step.id]
            table.add_row(Text(state, style=_STYLE[state]), step.id, self._elapsed(step.id), Text(self.detail[step.id]))
        return Group(Text(f"igwlab up: lab {self.plan.lab} ({self.plan.stack})", style="bold"), table)


def print_summary(plan: Plan, result: RunResult) -> None:
    rows = []
    for step in plan.steps:
        outcome = result.outcomes[step.id]
        rows.append(
            [
                step.id,
                Text(outcome.status, style=_STYLE.get(outcome.status, "")),
                f"{outcome.duration_s:.1f}s" if outcome.duration_s else "",
                outcome.message,
            ]
        )
    print_table(
        [Column("step"), Column("result"), Column("time", justify="right"), Column("note", "note")], rows, title="steps"
    )
