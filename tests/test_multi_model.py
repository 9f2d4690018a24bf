"""The multi-model preset: two pools with their own EPPs behind one Gateway, each model to its pool."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import charts
import pytest
import yaml
from doubles.world import lab_world
from fakegw import GatewayBehaviour, running_gateway
from helpers import find, invoke, json_data, render
from typer.testing import CliRunner

from igwlab.labs import load_lab
from igwlab.lifecycle import TeardownOptions, teardown, up
from igwlab.plan import build_plan
from igwlab.sim import SimConfig, running_sim


def test_each_pool_gets_its_own_workload_epp_and_route_rule() -> None:
    rendered = render(lab="multi-model")
    pools = {r.name for r in rendered.releases if r.chart.endswith("inferencepool")}
    assert pools == {"fakellm-pool", "tinyllm-pool"}
    tiny = next(r for r in rendered.releases if r.name == "tinyllm-pool")
    assert tiny.values["inferencePool"]["modelServers"]["matchLabels"] == {"app": "tinyllm"}
    assert {d["metadata"]["name"] for d in find(rendered, "Deployment")} == {"fakellm", "tinyllm"}
    rules = find(rendered, "HTTPRoute")[0]["spec"]["rules"]
    assert rules[0]["matches"][0]["headers"] == [
        {"type": "Exact", "name": "X-Gateway-Base-Model-Name", "value": "tiny-llm"}
    ]
    assert rules[0]["backendRefs"][0]["name"] == "tinyllm-pool"
    assert "headers" not in rules[1]["matches"][0] and rules[1]["backendRefs"][0]["name"] == "fakellm-pool"


def test_istio_stack_installs_body_based_routing_and_waits_for_both_pools() -> None:
    plan = build_plan(render(lab="multi-model"))
    steps = {step.id: step for step in plan.steps}
    assert steps["bbr"].releases[0]["chart"].endswith("body-based-routing")
    assert "provider-istiod" in steps["bbr"].depends_on
    assert {"pool", "pool-tinyllm-pool", "bbr"} <= set(steps["route"].depends_on)
    assert sum("InferencePool" in wait for wait in steps["route"].waits_for) == 2
    assert steps["workload-tinyllm-pool"].wave == steps["workload"].wave


def test_header_routing_stacks_install_no_body_based_router(tmp_path: Path) -> None:
    data = load_lab("multi-model").model_dump(mode="json", exclude_none=True)
    data["provider"] = "agentgateway"
    path = tmp_path / "multi.yaml"
    path.write_text(yaml.safe_dump(data))
    plan = build_plan(render(lab=str(path)))
    assert "bbr" not in {step.id for step in plan.steps}


def test_model_names_must_be_unique_across_pools(tmp_path: Path) -> None:
    data = load_lab("multi-model").model_dump(mode="json", exclude_none=True)
    data["extra_pools"][0]["models"][0]["name"] = "fake-llm"
    path = tmp_path / "dup.yaml"
    path.write_text(yaml.safe_dump(data))
    result = invoke(CliRunner(), "plan", "--lab", str(path))
    assert result.exit_code == 2 and "model names must be unique" in result.stderr


@contextmanager
def two_pools(**behaviour: Any) -> Iterator[str]:
    with ExitStack() as stack:
        fake = [
            stack.enter_context(
                running_sim(SimConfig(port=0, model="fake-llm", loras=("fake-llm-lora-a",), pod_name=f"fakellm-{i}"))
            ).url
            for i in range(2)
        ]
        tiny = [
            stack.enter_context(running_sim(SimConfig(port=0, model="tiny-llm", pod_name=f"tinyllm-{i}"))).url
            for i in range(2)
        ]
        pools = behaviour.pop("pools", {"fake-llm": fake, "fake-llm-lora-a": fake, "tiny-llm": tiny})
        gateway = stack.enter_context(running_gateway(GatewayBehaviour(backends=fake, pools=pools, **behaviour)))
        yield gateway.url


def _verify(cli: CliRunner, url: str, lab: str = "multi-model") -> tuple[int, dict[str, Any]]:
    result = invoke(cli, "verify", "--lab", lab, "--url", url, "--requests", "60", "--json")
    return result.exit_code, {c["name"]: c for c in json_data(result, "verify")["checks"]}


def test_verify_model_routing_passes_when_each_model_reaches_its_pool(cli: CliRunner) -> None:
    with two_pools(route_by="body") as url:
        code, checks = _verify(cli, url)
    assert checks["model-routing"]["status"] == "pass", checks["model-routing"]
    assert checks["model-routing"]["data"]["tiny-llm"]["pool"] == "tinyllm-pool"
    assert code == 0


def test_verify_model_routing_fails_when_a_model_lands_in_the_wrong_pool(cli: CliRunner) -> None:
    with ExitStack() as stack:
        fake = [
            stack.enter_context(
                running_sim(SimConfig(port=0, model="fake-llm", loras=("fake-llm-lora-a",), pod_name="fakellm-0"))
            ).url
        ]
        # A server that answers tiny-llm but lives in the wrong pool (its pod name says fakellm).
        wrong = [stack.enter_context(running_sim(SimConfig(port=0, model="tiny-llm", pod_name="fakellm-9"))).url]
        url = stack.enter_context(
            running_gateway(GatewayBehaviour(backends=fake, pools={"fake-llm": fake, "tiny-llm": wrong}))
        ).url
        code, checks = _verify(cli, url)
    routing = checks["model-routing"]
    assert code == 1 and routing["status"] == "fail" and "outside pool tinyllm-pool" in routing["detail"]
    assert "body-based router" in routing["hint"]


def test_header_routing_stacks_send_the_base_model_header(cli: CliRunner, tmp_path: Path) -> None:
    data = load_lab("multi-model").model_dump(mode="json", exclude_none=True)
    data["provider"] = "agentgateway"
    path = tmp_path / "multi-header.yaml"
    path.write_text(yaml.safe_dump(data))
    with two_pools(route_by="header") as url:
        _, checks = _verify(cli, url, lab=str(path))
    assert checks["model-routing"]["status"] == "pass", checks["model-routing"]


def test_single_pool_labs_skip_model_routing(cli: CliRunner) -> None:
    with running_sim(SimConfig(port=0, pod_name="only")) as sim:
        _, checks = _verify(cli, sim.url, lab="kv-cache-aware")
    assert checks["model-routing"]["status"] == "skip"


@pytest.mark.parametrize("context", [False, True])
def test_up_waits_for_both_pools_and_teardown_removes_both(tmp_path: Path, context: bool) -> None:
    with lab_world(tmp_path, preset="multi-model", context=context) as world:
        result = up(world.options(**({"context": "ctx"} if context else {})), world.env)
        assert result.run.ok, result.run.error
        assert {"pool-tinyllm-pool", "models-tinyllm-pool", "bbr"} <= set(result.run.outcomes)
        releases = {c[3] for c in world.tools.calls("helm") if c[1:3] == ["upgrade", "--install"]}
        assert {"fakellm-pool", "tinyllm-pool", "body-based-router"} <= releases
        removed = teardown(TeardownOptions(), world.env).removed
    if context:
        assert "helm release igwlab/tinyllm-pool" in removed and "Deployment/igwlab/tinyllm" in removed


@contextmanager
def routed_like_bbr_v1_5(configmaps: list[dict[str, Any]]) -> Iterator[str]:
    """The rendered multi-model lab behind a gateway that routes the way GIE v1.5.0's body-based router and
    the rendered HTTPRoute do: base-model header from the bbr-managed ConfigMaps, then the route's rules."""
    rendered = render(lab="multi-model")
    lab = rendered.resolved.lab
    with ExitStack() as stack:
        servers = {}
        for backend in lab.backends():
            loras = tuple(lora.name for lora in backend.workload.loras)
            servers[backend.pool.name] = [
                stack.enter_context(
                    running_sim(
                        SimConfig(
                            port=0,
                            model=backend.workload.served_model,
                            loras=loras,
                            pod_name=f"{backend.workload.name}-{i}",
                        )
                    )
                ).url
                for i in range(2)
            ]
        rules = find(rendered, "HTTPRoute")[0]["spec"]["rules"]
        pools, catch_all = {}, []
        for rule in rules:
            backends = servers[rule["backendRefs"][0]["name"]]
            headers = rule["matches"][0].get("headers")
            if headers:
                pools[headers[0]["value"]] = backends
            else:
                catch_all = backends
        behaviour = GatewayBehaviour(backends=catch_all, pools=pools, route_by="bbr", bbr_configmaps=configmaps)
        yield stack.enter_context(running_gateway(behaviour)).url


