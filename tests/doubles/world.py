"""A whole fake world for `up`: fake executables first on PATH, an in-memory cluster playing the
controllers, CRD bundles served by a fake fetch, and a simulator on the lab's host port so the
warm-up request really crosses HTTP."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from doubles.fakecluster import FakeCluster, crd_bundle_text
from doubles.faketools import FakeTools
from igwlab.labs import load_lab
from igwlab.lifecycle import Environment, UpOptions, prepare
from igwlab.selection import LabSelection
from igwlab.sim import RunningSim, SimConfig


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LabWorld:
    root: Path
    tools: FakeTools
    cluster: FakeCluster
    env: Environment
    lab_file: Path
    port: int

    def options(self, workload: str | None = None, **changes: Any) -> UpOptions:
        selection = LabSelection(lab=str(self.lab_file), workload=workload)  # type: ignore[arg-type]
        return UpOptions(selection=selection, **{"timeout_s": 10, **changes})


def write_lab(root: Path, preset: str, port: int, context: bool) -> Path:
    data = load_lab(preset).model_dump(mode="json", exclude_none=True)
    data["cluster"] = {"name": "igwlab-test", "api_port": free_port()}
    for listener in data["gateway"]["listeners"]:
        listener.pop("host_port", None)
    route_listener = data.get("route", {}).get("listener") or data["gateway"]["listeners"][0]["name"]
    for listener in data["gateway"]["listeners"]:
        if listener["name"] == route_listener:
            # k3d maps this host port to the listener; with --context the Gateway address and listener port.
            listener["host_port"] = port
            if context:
                listener["port"] = port
        else:
            listener["host_port"] = free_port()
    path = root / f"{preset}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@contextmanager
def lab_world(
    root: Path,
    preset: str = "kgateway-fake-llm",
    context: bool = False,
    gateway_address: str = "127.0.0.1",
    **cluster: Any,
) -> Iterator[LabWorld]:
    tools = FakeTools.install(root / "fake")
    port = free_port()
    lab_file = write_lab(root, preset, port, context)
    resolved, rendered, _ = prepare(LabSelection(lab=str(lab_file)), None, "ctx" if context else None)
    bundles = {
        bundle.url: crd_bundle_text(
            bundle.crds,
            {bundle.version_annotation: bundle.version} if bundle.version_annotation else None,
            served=(resolved.gie.crd_served_version or "v1") if bundle.step == "inference-crds" else "v1",
        )
        for bundle in rendered.crd_bundles
    }
    lab = resolved.lab
    loras = tuple(lora.name for lora in lab.workload.loras)
    proxy: list[RunningSim] = []

    def start_proxy() -> None:
        config = SimConfig(port=port, model=lab.workload.served_model, loras=loras, pod_name="sim-0")
        proxy.append(RunningSim(config).start())

    def stop_proxy() -> None:
        while proxy:
            proxy.pop().stop()

    fake_cluster = FakeCluster(
        resolved.stack,
        tools=tools,
        k3d_cluster=None if context else "igwlab-test",
        gateway_address=gateway_address,
        on_gateway_programmed=start_proxy,
        on_cluster_deleted=stop_proxy,
        **cluster,
    )
    env = Environment(
        kube_factory=lambda kubeconfig, ctx: fake_cluster, fetch=bundles.__getitem__, tool_env=tools.env(), poll_s=0.01
    )
    try:
        yield LabWorld(root, tools, fake_cluster, env, lab_file, port)
    finally:
        stop_proxy()
