"""What a render produces: Kubernetes objects, Helm releases and CRD bundles, grouped by plan step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from igwlab.selection import ResolvedLab

MANAGED_BY = {"app.kubernetes.io/managed-by": "igwlab"}


@dataclass(frozen=True)
class KubeObject:
    """One object igwlab applies, with the plan step it belongs to."""

    step: str
    template: str
    manifest: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def api_version(self) -> str:
        return str(self.manifest["apiVersion"])

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        namespace = self.manifest["metadata"].get("namespace")
        return None if namespace is None else str(namespace)

    @property
    def ref(self) -> str:
        """`Kind/name` or `Kind/namespace/name`, the way plans and messages name objects."""
        return "/".join(p for p in (self.kind, self.namespace, self.name) if p)


@dataclass(frozen=True)
class HelmRelease:
    step: str
    name: str
    chart: str
    version: str
    namespace: str
    values: dict[str, Any]
    repo: str | None = None
    wait_deployments: tuple[str, ...] = ()

    @property
    def values_file(self) -> str:
        return f"{self.name}.values.yaml"

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "release": self.name,
            "chart": self.chart,
            "version": self.version,
            "namespace": self.namespace,
            "values_file": f"helm/{self.values_file}",
        }
        if self.repo:
            summary["repo"] = self.repo
        return summary


@dataclass(frozen=True)
class CrdBundle:
    step: str
    title: str
    version: str
    url: str
    crds: tuple[str, ...]
    # The annotation whose value is `version` on each CRD of the bundle (None: the bundle has none).
    version_annotation: str | None = None
    # What the bundle applies beside its CRDs, as (apiVersion, kind, name), binding first: `teardown --crds`
    # deletes these too (Gateway API v1.5+: its safe-upgrades admission policy).
    admission: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class Rendered:
    resolved: ResolvedLab
    crd_bundles: tuple[CrdBundle, ...]
    releases: tuple[HelmRelease, ...]
    objects: tuple[KubeObject, ...] = field(default_factory=tuple)

    def objects_for(self, step: str) -> list[KubeObject]:
        return [obj for obj in self.objects if obj.step == step]

    def releases_for(self, step: str) -> list[HelmRelease]:
        return [release for release in self.releases if release.step == step]
