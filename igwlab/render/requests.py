"""What the lab's own pods ask the scheduler for: model servers, endpoint pickers and add-ons, with
their replicas, from the objects and chart values igwlab renders (the provider's pods are not the lab's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from igwlab.quantities import quantity
from igwlab.render.objects import Rendered


@dataclass(frozen=True)
class Request:
    what: str  # "Deployment igwlab/fakellm", "EPP fakellm-pool (chart)"
    replicas: int
    cpu: float  # cores per replica
    memory: float  # bytes per replica

    @property
    def total_cpu(self) -> float:
        return self.cpu * self.replicas

    @property
    def total_memory(self) -> float:
        return self.memory * self.replicas


def _requests_of(resources: dict[str, Any] | None) -> tuple[float, float]:
    requests = (resources or {}).get("requests") or {}
    return quantity(requests.get("cpu", 0)), quantity(requests.get("memory", 0))


# Where each chart igwlab installs for the lab keeps its pod's resources and replicas in the values.
_CHART_RESOURCES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "inferencepool": (("inferenceExtension", "resources"), ("inferenceExtension", "replicas")),
    "prometheus": (("server", "resources"), ("server", "replicaCount")),
    "grafana": (("resources",), ("replicas",)),
}


def _dig(values: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = values
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def lab_requests(rendered: Rendered) -> list[Request]:
    """Every pod the lab itself adds, with its requests: Deployments igwlab applies and the charts of the
    lab's pools and add-ons (their resources as igwlab's values set them)."""
    found: list[Request] = []
    for obj in rendered.objects:
        if obj.kind != "Deployment":
            continue
        spec = obj.manifest.get("spec") or {}
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        cpu = sum(_requests_of(c.get("resources"))[0] for c in containers)
        memory = sum(_requests_of(c.get("resources"))[1] for c in containers)
        found.append(Request(f"Deployment {obj.namespace}/{obj.name}", int(spec.get("replicas", 1)), cpu, memory))
    for release in rendered.releases:
        chart = release.chart.rstrip("/").rsplit("/", 1)[-1]
        if chart not in _CHART_RESOURCES:
            continue
        resources_path, replicas_path = _CHART_RESOURCES[chart]
        cpu, memory = _requests_of(_dig(release.values, resources_path))
        replicas = int(_dig(release.values, replicas_path) or 1)
        found.append(Request(f"{chart} release {release.name}", replicas, cpu, memory))
    return found
