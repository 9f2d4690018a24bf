"""An in-memory Kubernetes API that plays the controllers igwlab waits on (see the package docstring)."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from doubles.faketools import FakeTools
from igwlab.catalog import Stack, load_catalog
from igwlab.tools.kube import Manifest

BUILTIN_GROUPS = {
    "",
    "apps",
    "rbac.authorization.k8s.io",
    "apiextensions.k8s.io",
    "admissionregistration.k8s.io",
    "batch",
    "policy",
}
CLUSTER_SCOPED = {
    "Namespace",
    "Node",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "GatewayClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}
Key = tuple[str, str, str, str]  # group, kind, namespace, name


class ApiError(Exception):
    """What the API server would refuse (a missing namespace, a kind with no CRD)."""


def _group(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


def _plural(kind: str) -> str:
    lower = kind.lower()
    return lower + ("es" if lower.endswith("s") else "s")


def crd_manifest(name: str, annotations: dict[str, str] | None = None, served: str = "v1") -> Manifest:
    plural, group = name.split(".", 1)
    kind = {
        "gatewayclasses": "GatewayClass",
        "httproutes": "HTTPRoute",
        "grpcroutes": "GRPCRoute",
        "referencegrants": "ReferenceGrant",
    }.get(plural, plural[:-1].capitalize())
    if plural.startswith("inference"):
        kind = "Inference" + plural[len("inference") : -1].capitalize()
        kind = kind.replace("Modelrewrite", "ModelRewrite").replace("Poolimport", "PoolImport")
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name, "annotations": dict(annotations or {})},
        "spec": {
            "group": group,
            "names": {"plural": plural, "kind": kind},
            "scope": "Namespaced",
            "versions": [{"name": served, "served": True, "storage": True}],
        },
    }


def crd_bundle_text(names: tuple[str, ...], annotations: dict[str, str] | None = None, served: str = "v1") -> str:
    """What a CRD release URL would serve, for a fake `fetch`: each CRD with the bundle's annotations."""
    return "".join(f"---\n{yaml.safe_dump(crd_manifest(name, annotations, served))}" for name in names)


