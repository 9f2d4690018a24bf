"""Execute a Plan: steps start as soon as the steps they depend on are done, up to a few at once.

Each step: skip it if it is done already (this is what makes a re-run quick and a failed run
resumable), else apply it, then wait for its gates. Every change of state is an Event, for the
progress display and the run record. The first failure stops new steps from starting; Ctrl-C
kills running commands and stops waits at their next check.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from igwlab.errors import IgwlabError
from igwlab.plan import Step
from igwlab.records import Event
from igwlab.steps import Cancelled, StepAction, UpContext
from igwlab.tools.kube import api_error_line

EventSink = Callable[[Event], None]


@dataclass
class StepOutcome:
    step: str
    status: str  # done | skipped | failed | cancelled | not-run | dry-run
    duration_s: float = 0.0
    message: str = ""


@dataclass
class RunResult:
    outcomes: dict[str, StepOutcome] = field(default_factory=dict)
    error: IgwlabError | None = None
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.interrupted


class Worker:
    def __init__(self, ctx: UpContext, on_event: EventSink | None = None, max_parallel: int = 4) -> None:
        self.ctx = ctx
        self.max_parallel = max_parallel
        self._sinks = [sink for sink in (on_event,) if sink is not None]

    def emit(self, step: str, kind: str, message: str = "", duration_s: float | None = None) -> None:
        event = Event(time.time(), step, kind, message, duration_s)
        if self.ctx.record is not None:
            self.ctx.record.event(event)
        for sink in self._sinks:
            sink(event)

    def run(self) -> RunResult:
        steps = {step.id: step for step in self.ctx.plan.steps}
        result = RunResult({sid: StepOutcome(sid, "not-run") for sid in steps})
        running: dict[Future[StepOutcome], str] = {}
        finished: set[str] = set()
        with ThreadPoolExecutor(max_workers=self.max_parallel, thread_name_prefix="igwlab-step") as pool:
            try:
                while True:
                    if result.error is None:
                        for sid, step in steps.items():
                            startable = sid not in finished and sid not in running.values()
                            if startable and all(dep in finished for dep in step.depends_on):
                                running[pool.submit(self._run_step, step)] = sid
                    if not running:
                        break
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        sid = running.pop(future)
                        try:
                            outcome = future.result()
                        except IgwlabError as error:
                            outcome = StepOutcome(sid, "failed", message=error.what)
                            result.error = result.error or error
                        result.outcomes[sid] = outcome
                        if outcome.status in ("done", "skipped", "dry-run"):
                            finished.add(sid)
            except KeyboardInterrupt:
                result.interrupted = True
                self.ctx.cancel.set()
                self.ctx.tools.kill_all()
                for future, sid in running.items():
                    try:
                        result.outcomes[sid] = future.result(timeout=30)
                    except (IgwlabError, Cancelled, KeyboardInterrupt, TimeoutError):
                        result.outcomes[sid] = StepOutcome(sid, "cancelled")
                        self.emit(sid, "cancelled", "interrupted")
        return result

    def _run_step(self, step: Step) -> StepOutcome:
        start = time.perf_counter()
        action = StepAction(self.ctx, step)
        self.emit(step.id, "start", step.title)
        try:
            if self.ctx.dry_run:
                for line in action.describe():
                    self.emit(step.id, "dry-run", line)
                return StepOutcome(step.id, "dry-run")
            if action.is_done():
                elapsed = time.perf_counter() - start
                self.emit(step.id, "skip", "already done", elapsed)
                return StepOutcome(step.id, "skipped", elapsed, "already done")
            self.emit(step.id, "apply", step.title)
            action.apply()
            self.emit(step.id, "wait", "; ".join(step.waits_for))
            action.wait()
        except Cancelled:
            elapsed = time.perf_counter() - start
            self.emit(step.id, "cancelled", "interrupted", elapsed)
            return StepOutcome(step.id, "cancelled", elapsed)
        except KeyboardInterrupt:
            elapsed = time.perf_counter() - start
            self.emit(step.id, "cancelled", "interrupted", elapsed)
            return StepOutcome(step.id, "cancelled", elapsed)
        except IgwlabError as error:
            elapsed = time.perf_counter() - start
            self.emit(step.id, "failed", error.what + (f" ({error.why})" if error.why else ""), elapsed)
            raise
        except Exception as error:  # the kube client's own errors: report as the step's failure
            elapsed = time.perf_counter() - start
            message = api_error_line(error, 500)
            self.emit(step.id, "failed", message, elapsed)
            raise IgwlabError(
                f"step {step.id} failed: {message}",
                fix="`igwlab diagnose` collects events and logs; re-run `igwlab up` to retry",
            ) from error
        elapsed = time.perf_counter() - start
        self.emit(step.id, "done", "", elapsed)
        return StepOutcome(step.id, "done", elapsed)
