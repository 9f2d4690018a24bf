"""What the endpoint picker's scheduling profile buys: the real GIE v1.5.0 EPP behind a real Envoy, four
simulated model-server pods on a kwok cluster (tests/reallab.py), the same bounded `igwlab load` sent
through three pickers.

    python benchmarks/bench_picker.py [--steady-rps 12] [--overload-rps 32] [--duration 15s]
        [--prefixes 20] [--prompt-tokens 960] [--sheddable 0.3] [--only kv-cache-aware,default,random] [--json]

The three pickers, each on a fresh cluster with the same pods (the kv-cache-aware lab's workload: four
simulator replicas with KV-cache simulation, 1024 blocks of 16 tokens each, at most 5 requests running)
and the same objectives, so sheddable traffic means the same everywhere:
- kv-cache-aware: the lab as shipped (saturation filter, prefix-cache 60, KV-cache 30, queue 10, max-score);
- default: the same lab without its `scheduling` block, so the EPP runs the inferencepool chart's own
  default-plugins.yaml (queue 2, KV-cache 2, prefix-cache 3, max-score picker added by the EPP);
- random: the default lab with the chart's config replaced in the cluster by a profile holding only the
  `random-picker`, then `kubectl rollout restart` of the EPP. A random picker inside the same EPP, not the
  route's plain Service backend, so everything but the choice of pod stays equal: the same ext_proc path,
  the same saturation detector (the EPP adds its default utilization detector, thresholds 5 queued / 80%
  KV), hence the same shedding of sheddable requests.

Each picker gets two phases of open-loop load with the same prompts (`--prefixes` long prefixes cycled
through; by default 20 x 960 words = 1200 cache blocks, more than one pod holds and under a third of what four
hold) and the same sheddable share: `steady`, under the pool's capacity (4 pods x 5 running requests of
about 1 s), and `overload`, over it, so the pool saturates and the EPP sheds. Reported per picker and
phase: each prefix's share on the pod that served it most (mean and lowest over the prefixes), the
prefix-cache hit rate (delta of vllm:prefix_cache_hits over vllm:prefix_cache_queries read from every
pod's /metrics before and after the phase), time to first token p50/p99 of the answered requests, and
429s of sheddable and critical requests; then kv-cache-aware against random as ratios. Everything
listens on 127.0.0.0/8; each load stops by itself. Needs the testbin binaries (`python tests/testbin
build`) and ../shared/upstream beside the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
sys.path.insert(0, str(TESTS))

BASE_LAB = "kv-cache-aware"
PICKERS = ("kv-cache-aware", "default", "random")
NAMESPACE = "igwlab"

# Only a random picker in the profile; the EPP fills in the rest (parser, data layer, its default
# utilization detector as saturation detector). GIE v1.5.0 pkg/epp/config/loader/defaults.go.
RANDOM_CONFIG = """\
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
  - type: random-picker
    parameters:
      maxNumOfEndpoints: 1
schedulingProfiles:
  - name: default
    plugins:
      - pluginRef: random-picker
