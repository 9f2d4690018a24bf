"""Benchmark: `igwlab mirror` with the real helm, the upstream chart packages served on 127.0.0.1.

Prints: a first save of every preset and add-on into one mirror (helm pull over a chart repository
and an OCI registry stand-in, `helm template` per release), a second save of the same (everything
kept), `mirror check` per lab (every sha256 verified), and the sha256 throughput that bounds how long
`up --mirror` spends verifying image archives. Needs ../shared/upstream and the test binary cache
(helm is built into it when absent).

    python benchmarks/bench_mirror.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from mirror_support import assemble_mirror_reports, every_preset_selection

from igwlab.mirror import check, sha256_file
from igwlab.render import render_lab
from igwlab.selection import resolve_lab


def main() -> None:
    selections = every_preset_selection()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "mirror"
        start = time.perf_counter()
        _, first = assemble_mirror_reports(selections, root)
        first_s = time.perf_counter() - start
        files = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]
        size = sum(p.stat().st_size for p in files)
        fetched = sum(1 for report in first for item in report.items if item.action != "kept")
        print(
            f"first save, {len(selections)} labs: {first_s:.1f} s, {fetched} items fetched, "
            f"{len(files)} files, {size / 2**20:.1f} MiB"
        )

        start = time.perf_counter()
        _, second = assemble_mirror_reports(selections, root)
        second_s = time.perf_counter() - start
        kept = sum(1 for report in second for item in report.items if item.action == "kept")
        total = sum(len(report.items) for report in second)
        print(
            f"second save (nothing new): {second_s:.1f} s, {kept}/{total} kept, ratio to first {second_s / first_s:.2f}"
        )

        times = []
        for selection in selections:
            rendered = render_lab(resolve_lab(selection))
            start = time.perf_counter()
            report = check(rendered, root, selection=selection)
            times.append(time.perf_counter() - start)
            assert report.ok, report.as_dict()
        print(f"mirror check per lab: median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")

        blob = Path(folder) / "blob"
        with blob.open("wb") as out:
            for _ in range(256):
                out.write(b"\0" * 2**20)
        start = time.perf_counter()
        sha256_file(blob)
        rate = 256 / (time.perf_counter() - start)
        print(f"sha256 throughput: {rate:.0f} MiB/s (a 1.5 GiB simulator-sized image set: {1536 / rate:.1f} s per up)")


if __name__ == "__main__":
    main()
