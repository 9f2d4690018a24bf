"""Benchmark: `igwlab up` against fake tools that sleep realistic durations, scaled down 10x.

Goals (issue 3): wall time within 1.15x of the critical path of the step durations (independent
steps really run at once); a re-run of a finished lab under 2 s; orchestration overhead per step
under 50 ms. Everything runs on 127.0.0.1 with the test doubles of tests/doubles (not shipped), and stops by itself.

    python benchmarks/bench_up.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the test doubles (not shipped)

from doubles.world import lab_world

from igwlab.lifecycle import up
from igwlab.plan import Plan
from igwlab.runner import RunResult

# Real-world seconds / 10: k3d create ~20 s, a CRD chart ~5 s, a controller chart ~15 s ...
TOOL_DELAYS = {
    "k3d cluster create": 2.0,
    "helm upgrade --install kgateway-crds": 0.5,
    "helm upgrade --install kgateway oci": 1.5,
}
READY_AFTER = {"CustomResourceDefinition": 0.2, "Deployment": 0.8, "Gateway": 0.5}


def critical_path(plan: Plan, result: RunResult) -> float:
    finish: dict[str, float] = {}
    for step in plan.steps:  # plan order is a topological order
        start = max((finish[dep] for dep in step.depends_on), default=0.0)
        finish[step.id] = start + result.outcomes[step.id].duration_s
    return max(finish.values())


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        os.environ["IGWLAB_STATE_DIR"] = str(root / "state")
        with lab_world(root / "timed", ready_after_s=READY_AFTER) as world:
            world.tools.configure(delays=TOOL_DELAYS)
            start = time.perf_counter()
            first = up(world.options(timeout_s=60), world.env)
            wall = time.perf_counter() - start
            assert first.run.ok, first.run.error
            path = critical_path(first.plan, first.run)
            start = time.perf_counter()
            again = up(world.options(timeout_s=60), world.env)
            rerun = time.perf_counter() - start
            assert again.run.ok
        print(
            f"up with scaled tool delays : wall {wall:.2f} s, critical path of step durations {path:.2f} s, "
            f"ratio {wall / path:.2f}x (goal <= 1.15x: {'met' if wall <= 1.15 * path else 'MISSED'})"
        )
        print(f"re-run of the finished lab : {rerun:.2f} s (goal < 2 s: {'met' if rerun < 2 else 'MISSED'})")

        os.environ["IGWLAB_STATE_DIR"] = str(root / "state-zero")
        with lab_world(root / "zero") as world:
            start = time.perf_counter()
            zero = up(world.options(timeout_s=60), world.env)
            elapsed = time.perf_counter() - start
            assert zero.run.ok
            commands = len(world.tools.calls())
        steps = len(zero.plan.steps)
        spawn_cost = _fake_command_cost(world.tools.bin_dir)
        overhead = (elapsed - commands * spawn_cost) / steps
        print(
            f"zero-delay run             : {elapsed:.2f} s for {steps} steps and {commands} fake commands "
            f"(~{spawn_cost * 1000:.0f} ms each to start a Python process)"
        )
        print(
            f"orchestration overhead     : {overhead * 1000:.0f} ms per step (goal < 50 ms: "
            f"{'met' if overhead < 0.05 else 'MISSED'})"
        )


def _fake_command_cost(bin_dir: Path) -> float:
    import subprocess

    samples = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([str(bin_dir / "helm"), "version", "--short"], capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return sorted(samples)[len(samples) // 2]


if __name__ == "__main__":
    main()
