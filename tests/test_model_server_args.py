"""The simulator of a stack, started the way its pod starts it: the real llm-d-inference-sim binary of
the pinned version, with the arguments and environment igwlab renders, accepts them and serves the lab's
model names (with KV-cache simulation it insists on POD_IP, which the pod gets from its own status)."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import testbin
from doubles.world import free_port
from helpers import find, render

from igwlab.labs import preset_names
from igwlab.render.model_servers import simulator_args
from igwlab.render.pools import pools

BUILT = {tool.version for tool in testbin.tools_with_binary("llm-d-inference-sim")}
LABS = [
    lab
    for lab in preset_names()
    if (resolved := render(lab=lab).resolved).stack.simulator in BUILT and resolved.lab.workload.kind == "sim"
]
FIELDS = {"metadata.name": "fakellm-0", "metadata.namespace": "igwlab", "status.podIP": "127.0.0.1"}


def _container(rendered: Any, workload: str) -> dict[str, Any]:
    deployment = next(d for d in find(rendered, "Deployment") if d["metadata"]["name"] == workload)
    return dict(deployment["spec"]["template"]["spec"]["containers"][0])


def _pod_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's env as the kubelet would set it (fieldRefs from a pod of our own)."""
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "fieldRef" in (item.get("valueFrom") or {}):
            env[item["name"]] = FIELDS[item["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def _serve(binary: Path, args: list[str], env: dict[str, str]) -> tuple[set[str], str]:
    """Run the simulator until it answers /v1/models (or exits): the names it serves and what it printed."""
    port = free_port()
    args = list(args)
    args[args.index("--port") + 1] = str(port)
    process = subprocess.Popen(
        [str(binary), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **env}
    )
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        lines.extend(process.stdout)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    served: set[str] = set()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            while process.poll() is None and not served:
                try:
                    served = {m["id"] for m in client.get("/v1/models").json()["data"]}
                except httpx.HTTPError:
                    threading.Event().wait(0.1)
    finally:
        process.kill()
        process.wait(timeout=30)
        reader.join(timeout=10)
    return served, "".join(lines)


@pytest.mark.parametrize("lab", LABS)
def test_the_real_simulator_serves_the_labs_names_with_igwlabs_arguments(lab: str) -> None:
    rendered = render(lab=lab)
    try:
        binary = testbin.binary("llm-d-inference-sim", rendered.resolved.stack.simulator)
    except testbin.BuildError as error:
        pytest.skip(f"the real simulator cannot be built: {error}")
    for pool in pools(rendered.resolved):
        container = _container(rendered, pool.lab.workload.name)
        assert container["args"] == simulator_args(pool)
        served, output = _serve(binary, container["args"], _pod_env(container))
        assert set(pool.lab.workload.served_names()) <= served, output[-2000:]


def test_at_least_one_preset_runs_a_simulator_that_is_built_here() -> None:
    assert LABS, f"no preset's simulator is among the testbin builds {sorted(BUILT)}"