"""


@dataclass
class PickerResult:
    picker: str
    phase: str  # steady (under the pool's capacity) or overload (over it)
    requests: int
    succeeded: int
    top_pod_share_mean: float | None
    top_pod_share_min: float | None
    prefix_cache_hits: float
    prefix_cache_queries: float
    hit_rate: float | None
    ttft_p50_s: float | None
    ttft_p99_s: float | None
    outcomes: dict[str, dict[str, int]]  # class -> outcome (HTTP status or error kind) -> requests
    pods: dict[str, int]  # pod -> answered requests
    per_prefix: dict[str, Any] = field(default_factory=dict)

    def shed(self, klass: str) -> tuple[int, int]:
        """(requests answered 429, requests) of one class."""
        outcomes = self.outcomes.get(klass, {})
        return outcomes.get("429", 0), sum(outcomes.values())


def lab_file(picker: str, folder: Path) -> Path:
    """The lab each picker runs: kv-cache-aware itself, or it without its scheduling profile."""
    from igwlab.labs import presets_dir

    data = yaml.safe_load((presets_dir() / f"{BASE_LAB}.yaml").read_text())
    if picker != "kv-cache-aware":
        data["pool"]["epp"].pop("scheduling")
        data["name"] = f"picker-{picker}"
        data["title"] = f"{data['title']} ({picker} picker)"
        data["checks"] = [c for c in data["checks"] if c != "prefix-affinity"]
    path = folder / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def pods_of(lab: Any, image_part: str) -> list[dict[str, Any]]:
    items = json.loads(lab.cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json"))["items"]
    return [
        p
        for p in items
        if image_part in p["spec"]["containers"][0]["image"]
        and p["status"].get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
    ]


def prefix_counters(lab: Any) -> tuple[float, float]:
    """(hits, queries) summed over the model-server pods, read at each pod IP's /metrics."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    hits = queries = 0.0
    for pod in pods_of(lab, "llm-d-inference-sim"):
        text = httpx.get(f"http://{pod['status']['podIP']}:8000/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in ("vllm:prefix_cache_hits", "vllm:prefix_cache_hits_total"):
                    hits += sample.value
                elif sample.name in ("vllm:prefix_cache_queries", "vllm:prefix_cache_queries_total"):
                    queries += sample.value
    return hits, queries


def use_random_picker(lab: Any, url: str, model: str, timeout_s: float = 180.0) -> None:
    """Replace the EPP's config with RANDOM_CONFIG in the cluster and restart it, as a user would; wait
    until the one EPP left runs with it and the gateway answers through it."""
    import httpx

    deployments = json.loads(lab.cluster.kubectl("get", "deployments", "-n", NAMESPACE, "-o", "json"))["items"]
    epp = next(d for d in deployments if "/epp:" in d["spec"]["template"]["spec"]["containers"][0]["image"])
    args = epp["spec"]["template"]["spec"]["containers"][0]["args"]
    config_path = args[args.index("--config-file") + 1]
    volume = next(v["configMap"]["name"] for v in epp["spec"]["template"]["spec"]["volumes"] if "configMap" in v)
    key = Path(config_path).name
    patch = {"data": {key: RANDOM_CONFIG}}
    lab.cluster.kubectl("patch", "configmap", volume, "-n", NAMESPACE, "--type", "merge", "-p", json.dumps(patch))
    lab.cluster.kubectl("rollout", "restart", f"deployment/{epp['metadata']['name']}", "-n", NAMESPACE)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = [r for r in lab.dataplane.pods.values() if r.kind == "epp" and r.process.poll() is None]
        configured = [
            r for r in running if (r.log.parent / "volumes").exists() and _runs_config(r.log.parent, RANDOM_CONFIG)
        ]
        if len(running) == 1 and configured and lab.dataplane.envoy is not None:
            try:
                answer = httpx.post(
                    f"{url.rstrip('/')}/v1/completions",
                    json={"model": model, "prompt": "random picker warm-up", "max_tokens": 1},
                    timeout=30,
                )
                if answer.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.5)
    raise RuntimeError(f"the EPP did not come back with the random picker in {timeout_s:.0f}s\n{lab.diagnostics()}")


def _runs_config(folder: Path, text: str) -> bool:
    return any(path.read_text() == text for path in (folder / "volumes").rglob("*.yaml"))


def run_picker(picker: str, root: Path, mirror: Path, phases: list[tuple[str, list[str]]]) -> list[PickerResult]:
    """Bring the picker's lab up on a fresh cluster and send each phase's load, one after the other."""
    from reallab import RealLab

    from igwlab.labs import load_lab_file

    workdir = root / picker
    (workdir / "labs").mkdir(parents=True)
    path = lab_file(picker, workdir / "labs")
    results: list[PickerResult] = []
    with RealLab.start(workdir, mirror) as lab:
        up = lab.igwlab("up", "--lab", str(path), "--timeout", "300", "--json")
        if up.returncode != 0:
            raise RuntimeError(f"up failed for the {picker} picker\n{up.output}\n{lab.diagnostics()}")
        if picker == "random":
            use_random_picker(lab, up.json()["data"]["url"], load_lab_file(path).models[0].name)
        for phase, load_args in phases:
            hits0, queries0 = prefix_counters(lab)
            load = lab.run("load", *load_args, "--json", timeout_s=900)
            if load.returncode not in (0, 1):
                raise RuntimeError(f"load failed for the {picker} picker\n{load.output}\n{lab.diagnostics()}")
            hits1, queries1 = prefix_counters(lab)
            results.append(
                summarize(picker, phase, load.json()["data"]["stages"][0], hits1 - hits0, queries1 - queries0)
            )
    return results