@dataclass
class FakeCluster:
    stack: Stack
    tools: FakeTools | None = None
    k3d_cluster: str | None = None
    ready_after_s: dict[str, float] = field(default_factory=dict)
    never_ready: set[str] = field(default_factory=set)  # "Kind/namespace/name"
    gateway_address: str = "172.18.0.3"
    # Called once when a Gateway is first Programmed: tests start the "proxy" (a simulator on the
    # lab's port) here, since traffic reaches a host port only once the gateway exists.
    on_gateway_programmed: Callable[[], None] | None = None
    on_cluster_deleted: Callable[[], None] | None = None
    pod_endpoints: dict[str, str] = field(default_factory=dict)
    kubernetes_version: str = ""  # what GET /version reports; the stack's k3s version when empty
    pod_logs: dict[str, str] = field(default_factory=dict)
    pod_events: dict[str, list[Manifest]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.kubernetes_version:
            image = load_catalog().k3s_images[self.stack.kubernetes.k3s_image]
            self.kubernetes_version = f"{image.kubernetes}+k3s1"
        self._objects: dict[Key, Manifest] = {}
        self._born: dict[Key, float] = {}
        self._from_release: dict[str, list[Key]] = {}
        self._lock = threading.RLock()
        self.applied: list[str] = []
        self._proxy_started = False

    # -- KubeApi -------------------------------------------------------------------------------

    def apply(self, manifest: Manifest) -> Manifest:
        with self._lock:
            self._sync()
            manifest = copy.deepcopy(manifest)
            kind, metadata = manifest["kind"], manifest["metadata"]
            group = _group(manifest["apiVersion"])
            namespace = "" if kind in CLUSTER_SCOPED else metadata.get("namespace", "default")
            if group not in BUILTIN_GROUPS:
                crd = f"{_plural(kind)}.{group}"
                if ("apiextensions.k8s.io", "CustomResourceDefinition", "", crd) not in self._objects:
                    raise ApiError(f'no matches for kind "{kind}" in version "{manifest["apiVersion"]}"')
            if namespace and ("", "Namespace", "", namespace) not in self._objects:
                raise ApiError(f'namespaces "{namespace}" not found')
            key = (group, kind, namespace, metadata["name"])
            existing = self._objects.get(key)
            if existing is not None:
                manifest["status"] = existing.get("status", {})
            else:
                self._born[key] = time.monotonic()
            self._objects[key] = manifest
            self.applied.append("/".join(p for p in (kind, namespace, metadata["name"]) if p))
            return copy.deepcopy(manifest)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Manifest | None:
        with self._lock:
            self._sync()
            obj = self._objects.get(
                (_group(api_version), kind, "" if kind in CLUSTER_SCOPED else namespace or "", name)
            )
            return copy.deepcopy(obj) if obj is not None else None

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Manifest]:
        wanted = dict(part.split("=", 1) for part in label_selector.split(",")) if label_selector else {}
        with self._lock:
            self._sync()
            found = []
            for (group, k, ns, _), obj in self._objects.items():
                if group != _group(api_version) or k != kind or (namespace and ns != namespace):
                    continue
                labels = obj["metadata"].get("labels") or {}
                if all(labels.get(key) == value for key, value in wanted.items()):
                    found.append(copy.deepcopy(obj))
            return found

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        with self._lock:
            key = (_group(api_version), kind, "" if kind in CLUSTER_SCOPED else namespace or "", name)
            if kind == "Namespace":
                for other in [k for k in self._objects if k[2] == name]:
                    del self._objects[other]
            return self._objects.pop(key, None) is not None

    def annotate(
        self, api_version: str, kind: str, name: str, annotations: dict[str, str], namespace: str | None = None
    ) -> bool:
        with self._lock:
            key = (_group(api_version), kind, "" if kind in CLUSTER_SCOPED else namespace or "", name)
            obj = self._objects.get(key)
            if obj is None:
                return False
            obj.setdefault("metadata", {}).setdefault("annotations", {}).update(annotations)
            return True

    def events(self, namespace: str, involved_object: str | None = None) -> list[Manifest]:
        """`pod_events` (pod name -> events) where a test set them, else one Normal event of the namespace."""
        if involved_object is not None:
            return list(self.pod_events.get(involved_object, []))
        found = [event for events in self.pod_events.values() for event in events]
        return found or [{"type": "Normal", "reason": "Scheduled", "message": f"fake event in {namespace}"}]

    def logs(
        self, namespace: str, pod: str, tail_lines: int = 200, container: str | None = None, previous: bool = False
    ) -> str:
        """`pod_logs` (pod name -> text) where a test set one, else a line naming the pod."""
        text = self.pod_logs.get(pod, f"fake log of {namespace}/{pod}\n")
        return "\n".join(text.splitlines()[-tail_lines:]) + "\n"

    def server_version(self) -> str:
        return self.kubernetes_version

    def pod_proxy_get(self, namespace: str, pod: str, port: int, path: str) -> str:
        """Answered by `pod_endpoints` (pod name -> a local URL standing in for that pod)."""
        import httpx

        url = self.pod_endpoints.get(pod)
        if url is None:
            raise ApiError(f'pods "{pod}" not found')
        return httpx.get(f"{url}/{path.lstrip('/')}", timeout=5).text

    # -- the controllers ---------------------------------------------------------------------

    def refs(self) -> list[str]:
        with self._lock:
            self._sync()
            return ["/".join(p for p in (kind, ns, name) if p) for (_, kind, ns, name) in self._objects]

    def _ready(self, key: Key) -> bool:
        _, kind, namespace, name = key
        if "/".join(p for p in (kind, namespace, name) if p) in self.never_ready:
            return False
        return time.monotonic() - self._born.get(key, 0.0) >= self.ready_after_s.get(kind, 0.0)

    def _put(self, manifest: Manifest, release: str | None = None) -> Key:
        kind = manifest["kind"]
        namespace = "" if kind in CLUSTER_SCOPED else manifest["metadata"].get("namespace", "")
        key = (_group(manifest["apiVersion"]), kind, namespace, manifest["metadata"]["name"])
        if key not in self._objects:
            self._objects[key] = manifest
            self._born[key] = time.monotonic()
        if release is not None:
            self._from_release.setdefault(release, []).append(key)
        return key

    def _sync(self) -> None:
        cluster_up = self.k3d_cluster is None or (
            self.tools is not None and self.k3d_cluster in self.tools.k3d_clusters()
        )
        node = ("", "Node", "", "k3d-server-0")
        if cluster_up:
            self._put(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": node[3]},
                    "status": {"conditions": [{"type": "Ready", "status": "True"}]},
                }
            )
            if self.k3d_cluster is not None and self.tools is not None:
                # kubelet reports the images on a node; here those `k3d image import` brought in.
                imported = self.tools.k3d_images(self.k3d_cluster)
                self._objects[node]["status"]["images"] = [{"names": [name]} for name in imported]
            if ("", "Namespace", "", "default") not in self._objects:
                self._put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
        else:
            if self._proxy_started and self.on_cluster_deleted is not None:
                self.on_cluster_deleted()
            self._proxy_started = False
            self._objects.clear()
            self._from_release.clear()
            return
        self._sync_releases()
        for key, obj in list(self._objects.items()):
            self._reconcile(key, obj)

    def _sync_releases(self) -> None:
        installed = self.tools.helm_releases() if self.tools is not None else {}
        for release_key in [k for k in self._from_release if k not in installed]:
            for key in self._from_release.pop(release_key):
                self._objects.pop(key, None)
        pins = {pin.name: pin for pin in self.stack.helm_releases}
        pins.update({pin.name: pin for addon in load_catalog().addons.values() for pin in addon.releases})
        for release_key, release in installed.items():
            if release_key in self._from_release:
                continue
            self._from_release[release_key] = []
            namespace = release["namespace"]
            self._put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}, release_key)
            pin = pins.get(release["name"])
            if pin is not None:
                for name in pin.wait_deployments:
                    self._put(_deployment(namespace, name, 1), release_key)
                if pin.name == self.stack.helm_releases[-1].name and self.stack.gateway_class.created_by == "provider":
                    self._put(
                        {
                            "apiVersion": "gateway.networking.k8s.io/v1",
                            "kind": "GatewayClass",
                            "metadata": {"name": self.stack.gateway_class.name},
                            "spec": {"controllerName": self.stack.gateway_class.controller},
                        },
                        release_key,
                    )
            elif release["chart"].endswith("inferencepool"):
                values = yaml.safe_load(release.get("values") or "{}") or {}
                selector = values.get("inferencePool", {}).get("modelServers", {}).get("matchLabels", {})
                self._put(
                    {
                        "apiVersion": "inference.networking.k8s.io/v1",
                        "kind": "InferencePool",
                        "metadata": {"name": release["name"], "namespace": namespace},
                        "spec": {
                            "selector": {"matchLabels": selector},
                            "targetPorts": [{"number": 8000}],
                            "endpointPickerRef": {"name": f"{release['name']}-epp", "port": {"number": 9002}},
                        },
                    },
                    release_key,
                )
                self._put(_deployment(namespace, f"{release['name']}-epp", 1), release_key)

    def _controller_running(self) -> bool:
        return any(
            key[1] == "Deployment" and key[2] in {p.namespace for p in self.stack.helm_releases}
            for key in self._objects
        )

    def _reconcile(self, key: Key, obj: Manifest) -> None:
        _, kind, namespace, _ = key
        status = obj.setdefault("status", {})
        if kind == "Namespace":
            status["phase"] = "Active"
        elif kind == "CustomResourceDefinition":
            status["conditions"] = [{"type": "Established", "status": "True" if self._ready(key) else "False"}]
        elif kind == "Deployment":
            ready = self._ready(key)
            replicas = obj.get("spec", {}).get("replicas", 1)
            status["readyReplicas"] = replicas if ready else 0
            status["conditions"] = [
                {
                    "type": "Available",
                    "status": "True" if ready else "False",
                    "reason": "MinimumReplicasAvailable" if ready else "MinimumReplicasUnavailable",
                }
            ]
        elif kind == "GatewayClass":
            accepted = self._controller_running()
            status["conditions"] = [
                {
                    "type": "Accepted",
                    "status": "True" if accepted else "Unknown",
                    "reason": "Accepted" if accepted else "Pending",
                }
            ]
        elif kind == "Gateway":
            self._reconcile_gateway(key, obj, status)
        elif kind == "HTTPRoute":
            self._reconcile_route(obj, status, namespace)

    def _reconcile_gateway(self, key: Key, obj: Manifest, status: dict[str, Any]) -> None:
        gateway_class = self._objects.get(
            ("gateway.networking.k8s.io", "GatewayClass", "", obj["spec"]["gatewayClassName"])
        )
        conditions = (gateway_class or {}).get("status", {}).get("conditions", [])
        accepted = any(c.get("type") == "Accepted" and c.get("status") == "True" for c in conditions)
        name, namespace = key[3], key[2]
        if not accepted:
            status["conditions"] = [
                {"type": "Programmed", "status": "False", "reason": "Pending", "message": "Waiting for controller"}
            ]
            return
        proxy = self.stack.proxy
        proxy_ns = proxy.namespace or namespace
        labels = {}
        if proxy.label_selector:
            label_key, value = proxy.label_selector.format(gateway=name).split("=", 1)
            labels[label_key] = value
        proxy_name = proxy.deployment.format(gateway=name) if proxy.deployment else f"envoy-{namespace}-{name}-fake"
        self._put(_deployment(proxy_ns, proxy_name, 1, labels))
        programmed = self._ready(key)
        status["conditions"] = [
            {"type": "Accepted", "status": "True"},
            {
                "type": "Programmed",
                "status": "True" if programmed else "False",
                "reason": "Programmed" if programmed else "AddressNotAssigned",
            },
        ]
        status["addresses"] = [{"type": "IPAddress", "value": self.gateway_address}] if programmed else []
        if programmed and self.on_gateway_programmed is not None and not self._proxy_started:
            self._proxy_started = True
            self.on_gateway_programmed()

    def _reconcile_route(self, obj: Manifest, status: dict[str, Any], namespace: str) -> None:
        parents = []
        for parent in obj["spec"].get("parentRefs", []):
            gateway = self._objects.get(("gateway.networking.k8s.io", "Gateway", namespace, parent["name"]))
            backends = [ref for rule in obj["spec"].get("rules", []) for ref in rule.get("backendRefs", [])]
            resolved = all(
                (ref.get("group", ""), ref.get("kind", "Service"), namespace, ref["name"]) in self._objects
                for ref in backends
            )
            parents.append(
                {
                    "parentRef": {"name": parent["name"], "kind": "Gateway"},
                    "controllerName": self.stack.gateway_class.controller,
                    "conditions": [
                        {
                            "type": "Accepted",
                            "status": "True" if gateway else "False",
                            "reason": "Accepted" if gateway else "NoMatchingParent",
                        },
                        {
                            "type": "ResolvedRefs",
                            "status": "True" if resolved else "False",
                            "reason": "ResolvedRefs" if resolved else "BackendNotFound",
                        },
                    ],
                }
            )
            for ref in backends:
                pool = self._objects.get((ref.get("group", ""), "InferencePool", namespace, ref["name"]))
                if pool is not None and gateway is not None:
                    field_name = "parent" if pool["apiVersion"].endswith("v1alpha2") else "parents"
                    pool.setdefault("status", {})[field_name] = [
                        {
                            "parentRef": {
                                "group": "gateway.networking.k8s.io",
                                "kind": "Gateway",
                                "name": parent["name"],
                                "namespace": namespace,
                            },
                            "conditions": [
                                {"type": "Accepted", "status": "True"},
                                {"type": "ResolvedRefs", "status": "True"},
                            ],
                        }
                    ]
        status["parents"] = parents


def _deployment(namespace: str, name: str, replicas: int, labels: dict[str, str] | None = None) -> Manifest:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"replicas": replicas},
    }
