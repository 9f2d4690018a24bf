"""`igwlab up` on a real API server: a kwok cluster built by tests/testbin, the real helm installing the
real charts from an offline mirror, the real EPP and Envoy answering the warm-up (tests/reallab.py).

    python benchmarks/bench_up_real.py [--lab kgateway-fake-llm] [--runs 3]

Prints, per run: the wall time of `up`, each step's time, the re-run's wall time and which steps it
redid; then the medians against the goals (up under 30 s, re-run under 2 s). Needs the testbin binaries
(`python tests/testbin build`, about 25 minutes cold) and ../shared/upstream beside the repository.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

UP_GOAL_S = 30.0
RERUN_GOAL_S = 2.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab", default="kgateway-fake-llm", help="a fake-LLM preset (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=3, help="fresh clusters to bring the lab up on")
    args = parser.parse_args()

    import testbin
    from mirror_support import assemble_mirror
    from reallab import RealLab

    for tool in testbin.TOOLS.values():
        testbin.ensure(tool)
    with tempfile.TemporaryDirectory(prefix="bench-up-real-") as scratch:
        root = Path(scratch)
        mirror = assemble_mirror([args.lab], root / "mirror")
        ups: list[float] = []
        reruns: list[float] = []
        for run in range(1, args.runs + 1):
            with RealLab.start(root / f"run-{run}", mirror) as lab:
                started = time.perf_counter()
                up = lab.igwlab("up", "--lab", args.lab, "--timeout", "300", "--json")
                up_s = time.perf_counter() - started
                if up.returncode != 0:
                    print(up.output + lab.diagnostics(), file=sys.stderr)
                    return 1
                steps = up.json()["data"]["steps"]
                started = time.perf_counter()
                again = lab.igwlab("up", "--lab", args.lab, "--json")
                rerun_s = time.perf_counter() - started
                redone = [s["step"] for s in again.json()["data"]["steps"] if s["status"] != "skipped"]
            ups.append(up_s)
            reruns.append(rerun_s)
            print(f"run {run}: up {up_s:.1f}s, re-run {rerun_s:.2f}s (redid: {', '.join(redone) or 'nothing'})")
            for step in steps:
                print(f"    {step['step']:<28} {step['status']:<8} {step['duration_s']:6.2f}s")
    up_median, rerun_median = statistics.median(ups), statistics.median(reruns)
    print()
    print(f"up      median {up_median:6.1f}s  min {min(ups):6.1f}s  max {max(ups):6.1f}s  goal {UP_GOAL_S:.0f}s  "
          f"ratio {up_median / UP_GOAL_S:.2f}")  # fmt: skip
    print(f"re-run  median {rerun_median:6.2f}s  min {min(reruns):6.2f}s  max {max(reruns):6.2f}s  "
          f"goal {RERUN_GOAL_S:.0f}s  ratio {rerun_median / RERUN_GOAL_S:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
