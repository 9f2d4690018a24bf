"""k3d command lines."""

from __future__ import annotations

from collections.abc import Sequence

from igwlab.labs import ClusterSpec, Listener


def create_cluster_argv(cluster: ClusterSpec, listeners: Sequence[Listener]) -> list[str]:
    """`k3d cluster create` for a lab: one server, traefik off, each listener mapped to a host port.

    Traefik would take ports 80/443 on k3s's service load balancer, and the Gateway's own
    LoadBalancer Service would then stay pending (never Programmed). The user's kubeconfig is
    left alone; igwlab keeps the cluster's kubeconfig in its state directory.
    """
    argv = [
        "k3d",
        "cluster",
        "create",
        cluster.name,
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
