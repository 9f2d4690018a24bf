"""`--with litellm`: the real LiteLLM proxy (PyPI), configured by igwlab, in front of the test gateway.

LiteLLM has a large dependency tree, so it lives in its own virtualenv: `.ci/run` creates
`.venv-litellm`; elsewhere point IGWLAB_LITELLM at a `litellm` executable, or the test skips.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import REPO
from doubles.world import free_port
from fakegw import GatewayBehaviour, running_gateway
from helpers import find, invoke, json_data, render
from typer.testing import CliRunner

from igwlab.render import litellm_config
from igwlab.selection import LabSelection, resolve_lab
from igwlab.sim import SimConfig, running_sim

LORAS = ("fake-llm-lora-a", "fake-llm-lora-b")


def test_litellm_objects_render_without_the_master_key() -> None:
    rendered = render(lab="kgateway-fake-llm", addons=("litellm",))
    configmap = next(c for c in find(rendered, "ConfigMap") if c["metadata"]["name"] == "igwlab-litellm")
    config = yaml.safe_load(configmap["data"]["config.yaml"])
    names = [entry["model_name"] for entry in config["model_list"]]
    assert names == ["fake-llm", *LORAS]
    assert config["model_list"][0]["litellm_params"]["api_base"] == (
        "http://inference-gateway.igwlab.svc.cluster.local:8081/v1"
    )
    assert config["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"
    deployment = next(d for d in find(rendered, "Deployment") if d["metadata"]["name"] == "igwlab-litellm")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LITELLM_MASTER_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "igwlab-litellm", "key": "master-key"}
    assert not find(rendered, "Secret"), "the master key is made by `up`, never rendered"


def test_litellm_is_refused_where_the_gateway_service_name_is_unknown(cli: CliRunner) -> None:
    result = invoke(cli, "plan", "--provider", "envoy-gateway", "--with", "litellm")
    assert result.exit_code == 2 and "agentgateway, istio, kgateway or nginx" in result.stderr


def _litellm() -> str | None:
    candidates = [os.environ.get("IGWLAB_LITELLM"), str(REPO / ".venv-litellm" / "bin" / "litellm")]
    found = next((c for c in candidates if c and Path(c).is_file()), None)
    if found is None and os.environ.get("CI") == "true":
        pytest.fail("litellm is missing in CI: .ci/run installs it into .venv-litellm")
    return found


@pytest.fixture
def litellm_in_front(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    executable = _litellm()
    if executable is None:
        pytest.skip("the LiteLLM proxy is not installed (.ci/run puts it in .venv-litellm)")
    lab = resolve_lab(LabSelection(lab="kgateway-fake-llm")).lab
    with ExitStack() as stack:
        sims = [
            stack.enter_context(running_sim(SimConfig(port=0, loras=LORAS, pod_name=f"fakellm-{i}"))).url
            for i in range(2)
        ]
        rewrites = {m.name: [(t.name, t.weight) for t in m.targets] for m in lab.models if m.targets}
        gateway = stack.enter_context(running_gateway(GatewayBehaviour(backends=sims, rewrites=rewrites)))
        # igwlab's generated config, with api_base pointed at the local gateway instead of the in-cluster Service.
        config = litellm_config(
            resolve_lab(LabSelection(lab="kgateway-fake-llm", addons=("litellm",))), api_base=gateway.url
        )
        config_file = tmp_path / "litellm.yaml"
        config_file.write_text(yaml.safe_dump(config))
        port, key = free_port(), "sk-igwlab-test-key"
        env = {
            **os.environ,
            "LITELLM_MASTER_KEY": key,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_TELEMETRY": "False",
            "NO_PROXY": "127.0.0.1,localhost",
        }
        log = (tmp_path / "litellm.log").open("w")
        process = subprocess.Popen(
            [executable, "--config", str(config_file), "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(process.wait, 20)
        stack.callback(process.terminate)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/health/readiness", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("LiteLLM did not start:\n" + (tmp_path / "litellm.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url, key, gateway.url


def _verify_via_litellm(cli: CliRunner, gateway: str, url: str, key: str) -> tuple[int, dict[str, Any]]:
    result = invoke(
        cli,
        "verify",
        "--lab",
        "kgateway-fake-llm",
        "--url",
        gateway,
        "--litellm-url",
        url,
        "--litellm-key",
        key,
        "--requests",
        "40",
        "--json",
    )
    checks = {c["name"]: c for c in json_data(result, "verify")["checks"]}
    return result.exit_code, checks["litellm-route"]


def test_verify_litellm_route_through_the_real_proxy(cli: CliRunner, litellm_in_front: tuple[str, str, str]) -> None:
    url, key, gateway = litellm_in_front
    _, route = _verify_via_litellm(cli, gateway, url, key)
    assert route["status"] == "pass", route
    assert route["data"]["model"] in (*LORAS, "fake-llm")
    code, denied = _verify_via_litellm(cli, gateway, url, "sk-wrong")
    assert code == 1 and denied["status"] == "fail" and "master key" in denied["hint"]