def _bbr_configmaps() -> list[dict[str, Any]]:
    return [
        c
        for c in find(render(lab="multi-model"), "ConfigMap")
        if (c["metadata"].get("labels") or {}).get("inference.networking.k8s.io/bbr-managed") == "true"
    ]


def test_body_based_routing_v1_5_reaches_every_pool_with_the_rendered_configmaps(cli: CliRunner) -> None:
    configmaps = _bbr_configmaps()
    assert {c["data"]["baseModel"] for c in configmaps} == {"fake-llm", "tiny-llm"}
    assert yaml.safe_load(next(c for c in configmaps if c["data"]["baseModel"] == "fake-llm")["data"]["adapters"]) == [
        "fake-llm-lora-a"
    ]
    with routed_like_bbr_v1_5(configmaps) as url:
        code, checks = _verify(cli, url)
    routing = checks["model-routing"]
    assert routing["status"] == "pass", routing
    assert routing["data"]["tiny-llm"]["pool"] == "tinyllm-pool"
    assert routing["data"]["fake-llm-lora-a"]["pool"] == "fakellm-pool"
    assert code == 0


def test_without_bbr_configmaps_the_second_pool_is_never_reached_and_verify_says_why(cli: CliRunner) -> None:
    with routed_like_bbr_v1_5([]) as url:
        code, checks = _verify(cli, url)
    routing = checks["model-routing"]
    assert code == 1 and routing["status"] == "fail" and routing["detail"].startswith("tiny-llm: ")
    assert "inference.networking.k8s.io/bbr-managed" in routing["hint"] and "empty" in routing["hint"]


def test_the_bbr_chart_attaches_to_the_labs_own_gateway(tmp_path: Path) -> None:
    """With provider istio the body-based-routing chart renders an EnvoyFilter for a Gateway by name."""
    data = load_lab("multi-model").model_dump(mode="json", exclude_none=True)
    data["gateway"]["name"] = "models-gateway"
    path = tmp_path / "multi.yaml"
    path.write_text(yaml.safe_dump(data))
    bbr = next(r for r in render(lab=str(path)).releases if r.step == "bbr")
    envoy_filter = charts.find(charts.template(bbr, tmp_path), "EnvoyFilter")[0]
    assert envoy_filter["spec"]["targetRefs"][0]["name"] == "models-gateway"
