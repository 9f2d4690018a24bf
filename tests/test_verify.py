"""`igwlab verify` over real HTTP: several sims behind a test gateway, healthy and broken."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from doubles.world import free_port
from fakegw import GatewayBehaviour, running_gateway
from helpers import invoke, json_data
from typer.testing import CliRunner

from igwlab.labs import load_lab
from igwlab.sim import SimConfig, running_sim

KGATEWAY = load_lab("kgateway-fake-llm")
LORAS = ("fake-llm-lora-a", "fake-llm-lora-b")


@contextmanager
def sims(count: int = 3, **config: Any) -> Iterator[list[str]]:
    with ExitStack() as stack:
        urls = [
            stack.enter_context(running_sim(SimConfig(port=0, loras=LORAS, pod_name=f"fakellm-{i}", **config))).url
            for i in range(count)
        ]
        yield urls


@contextmanager
def gateway(**behaviour: Any) -> Iterator[str]:
    with sims(behaviour.pop("replicas", 3), **behaviour.pop("sim", {})) as urls:
        rewrites = behaviour.pop(
            "rewrites", {m.name: [(t.name, t.weight) for t in m.targets] for m in KGATEWAY.models if m.targets}
        )
        with running_gateway(GatewayBehaviour(backends=urls, rewrites=rewrites, **behaviour)) as server:
            yield server.url


def run_verify(cli: CliRunner, url: str, *extra: str, lab: str = "kgateway-fake-llm") -> tuple[int, dict[str, Any]]:
    result = invoke(cli, "verify", "--lab", lab, "--url", url, "--json", *extra)
    report = json_data(result, "verify")
    return result.exit_code, report


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in report["checks"]}


def test_a_working_gateway_passes_every_lab_check(cli: CliRunner) -> None:
    with gateway() as url:
        code, report = run_verify(cli, url)
    checks = by_name(report)
    assert code == 0 and report["passed"] is True
    assert report["lab"] == "kgateway-fake-llm" and report["url"] == url
    for name in (
        "gateway-reachable",
        "completion",
        "chat-completion",
        "streaming",
        "traffic-split",
        "endpoint-spread",
        "unknown-model",
        "epp-in-path",
    ):
        assert checks[name]["status"] == "pass", (name, checks[name])
    assert checks["prefix-affinity"]["status"] == "skip"
    assert checks["route-accepted"]["status"] == "skip" and checks["route-accepted"]["detail"]
    observed = checks["traffic-split"]["data"]["fake-llm"]["observed"]
    assert set(observed) == set(LORAS) and sum(observed.values()) == 200
    assert set(checks["endpoint-spread"]["data"]["pods"]) == {"fakellm-0", "fakellm-1", "fakellm-2"}
    for check in report["checks"]:
        assert set(check) == {"name", "status", "detail", "hint", "duration_s", "data"}


def test_a_wrong_split_fails_traffic_split(cli: CliRunner) -> None:
    with gateway(rewrites={"fake-llm": [("fake-llm-lora-a", 50), ("fake-llm-lora-b", 50)]}) as url:
        code, report = run_verify(cli, url)
    split = by_name(report)["traffic-split"]
    assert code == 1 and split["status"] == "fail"
    assert "want 70%" in split["detail"] and "not the configured one" in split["hint"]


def test_no_rewrite_is_explained(cli: CliRunner) -> None:
    """A single sim, no gateway: the split cannot happen, and verify says why."""
    with running_sim(SimConfig(port=0, loras=LORAS, pod_name="only")) as sim:
        code, report = run_verify(cli, sim.url)
    checks = by_name(report)
    assert code == 1
    assert checks["traffic-split"]["status"] == "fail" and "No model rewrite" in checks["traffic-split"]["hint"]
    assert checks["endpoint-spread"]["status"] == "warn"  # one pod; v0.x LoRA affinity allows it
    assert checks["completion"]["status"] == "pass"
    # As the README's local-simulator walkthrough says, check by check.
    assert "counted from answers" in checks["traffic-split"]["detail"], checks["traffic-split"]
    assert checks["traffic-split"]["data"]["fake-llm"]["source"] == "answers"
    for name in ("gateway-reachable", "chat-completion", "streaming", "unknown-model"):
        assert checks[name]["status"] == "pass", checks[name]
    assert checks["epp-in-path"]["status"] == "warn", checks["epp-in-path"]
    for name in ("route-accepted", "pool-accepted", "epp-ready"):
        assert checks[name]["status"] == "skip", checks[name]
    assert [c["name"] for c in report["checks"] if c["status"] == "fail"] == ["traffic-split"]


def test_answers_naming_the_requested_model_on_a_v1_stack_are_inconclusive_without_the_cluster(
    cli: CliRunner,
) -> None:
    """The GIE v1.x endpoint picker writes the requested name back into answers, so answers alone cannot
    show a split there: verify says so and where it can count instead, rather than failing a working lab."""
    with running_sim(SimConfig(port=0, loras=LORAS, pod_name="only")) as sim:
        _, report = run_verify(cli, sim.url, "--requests", "20", lab="agentgateway-fake-llm")
    split = by_name(report)["traffic-split"]
    assert split["status"] == "warn", split
    assert "writes it back" in split["detail"] and "no lab is recorded as up" in split["detail"]
    assert "Run verify where `igwlab up` ran" in split["hint"]
    assert "inference_objective_request_total" in split["hint"]


def test_one_pod_only_fails_endpoint_spread(cli: CliRunner) -> None:
    with gateway(pick="first", rewrites={}) as url:
        code, report = run_verify(cli, url, "--requests", "40", lab="agentgateway-fake-llm")
    spread = by_name(report)["endpoint-spread"]
    assert code == 1 and spread["status"] == "fail" and "Ready" in spread["hint"]
    assert "-l app=fakellm" in spread["hint"]


def test_one_pod_serving_a_lora_adapter_under_v0_lora_affinity_is_not_a_failure(cli: CliRunner) -> None:
    """The GIE v0.x endpoint picker keeps an adapter on the pods already running it, so one pod serving every
    request is normal there: without the cluster to count Ready pods, verify warns and says why."""
    with gateway(pick="first") as url:
        _, report = run_verify(cli, url)
    spread = by_name(report)["endpoint-spread"]
    assert spread["status"] == "warn", spread
    assert "LoRA affinity" in spread["detail"] and "fake-llm-lora-a" in spread["detail"]
    assert "counts the pool's Ready pods" in spread["hint"]
    assert by_name(report)["traffic-split"]["status"] == "pass"


def test_503s_fail_with_the_503_hint(cli: CliRunner) -> None:
    with gateway(fail_status=503) as url:
        code, report = run_verify(cli, url)
    checks = by_name(report)
    assert code == 1
    reachable = checks["gateway-reachable"]
    assert reachable["status"] == "fail" and "503" in reachable["detail"]
    assert "No endpoint for the request" in reachable["hint"]


def test_a_stalled_stream_fails_streaming(cli: CliRunner) -> None:
    with gateway(stall_stream_s=5) as url:
        code, report = run_verify(cli, url, "--timeout", "1")
    streaming = by_name(report)["streaming"]
    assert code == 1 and streaming["status"] == "fail" and "stalled" in streaming["hint"]


def test_garbage_json_fails_with_the_bad_json_hint(cli: CliRunner) -> None:
    with gateway(garbage=True) as url:
        code, report = run_verify(cli, url)
    completion = by_name(report)["completion"]
    assert code == 1 and completion["status"] == "fail" and "not JSON" in completion["hint"]


def test_5xx_for_unknown_models_fails_unknown_model(cli: CliRunner) -> None:
    with gateway(unknown_model_status=500) as url:
        code, report = run_verify(cli, url)
    unknown = by_name(report)["unknown-model"]
    assert code == 1 and unknown["status"] == "fail" and "endpoint picker" in unknown["hint"]


def test_nothing_listening_fails_reachability_and_skips_the_rest(cli: CliRunner) -> None:
    code, report = run_verify(cli, f"http://127.0.0.1:{free_port()}")
    checks = by_name(report)
    assert code == 1
    assert checks["gateway-reachable"]["status"] == "fail" and "--wait" in checks["gateway-reachable"]["hint"]
    assert checks["completion"]["status"] == "skip"


def test_wait_retries_while_the_gateway_warms_up_but_checks_do_not(cli: CliRunner) -> None:
    with gateway(warm_up_s=1.5) as url:
        code, report = run_verify(cli, url, "--wait", "20")
    reachable = by_name(report)["gateway-reachable"]
    assert code == 0 and reachable["status"] == "pass" and reachable["data"]["attempts"] > 1


def test_prefix_affinity_passes_with_prefix_routing_and_fails_without(cli: CliRunner) -> None:
    lab = load_lab("kv-cache-aware")
    kv = {"rewrites": {}, "replicas": lab.workload.replicas, "sim": {"enable_kvcache": True}}
    with gateway(pick="prefix", **kv) as url:
        code, report = run_verify(cli, url, "--requests", "64", lab="kv-cache-aware")
    affinity = by_name(report)["prefix-affinity"]
    assert affinity["status"] == "pass", affinity
    assert by_name(report)["traffic-split"]["status"] == "skip"
    with gateway(pick="random", **kv) as url:
        code, report = run_verify(cli, url, "--requests", "64", lab="kv-cache-aware")
    affinity = by_name(report)["prefix-affinity"]
    assert code == 1 and affinity["status"] == "fail" and "prefix-cache scorer" in affinity["hint"]


def test_the_table_shows_checks_hints_and_a_verdict(cli: CliRunner) -> None:
    with running_sim(SimConfig(port=0, loras=LORAS, pod_name="only")) as sim:
        result = invoke(cli, "verify", "--lab", "kgateway-fake-llm", "--url", sim.url, "--requests", "20")
    assert result.exit_code == 1
    assert "traffic-split" in result.stdout and "No model rewrite" in result.stdout
    assert "FAILED:" in result.stdout


@pytest.mark.parametrize(
    "args", [["--url", "localhost:8080"], ["--url", "ftp://x"], ["--lab", "nope", "--url", "http://127.0.0.1:1"]]
)
def test_bad_input_exits_2(cli: CliRunner, args: list[str]) -> None:
    result = invoke(cli, "verify", *args)
    assert result.exit_code == 2 and "error:" in result.stderr


def test_without_url_or_state_verify_says_what_to_pass(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IGWLAB_STATE_DIR", str(tmp_path))
    result = invoke(cli, "verify")
    assert result.exit_code == 2 and "--url" in result.stderr


def test_verify_uses_the_url_and_lab_up_recorded(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IGWLAB_STATE_DIR", str(tmp_path))
    with gateway() as url:
        (tmp_path / "current.json").write_text(json.dumps({"lab": "kgateway-fake-llm", "url": url}))
        result = invoke(cli, "verify", "--json", "--requests", "40")
    report = json_data(result, "verify")
    assert result.exit_code == 0 and report["url"] == url and report["lab"] == "kgateway-fake-llm"


def test_a_subtly_wrong_split_is_not_passed_silently(cli: CliRunner) -> None:
    """60/40 where 70/30 is configured: too close for the test at 60 requests, too far to pass."""
    with gateway(rewrites={"fake-llm": [("fake-llm-lora-a", 55), ("fake-llm-lora-b", 45)]}) as url:
        _, report = run_verify(cli, url, "--requests", "60")
    split = by_name(report)["traffic-split"]
    assert split["status"] in ("warn", "fail"), split
