"""`igwlab load` and `igwlab top` over real HTTP against local sims and the test gateway."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from fakegw import GatewayBehaviour, running_gateway
from helpers import invoke, json_data, requests_in_flight
from typer.testing import CliRunner

from igwlab.observe.top import sample, targets_from_cluster
from igwlab.sim import SimConfig, running_sim


@contextmanager
def prefix_gateway(replicas: int = 3) -> Iterator[str]:
    with ExitStack() as stack:
        urls = [
            stack.enter_context(
                running_sim(SimConfig(port=0, pod_name=f"kv-{i}", enable_kvcache=True, time_to_first_token_ms=5))
            ).url
            for i in range(replicas)
        ]
        with running_gateway(GatewayBehaviour(backends=urls, pick="prefix")) as gateway:
            yield gateway.url


def run_load(cli: CliRunner, url: str, *args: str) -> tuple[int, dict[str, Any], float]:
    start = time.monotonic()
    result = invoke(cli, "load", "--lab", "kv-cache-aware", "--url", url, "--json", *args)
    elapsed = time.monotonic() - start
    return (
        result.exit_code,
        (json_data(result, "load") if result.exit_code == 0 else {"stderr": result.stderr}),
        elapsed,
    )


def test_closed_loop_load_reports_latency_and_prefix_pods(cli: CliRunner) -> None:
    with prefix_gateway() as url:
        code, report, elapsed = run_load(
            cli, url, "--concurrency", "6", "--duration", "1.5s", "--prefixes", "3", "--prompt-tokens", "64"
        )
    assert code == 0, report
    assert report["requests"] > 20 and report["succeeded"] == report["requests"]
    assert elapsed < 6, "load must stop by itself shortly after --duration"
    assert 1.5 <= report["duration_s"] < 4
    assert set(report["per_prefix"]) == {"prefix-0", "prefix-1", "prefix-2"}
    assert all(p["top_pod_share"] == 1.0 for p in report["per_prefix"].values())
    assert report["ttft_s"]["p50"] is not None and report["latency_s"]["p99"] >= report["latency_s"]["p50"]


def test_open_loop_load_keeps_to_its_rate(cli: CliRunner) -> None:
    with prefix_gateway() as url:
        code, report, elapsed = run_load(cli, url, "--rps", "20", "--duration", "1s", "--sheddable", "0.5")
    assert code == 0, report
    assert 18 <= report["requests"] <= 20
    assert elapsed < 5
    assert set(report["by_class"]) == {"critical", "sheddable"}
    assert report["per_prefix"].keys() == {"unique"}


@pytest.mark.parametrize(
    "args",
    [
        ["--rps", "5", "--concurrency", "2"],
        ["--duration", "1s"],
        ["--rps", "5000", "--duration", "1s"],
        ["--concurrency", "2", "--duration", "2h"],
        ["--concurrency", "2", "--duration", "soon"],
    ],
)
def test_load_refuses_unbounded_or_ambiguous_requests(cli: CliRunner, args: list[str]) -> None:
    result = invoke(cli, "load", "--url", "http://127.0.0.1:9", *args)
    assert result.exit_code == 2 and "error:" in result.stderr


def test_top_once_json_shows_queues_and_adapters_under_load(cli: CliRunner) -> None:
    # Two rounds of 2 s: `top` scrapes within the first, however long the machine takes to send the four.
    config = SimConfig(port=0, loras=("lora-x",), pod_name="busy", max_num_seqs=2, time_to_first_token_ms=2000)
    with running_sim(config) as busy, running_sim(SimConfig(port=0, pod_name="idle")) as idle:
        urls = ["--url", f"busy={busy.url}", "--url", f"idle={idle.url}"]
        with requests_in_flight(busy, "lora-x", 4):
            result = invoke(cli, "top", *urls, "--once", "--json")
    assert result.exit_code == 0, result.stderr
    pods = {pod["pod"]: pod for pod in json_data(result, "top")["pods"]}
    assert pods["busy"]["running"] == 2 and pods["busy"]["waiting"] == 2
    assert pods["busy"]["running_loras"] == "lora-x" and pods["busy"]["max_lora"] == "2"
    assert pods["idle"]["running"] == 0 and pods["idle"]["requests_served"] == 0


def test_top_reports_an_unreachable_pod_without_hiding_the_others(cli: CliRunner) -> None:
    with running_sim(SimConfig(port=0)) as sim:
        result = invoke(cli, "top", "--url", f"up={sim.url}", "--url", "down=http://127.0.0.1:9", "--once", "--json")
    pods = {pod["pod"]: pod for pod in json_data(result, "top")["pods"]}
    assert pods["up"]["error"] == "" and "ConnectError" in pods["down"]["error"]


def test_top_json_needs_once(cli: CliRunner) -> None:
    result = invoke(cli, "top", "--url", "http://127.0.0.1:9", "--json")
    assert result.exit_code == 2 and "--once" in result.stderr


def test_top_reads_lab_pods_through_the_pod_proxy() -> None:
    import asyncio

    from igwlab.catalog import load_catalog
    from igwlab.testing.fakecluster import FakeCluster

    cluster = FakeCluster(load_catalog().stack_for("agentgateway"))
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "igwlab"}})
    with running_sim(SimConfig(port=0, pod_name="fakellm-abc")) as sim:
        cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "fakellm-abc", "namespace": "igwlab", "labels": {"app": "fakellm"}},
            }
        )
        cluster.pod_endpoints["fakellm-abc"] = sim.url
        targets = targets_from_cluster(cluster, "igwlab", {"app": "fakellm"}, 8000)
        samples = asyncio.run(sample(targets, cluster))
    assert [s.pod for s in samples] == ["fakellm-abc"]
    assert samples[0].error == "" and samples[0].running == 0
