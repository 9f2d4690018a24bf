"""k3d command lines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from igwlab.labs import ClusterSpec, Listener
from igwlab.tools.proc import ToolRunner


def create_cluster_argv(cluster: ClusterSpec, listeners: Sequence[Listener], image: str) -> list[str]:
    """`k3d cluster create` for a lab: the stack's k3s image (so its Kubernetes version, not k3d's default),
    one server, traefik off, each listener mapped to a host port.

    Traefik would take ports 80/443 on k3s's service load balancer, and the Gateway's own
    LoadBalancer Service would then stay pending (never Programmed). The user's kubeconfig is
    left alone; igwlab keeps the cluster's kubeconfig in its state directory.
    """
    argv = [
        "k3d",
        "cluster",
        "create",
        cluster.name,
        "--image",
        image,
        "--servers",
        "1",
        "--agents",
        "0",
        "--api-port",
        str(cluster.api_port),
        "--k3s-arg",
        "--disable=traefik@server:*",
    ]
    for listener in listeners:
        argv += ["--port", f"{listener.effective_host_port}:{listener.port}@loadbalancer"]
    argv += ["--kubeconfig-update-default=false", "--kubeconfig-switch-context=false", "--wait"]
    return argv


def list_clusters(tools: ToolRunner) -> list[dict[str, Any]]:
    result = tools.run(["k3d", "cluster", "list", "-o", "json"], timeout=30)
    data = json.loads(result.stdout or "[]")
    return data if isinstance(data, list) else []


def cluster_exists(tools: ToolRunner, name: str) -> bool:
    return any(cluster.get("name") == name for cluster in list_clusters(tools))


def kubeconfig(tools: ToolRunner, name: str) -> str:
    return tools.run(["k3d", "kubeconfig", "get", name], timeout=30).stdout


def delete_cluster(tools: ToolRunner, name: str, timeout: float) -> None:
    tools.run(["k3d", "cluster", "delete", name], timeout=timeout)


def host_ports(cluster: dict[str, Any]) -> dict[int, list[int]]:
    """Container port -> host ports a k3d cluster maps (`k3d cluster list -o json`: every node's
    `portMappings`, Docker's port bindings, e.g. {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]};
    `--port H:C@loadbalancer` lands on the loadbalancer node)."""
    found: dict[int, list[int]] = {}
    for node in cluster.get("nodes") or []:
        for container, bindings in (node.get("portMappings") or {}).items():
            port = str(container).split("/", 1)[0]
            if not port.isdigit():
                continue
            for binding in bindings or []:
                host = str((binding or {}).get("HostPort") or "")
                if host.isdigit():
                    found.setdefault(int(port), []).append(int(host))
    return found
