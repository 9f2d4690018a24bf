"""`igwlab load --out DIR`: the stage files and `load.png`.

The plot has two panels: latency percentiles (total and time to first token) against the
achieved rate, one point per stage; and each pod's share of every prefix, all stages pooled.
matplotlib is an optional extra (`pip install 'igwlab[plot]'`); it is checked before any load is
sent.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from igwlab.errors import CannotWriteError, PrerequisiteError
from igwlab.observe.report import write_stage_files

PLOT_FILE = "load.png"
MAX_PREFIXES_SHOWN = 24


def prepare_out_dir(directory: Path) -> None:
    """Make sure the files can be written, before the load runs: matplotlib is there and
    `directory` is (or can be made) a directory."""
    if importlib.util.find_spec("matplotlib") is None:
        raise PrerequisiteError(
            "--out draws load.png with matplotlib, which is not installed",
            fix="pip install 'igwlab[plot]' (or drop --out and use --json)",
        )
    if directory.exists() and not directory.is_dir():
        raise CannotWriteError(
            f"--out {directory} is a file, not a directory", fix="give a directory (it is made if missing)"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CannotWriteError(
            f"--out {directory} cannot be made: {error.strerror}", fix="give a writable directory"
        ) from None


def write_outputs(report: Mapping[str, Any], directory: Path) -> list[Path]:
    """The stage files, then the plot; returns their paths. A URL's user and password never reach them."""
    import json

    from igwlab.urls import redact_userinfo

    report = json.loads(redact_userinfo(json.dumps(report)))
    try:
        written = write_stage_files(report, directory)
        written.append(write_plot(report, directory / PLOT_FILE))
    except OSError as error:
        raise CannotWriteError(
            f"--out {directory}: {error.strerror or error}",
            why="the load ran, but its files could not be written",
            fix="give a writable directory; --json prints the same figures",
            data=dict(report),
        ) from None
    return written


def _x(stage: Mapping[str, Any]) -> float:
    achieved = stage["pacing"]["achieved_rps"]
    if achieved is not None:
        return float(achieved)
    return float(stage["throughput"]["requests_per_s"] or 0.0)


def write_plot(report: Mapping[str, Any], path: Path) -> Path:
    from matplotlib.figure import Figure

    stages = report["stages"]
    figure = Figure(figsize=(12, 4.8), layout="constrained")
    latency, shares = figure.subplots(1, 2)
    xs = [_x(stage) for stage in stages]
    for key, label, color in (("latency_s", "total", "tab:blue"), ("ttft_s", "first token", "tab:orange")):
        for percentile, style in (("p50", "-o"), ("p90", "--s"), ("p99", ":^")):
            points = [
                (x, stage[key][percentile] * 1000)
                for x, stage in zip(xs, stages, strict=True)
                if stage[key] is not None
            ]
            if points:
                latency.plot(*zip(*points, strict=True), style, color=color, label=f"{label} {percentile}")
    for x, stage in zip(xs, stages, strict=True):
        if not stage["pacing"]["trustworthy"]:
            latency.axvline(x, color="tab:red", alpha=0.3, linewidth=6)
    latency.set_xlabel("achieved rate (requests/s)")
    latency.set_ylabel("latency (ms)")
    latency.set_ylim(bottom=0)
    latency.set_title(f"{report['model']}: latency by rate (red band: client fell behind)", fontsize=10)
    latency.grid(True, alpha=0.3)
    if latency.get_legend_handles_labels()[0]:
        latency.legend(fontsize=8)

    pooled: dict[str, Counter[str]] = {}
    for stage in stages:
        for prefix, data in stage["per_prefix"].items():
            pooled.setdefault(prefix, Counter()).update(data["pods"])
    prefixes = list(pooled)[:MAX_PREFIXES_SHOWN]
    pods = sorted({pod for prefix in prefixes for pod in pooled[prefix]})
    left = [0.0] * len(prefixes)
    for pod in pods:
        widths = [pooled[prefix][pod] / sum(pooled[prefix].values()) for prefix in prefixes]
        shares.barh(prefixes, widths, left=left, label=pod)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    shares.set_xlim(0, 1)
    shares.set_xlabel("share of the prefix's requests")
    shares.set_title("which pods served each prefix (all stages)", fontsize=10)
    shares.invert_yaxis()
    if pods:
        shares.legend(fontsize=8, loc="lower right")
    else:
        shares.text(0.5, 0.5, "no successful requests", ha="center", va="center", transform=shares.transAxes)
    figure.savefig(path, dpi=100)
    return path
