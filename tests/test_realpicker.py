"""`verify`, `load` and `top` through the real data path: a real Envoy doing ext_proc to the real GIE
endpoint picker (EPP), which watches a real API server, with model-server pods played by `igwlab sim`
processes (or the real llm-d-inference-sim). See dataplane.py for what is stood in and why.

Every simulator preset also runs `verify` this way in test_realcluster.py; these tests prove that
verify fails for the right reason when the cluster is wrong, and watch the picker at work.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from reallab import RealLab, Result

from igwlab.verify.evidence import parse_split

pytestmark = [pytest.mark.realpicker, pytest.mark.realcluster]


@contextmanager
def lab_up(tmp_path: Path, mirror: Path, preset: str, **options: Any) -> Iterator[RealLab]:
    with RealLab.start(tmp_path, mirror, **options) as lab:
        up = lab.igwlab("up", "--lab", preset, "--timeout", "180")
        assert up.returncode == 0, up.output + lab.diagnostics()
        yield lab


def checks_of(result: Result) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in result.json()["data"]["checks"]}


def epp_metrics(lab: RealLab, namespace: str = "igwlab") -> str:
    """/metrics of the lab's EPP, read at its pod IP and declared port (metrics auth off, as rendered)."""
    pods = json.loads(lab.cluster.kubectl("get", "pods", "-n", namespace, "-o", "json"))["items"]
    epp = next(p for p in pods if "/epp:" in p["spec"]["containers"][0]["image"])
    return httpx.get(f"http://{epp['status']['podIP']}:9090/metrics", timeout=10).text


@pytest.mark.parametrize(
    ("preset", "kind", "patch"),
    [
        # GIE v1.x: the EPP writes the requested name back into answers; its counter shows the split.
        (
            "agentgateway-fake-llm",
            "inferencemodelrewrite",
            [{"op": "replace", "path": "/spec/rules/0/targets/0/weight", "value": 10},
             {"op": "replace", "path": "/spec/rules/0/targets/1/weight", "value": 90}],
        ),
        # GIE v0.5.1: answers name the target.
        (
            "kgateway-fake-llm",
            "inferencemodel",
            [{"op": "replace", "path": "/spec/targetModels/0/weight", "value": 10},
             {"op": "replace", "path": "/spec/targetModels/1/weight", "value": 90}],
        ),
    ],
)  # fmt: skip
def test_a_split_changed_in_the_cluster_fails_traffic_split(
    preset: str, kind: str, patch: list[dict[str, Any]], real_mirror: Path, tmp_path: Path
) -> None:
    """The lab says 70/30; someone set 10/90 in the cluster. verify must notice, through the real EPP."""
    with lab_up(tmp_path, real_mirror, preset) as lab:
        lab.cluster.kubectl("patch", kind, "fake-llm", "-n", "igwlab", "--type", "json", "-p", json.dumps(patch))
        verify = lab.run("verify", "--json", "--requests", "200", "--concurrency", "20")
        split = checks_of(verify)["traffic-split"]
        assert verify.returncode == 1 and split["status"] == "fail", verify.output + lab.diagnostics()
        assert "want 70%" in split["detail"] and "not the configured one" in split["hint"]
        observed = split["data"]["fake-llm"]["observed"]
        assert observed["fake-llm-lora-b"] > observed["fake-llm-lora-a"], observed


def test_verify_selects_the_labs_objective_and_the_split_is_counted_by_the_picker(
    real_mirror: Path, tmp_path: Path
) -> None:
    """On GIE v1.x verify sends x-gateway-inference-objective, so the EPP gives its requests the lab's
    priority (Critical = 2 here) instead of the default 0; the split evidence is the EPP's own counter."""
    with lab_up(tmp_path, real_mirror, "agentgateway-fake-llm") as lab:
        verify = lab.run("verify", "--json", "--requests", "100")
        assert verify.returncode == 0, verify.output + lab.diagnostics()
        split = checks_of(verify)["traffic-split"]
        assert split["data"]["fake-llm"]["source"] == "the endpoint picker's inference_objective_request_total"
        text = epp_metrics(lab)
        from prometheus_client.parser import text_string_to_metric_families

        priorities = {
            sample.labels["priority"]
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "inference_objective_request_total" and sample.labels.get("model_name") == "fake-llm"
        }
        objective = json.loads(
            lab.cluster.kubectl("get", "inferenceobjective", "fake-llm", "-n", "igwlab", "-o", "json")
        )
        assert priorities == {str(objective["spec"]["priority"])}, priorities
        assert sum(parse_split(text, "inference_objective_request_total", "fake-llm").values()) >= 100


