"""Benchmark: how long the light commands take next to `igwlab --help`, as whole processes.

Goal (issue 12): `igwlab labs`, `labs show`, `plan` and `render` of one preset within 1.5x of
`igwlab --help`. Printed for each: the median CPU time (user + system of the process, which holds on
a busy machine) and the median wall time, and both as ratios to `--help`. Also printed:

- the parser floor: `igwlab plan --workload none`, which Typer refuses while parsing (exit 2),
  before any igwlab code runs. Typer validates every option through pydantic, so every command that
  parses an option costs at least this much; the ratios to the floor show igwlab's own share.
- `python -c "import typer, rich"` against `--help` (issue 2's goal: --help within 1.5x of that),
- `render` of every preset, and which heavy modules the light commands import (never kubernetes,
  httpx or pyhelm3).

Runs start from bytecode caches, as an installed igwlab does ($PYTHONDONTWRITEBYTECODE is dropped,
and each command runs once before it is measured).

    python benchmarks/bench_cli.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from igwlab.labs import preset_names

GOAL = 1.5


@dataclass(frozen=True)
class Timing:
    cpu_s: float
    wall_s: float


def measure(argv: list[str], runs: int, env: dict[str, str]) -> Timing:
    subprocess.run(argv, capture_output=True, timeout=120, env=env, check=False)  # warm-up: bytecode, page cache
    cpu, wall = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, timeout=120, env=env, check=False)
        wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return Timing(statistics.median(cpu), statistics.median(wall))


def row(label: str, timing: Timing, help_time: Timing, floor: Timing | None = None, goal: bool = False) -> str:
    text = (
        f"{label:38s} cpu {timing.cpu_s * 1000:6.0f} ms  wall {timing.wall_s * 1000:6.0f} ms  "
        f"vs --help: cpu {timing.cpu_s / help_time.cpu_s:4.2f}x wall {timing.wall_s / help_time.wall_s:4.2f}x"
    )
    if floor is not None:
        text += f"  vs floor: cpu {timing.cpu_s / floor.cpu_s:4.2f}x"
    if goal:
        text += f"  (goal <= {GOAL:.2f}x: {'met' if timing.cpu_s <= GOAL * help_time.cpu_s else 'MISSED'})"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    python = sys.executable
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    igwlab = [python, "-m", "igwlab"]

    baseline = measure([python, "-c", "import typer, rich"], args.runs, env)
    help_time = measure([*igwlab, "--help"], args.runs, env)
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; median of {args.runs} runs each")
    print(row("python -c 'import typer, rich'", baseline, help_time))
    print(
        f"{'igwlab --help':38s} cpu {help_time.cpu_s * 1000:6.0f} ms  wall {help_time.wall_s * 1000:6.0f} ms  "
        f"vs import typer, rich: cpu {help_time.cpu_s / baseline.cpu_s:4.2f}x "
        f"(goal <= {GOAL:.2f}x: {'met' if help_time.cpu_s <= GOAL * baseline.cpu_s else 'MISSED'})"
    )
    floor = measure([*igwlab, "plan", "--workload", "none"], args.runs, env)
    print(row("floor: igwlab plan --workload none", floor, help_time))
    light = (["labs"], ["labs", "show", "kgateway-fake-llm"], ["plan"], ["render", "--lab", "kgateway-fake-llm"])
    for command in light:
        print(row("igwlab " + " ".join(command), measure([*igwlab, *command], args.runs, env), help_time, floor, True))
    for command in (["labs", "--json"], ["plan", "--json"]):
        print(row("igwlab " + " ".join(command), measure([*igwlab, *command], args.runs, env), help_time, floor))

    per_lab = []
    for lab in preset_names():
        timing = measure([*igwlab, "render", "--lab", lab], max(3, args.runs // 3), env)
        per_lab.append(timing.cpu_s)
        print(f"igwlab render --lab {lab:24s} cpu {timing.cpu_s * 1000:6.0f} ms  wall {timing.wall_s * 1000:6.0f} ms")
    print(f"render, all presets: median cpu {statistics.median(per_lab) * 1000:.0f} ms")

    probe = (
        "import sys\nfrom typer.testing import CliRunner\nfrom igwlab.cli.app import app\nr = CliRunner()\n"
        "for a in (['--help'], ['labs'], ['labs', 'show', 'kv-cache-aware'], ['plan'], ['render']): r.invoke(app, a)\n"
        "print(sorted(m for m in ('kubernetes', 'pyhelm3', 'httpx') if m in sys.modules))"
    )
    heavy = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True, timeout=120, env=env)
    print(f"heavy modules imported by --help/labs/labs show/plan/render: {heavy.stdout.strip()}")


if __name__ == "__main__":
    main()