def summarize(picker: str, phase: str, stage: dict[str, Any], hits: float, queries: float) -> PickerResult:
    shares = [p["top_pod_share"] for p in stage["per_prefix"].values()]
    ttft = stage.get("ttft_s") or {}
    return PickerResult(
        picker=picker,
        phase=phase,
        requests=stage["requests"],
        succeeded=stage["succeeded"],
        top_pod_share_mean=sum(shares) / len(shares) if shares else None,
        top_pod_share_min=min(shares) if shares else None,
        prefix_cache_hits=hits,
        prefix_cache_queries=queries,
        hit_rate=hits / queries if queries else None,
        ttft_p50_s=ttft.get("p50"),
        ttft_p99_s=ttft.get("p99"),
        outcomes={k: v["outcomes"] for k, v in stage["by_class"].items()},
        pods=stage["pods"],
        per_prefix=stage["per_prefix"],
    )


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def render(results: list[PickerResult], command: str) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.0f}%"

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{1000 * value:.0f} ms"

    def shed(result: PickerResult, klass: str) -> str:
        n, total = result.shed(klass)
        return f"{n}/{total}" if total else "-"

    rows = [
        ("phase", "picker", "answered", "top-pod share (min)", "prefix-cache hits", "TTFT p50", "TTFT p99",
         "429 sheddable", "429 critical"),
    ]  # fmt: skip
    for r in sorted(results, key=lambda r: (r.phase != "steady", PICKERS.index(r.picker))):
        rows.append(
            (
                r.phase,
                r.picker,
                f"{r.succeeded}/{r.requests}",
                f"{pct(r.top_pod_share_mean)} ({pct(r.top_pod_share_min)})",
                pct(r.hit_rate),
                ms(r.ttft_p50_s),
                ms(r.ttft_p99_s),
                shed(r, "sheddable"),
                shed(r, "critical"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"$ {command}", ""]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    by_key = {(r.phase, r.picker): r for r in results}
    for phase in ("steady", "overload"):
        aware, rand = by_key.get((phase, "kv-cache-aware")), by_key.get((phase, "random"))
        if not (aware and rand):
            continue
        lines.append("")
        lines.append(f"kv-cache-aware / random, {phase}:")
        for label, a, b in (
            ("top-pod share", aware.top_pod_share_mean, rand.top_pod_share_mean),
            ("prefix-cache hit rate", aware.hit_rate, rand.hit_rate),
            ("TTFT p50", aware.ttft_p50_s, rand.ttft_p50_s),
            ("TTFT p99", aware.ttft_p99_s, rand.ttft_p99_s),
        ):
            value = ratio(a, b)
            lines.append(f"  {label:<22} {'-' if value is None else f'{value:.2f}x'}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--steady-rps", default="12", help="request rate under the pool's capacity")
    parser.add_argument("--overload-rps", default="32", help="request rate over it, so the pool saturates")
    parser.add_argument("--duration", default="15s", help="how long each phase sends, per picker")
    parser.add_argument("--prefixes", type=int, default=20, help="shared long prompt prefixes, cycled through")
    parser.add_argument("--prompt-tokens", type=int, default=960, help="words per prefix (the pods allow 1024)")
    parser.add_argument("--sheddable", type=float, default=0.3, help="share of requests sent as sheddable")
    parser.add_argument("--seed", type=int, default=1, help="seed of the class mix")
    parser.add_argument("--only", default=",".join(PICKERS), help="pickers to run, comma-separated")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    pickers = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(pickers) - set(PICKERS))
    if unknown or not pickers:
        parser.error(f"--only takes some of {', '.join(PICKERS)}; not {', '.join(unknown) or 'nothing'}")
    common = [
        "--duration", args.duration, "--prefixes", str(args.prefixes), "--prompt-tokens", str(args.prompt_tokens),
        "--sheddable", str(args.sheddable), "--seed", str(args.seed),
    ]  # fmt: skip
    phases = [("steady", ["--rps", args.steady_rps, *common]), ("overload", ["--rps", args.overload_rps, *common])]
    command = (
        f"python benchmarks/bench_picker.py --steady-rps {args.steady_rps} --overload-rps {args.overload_rps} "
        f"--duration {args.duration} --prefixes {args.prefixes} --prompt-tokens {args.prompt_tokens} "
        f"--sheddable {args.sheddable} --seed {args.seed}"
    )

    import testbin
    from mirror_support import assemble_mirror

    for tool in testbin.TOOLS.values():
        testbin.ensure(tool)
    results: list[PickerResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-picker-") as scratch:
        root = Path(scratch)
        mirror = assemble_mirror([BASE_LAB], root / "mirror")
        for picker in pickers:
            started = time.perf_counter()
            try:
                results += run_picker(picker, root, mirror, phases)
            except RuntimeError as error:
                print(str(error), file=sys.stderr)
                return 1
            print(f"{picker}: {time.perf_counter() - started:.0f}s", file=sys.stderr)
    if args.json:
        loads = {phase: ["igwlab", "load", *load_args] for phase, load_args in phases}
        print(json.dumps({"command": command, "loads": loads, "results": [asdict(r) for r in results]}, indent=2))
    else:
        print(render(results, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