def test_the_endpoint_picker_down_answers_as_the_pools_failure_mode(real_mirror: Path, tmp_path: Path) -> None:
    """FailClose: with the EPP gone the gateway refuses; verify says so and names the failure mode."""
    with lab_up(tmp_path, real_mirror, "agentgateway-fake-llm") as lab:
        assert lab.dataplane is not None
        lab.dataplane.hold("epp")
        verify = lab.run("verify", "--json", "--requests", "20")
        checks = checks_of(verify)
        assert verify.returncode == 1
        reachable = checks["gateway-reachable"]
        assert reachable["status"] == "fail" and "FailClose" in (reachable["hint"] or ""), reachable


def test_load_keeps_each_prefix_on_its_pod_and_top_sees_the_queues(real_mirror: Path, tmp_path: Path) -> None:
    """kv-cache-aware: the prefix-cache scorer keeps requests that share a long prefix on one pod."""
    with lab_up(tmp_path, real_mirror, "kv-cache-aware") as lab:
        samples: list[dict[str, Any]] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                top = lab.run("top", "--once", "--json", timeout_s=60)
                if top.returncode == 0:
                    samples.append(top.json()["data"])
                stop.wait(0.5)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            load = lab.run(
                "load",
                "--rps",
                "20",
                "--duration",
                "8s",
                "--prefixes",
                "4",
                "--prompt-tokens",
                "400",
                "--json",
                timeout_s=300,
            )
        finally:
            stop.set()
            watcher.join(timeout=60)
        assert load.returncode == 0, load.output + lab.diagnostics()
        stage = load.json()["data"]["stages"][0]
        affinity = stage["per_prefix"]
        assert len(affinity) == 4 and stage["succeeded"] == stage["requests"], stage
        for prefix, served in affinity.items():
            assert served["top_pod_share"] >= 0.8, (prefix, affinity)
        running = [(pod["running"] or 0) + (pod["waiting"] or 0) for sample in samples for pod in sample["pods"]]
        assert samples and max(running) > 0, samples


def test_the_real_simulator_passes_the_same_checks(real_mirror: Path, tmp_path: Path) -> None:
    """The pool's pods run the real llm-d-inference-sim (v0.10.2, built by testbin) instead of igwlab sim."""
    with lab_up(tmp_path, real_mirror, "agentgateway-fake-llm", real_sim=True) as lab:
        verify = lab.run("verify", "--json", "--requests", "100", "--concurrency", "20")
        failed = {name: c for name, c in checks_of(verify).items() if c["status"] not in ("pass", "skip")}
        assert verify.returncode == 0 and not failed, verify.output + lab.diagnostics()


def test_sheddable_requests_are_shed_first_when_the_pool_is_saturated(real_mirror: Path, tmp_path: Path) -> None:
    """kv-cache-aware defines a `sheddable` objective (priority -1): under a load that saturates every pod,
    the EPP answers 429 to sheddable requests and keeps serving the critical ones."""
    with lab_up(tmp_path, real_mirror, "kv-cache-aware") as lab:
        load = lab.run(
            "load", "--concurrency", "96", "--duration", "10s", "--sheddable", "0.5", "--json", timeout_s=300
        )
        assert load.returncode == 0, load.output + lab.diagnostics()
        classes = load.json()["data"]["stages"][0]["by_class"]
        shed = classes["sheddable"]["outcomes"].get("429", 0)
        assert shed > 0, classes
        assert classes["critical"]["outcomes"].get("429", 0) == 0, classes
