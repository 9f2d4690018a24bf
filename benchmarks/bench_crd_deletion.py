"""CRDs deleted soon after they were made, on a real API server under CPU load: how long until they are
gone, with igwlab's wait (which asks the CRD finalizer to retry a failed pass) and without (the
finalizer's own backoff, up to 1000 s, as `kubectl delete --wait` leaves it).

    python benchmarks/bench_crd_deletion.py [--rounds 12] [--load 3] [--timeout 240]

Each round applies the real Gateway API v1.5.1 standard and GIE v1.5.0 CRDs of ../shared/upstream to a
kwok cluster (tests/testbin), waits until they are Established, deletes them all and waits until they
are gone; `--load` busy processes keep the cores busy meanwhile, as a loaded CI machine does (the
finalizer's List then now and again meets a watch cache still starting: "could not list instances:
storage is (re)initializing"). Rounds alternate between the two waits. Prints each round and, per wait,
the median and longest time, how many rounds took over 10 s and how many igwlab asked to retry.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
UPSTREAM = ROOT.parent / "shared" / "upstream"
SLOW_S = 10.0  # a round the finalizer's backoff held up (an undisturbed one takes 2 to 3 s here)


def _busy(stop_at: float) -> None:
    while time.monotonic() < stop_at:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12, help="delete rounds, alternating the two waits")
    parser.add_argument("--load", type=int, default=3, help="busy processes beside the cluster")
    parser.add_argument("--timeout", type=float, default=240, help="seconds a round may wait")
    args = parser.parse_args()

    import testbin
    from kwokcluster import KwokCluster

    from igwlab import deletion
    from igwlab.errors import StepTimeoutError
    from igwlab.tools.kube import KubernetesApi

    for tool in testbin.TOOLS.values():
        if tool.name in ("kubernetes", "etcd", "kwok"):
            testbin.ensure(tool)
    files = sorted((UPSTREAM / "gateway-api" / "v1.5.1" / "standard").glob("*.yaml"))
    files += sorted((UPSTREAM / "gie" / "v1.5.0").glob("*networking*.yaml"))
    times: dict[str, list[float]] = {"igwlab": [], "no-retry": []}
    retried: dict[str, int] = {"igwlab": 0, "no-retry": 0}
    with tempfile.TemporaryDirectory(prefix="bench-crd-deletion-") as scratch:
        cluster = KwokCluster.create(f"bench-crd-{uuid.uuid4().hex[:6]}", Path(scratch), nodes=0)
        stop_at = time.monotonic() + args.rounds * (args.timeout + 30)
        busy = [multiprocessing.Process(target=_busy, args=(stop_at,), daemon=True) for _ in range(args.load)]
        for process in busy:
            process.start()
        try:
            kube = KubernetesApi(str(cluster.kubeconfig), cluster.context)
            for round_ in range(1, args.rounds + 1):
                mode = "igwlab" if round_ % 2 else "no-retry"
                for path in files:
                    cluster.kubectl("apply", "--server-side", "-f", str(path))
                cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=120s")
                names = [n.split("/", 1)[1] for n in cluster.kubectl("get", "crd", "-o", "name").split()]
                seen: list[str] = []
                started = time.perf_counter()
                cluster.kubectl("delete", "crd", *names, "--wait=false")
                first = deletion.NUDGE_FIRST_S
                if mode == "no-retry":
                    deletion.NUDGE_FIRST_S = float("inf")  # first seen failing, never due: no nudge
                try:
                    deletion.wait_crds_gone(kube, names, args.timeout, say=seen.append)
                    outcome = "gone"
                except StepTimeoutError as error:
                    outcome = f"NOT gone: {error.what}"
                finally:
                    deletion.NUDGE_FIRST_S = first
                elapsed = time.perf_counter() - started
                left = json.loads(cluster.kubectl("get", "crd", "-o", "json"))["items"]
                if left:  # a timed-out round: let the rest go before the next round
                    cluster.delete_crds([c["metadata"]["name"] for c in left], timeout_s=args.timeout)
                times[mode].append(elapsed)
                retried[mode] += bool(seen)
                shown = f"round {round_:2d} [{mode:8s}] {outcome} in {elapsed:6.1f}s{' (retried)' if seen else ''}"
                print(shown, flush=True)
        finally:
            for process in busy:
                process.terminate()
            cluster.delete()
    for mode, values in times.items():
        if values:
            slow = sum(value > SLOW_S for value in values)
            print(
                f"{mode:8s}: {len(values)} rounds, median {statistics.median(values):.1f}s, "
                f"longest {max(values):.1f}s, over {SLOW_S:.0f}s: {slow}, asked to retry: {retried[mode]}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
