"""Benchmark: `igwlab --help` and `igwlab render` for every preset, median wall time.

Goal (issue 2): `igwlab --help` no slower than 1.5x `python -c "import typer, rich"`, and heavy
modules (kubernetes, pyhelm3, httpx) never imported by --help, labs, plan or render.

    python benchmarks/bench_cli.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from igwlab.labs import preset_names


def median_seconds(argv: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, timeout=120)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    python = sys.executable

    baseline = median_seconds([python, "-c", "import typer, rich"], args.runs)
    help_time = median_seconds([python, "-m", "igwlab", "--help"], args.runs)
    print(f"python -c 'import typer, rich'  median {baseline * 1000:7.1f} ms")
    print(
        f"igwlab --help                   median {help_time * 1000:7.1f} ms  ratio {help_time / baseline:.2f}x "
        f"(goal <= 1.50x: {'met' if help_time <= 1.5 * baseline else 'MISSED'})"
    )

    per_lab = []
    for lab in preset_names():
        seconds = median_seconds([python, "-m", "igwlab", "render", "--lab", lab], max(3, args.runs // 3))
        per_lab.append(seconds)
        print(f"igwlab render --lab {lab:24s} median {seconds * 1000:7.1f} ms")
    print(f"render, all presets: median of medians {statistics.median(per_lab) * 1000:.1f} ms")

    probe = (
        "import sys\nfrom typer.testing import CliRunner\nfrom igwlab.cli.app import app\nr = CliRunner()\n"
        "for a in (['--help'], ['labs'], ['plan'], ['render']): r.invoke(app, a)\n"
        "print(sorted(m for m in ('kubernetes', 'pyhelm3', 'httpx') if m in sys.modules))"
    )
    heavy = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    print(f"heavy modules imported by --help/labs/plan/render: {heavy.stdout.strip()}")


if __name__ == "__main__":
    main()
