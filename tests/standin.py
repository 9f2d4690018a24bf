"""A stand-in for the gateway controller, for tests on a real (kwok) cluster.

Fake on purpose, and the only fake in the real-cluster tests: no provider's controller can run here
(its data plane needs a container runtime), so this does what the provider's controller would do
that igwlab waits for, as each provider documents it:
- GatewayClasses of the stack's controllerName: `Accepted=True`.
- Gateways of that class: the provider's proxy Deployment and Service (named as the catalog says,
  owned by the Gateway where they share a namespace, deleted with it otherwise), then `status.addresses`
  (a 127.0.0.0/8 address that a local `igwlab sim` answers on, so `up`'s warm-up completion and
  `verify` reach something) and `Accepted`/`Programmed`, with per-listener status.
- HTTPRoutes attached to those Gateways: `status.parents[]` with `Accepted` and `ResolvedRefs`.
- InferencePools those routes reference: `status.parents` (v1) or `status.parent` (v1alpha2) for the
  Gateway, the way each API era spells it.
Everything else on the cluster is real. `hold` lets a test keep one kind of object un-reconciled
(e.g. a Gateway that never gets Programmed) to prove igwlab's waits and messages.
"""

from __future__ import annotations

import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from igwlab.selection import ResolvedLab

GATEWAY_API = "gateway.networking.k8s.io/v1"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(generation: int, *types: str, reason: str | None = None) -> list[dict[str, Any]]:
    return [
        {
            "type": kind,
            "status": "True",
            "reason": reason or kind,
            "message": "set by the igwlab test stand-in for the gateway controller",
            "lastTransitionTime": _now(),
            "observedGeneration": generation,
        }
        for kind in types
    ]


@dataclass
class GatewayStandIn:
    """Reconciles the lab's gateway objects from a thread until `stop()`; see the module docstring."""

    resolved: ResolvedLab
    kubeconfig: str
    context: str
    address: str = "127.0.0.1"
    hold: frozenset[str] = frozenset()  # kinds to leave alone: GatewayClass, Gateway, HTTPRoute, InferencePool
    interval_s: float = 0.2
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        from kubernetes import config
        from kubernetes.dynamic import DynamicClient

        client = config.new_client_from_config(config_file=self.kubeconfig, context=self.context)
        # A discovery cache of its own: the client's default temp file is shared with every other process.
        self._dynamic = DynamicClient(client, cache_file=f"{tempfile.mkdtemp(prefix='standin-')}/discovery.json")
        stack = self.resolved.stack
        self.class_name = stack.gateway_class.name
        self.controller = stack.gateway_class.controller
        self.pool_api = self.resolved.gie.pool_api
        self._made: dict[str, tuple[str, str]] = {}  # gateway ns/name -> proxy namespace, name

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> GatewayStandIn:
        self._thread = threading.Thread(target=self._loop, name="gateway-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile()
            except Exception as error:  # the API server may be down on purpose; keep trying
                where = traceback.extract_tb(error.__traceback__)[-3:]
                calls = " < ".join(f"{frame.name}:{frame.lineno}" for frame in reversed(where))
                message = f"{type(error).__name__} in {calls}: {(str(error).splitlines() or [''])[0][:200]}"
                if not self.errors or self.errors[-1] != message:
                    self.errors.append(message)
            self._stop.wait(self.interval_s)

    # -- reconcile ----------------------------------------------------------------------------------

    def _api(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return self._dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            self._dynamic.resources.invalidate_cache()
            return self._dynamic.resources.get(api_version=api_version, kind=kind)

    def _list(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

        try:
            return [item.to_dict() for item in self._api(api_version, kind).get().items]
        except ResourceNotFoundError:
            return []
        except NotFoundError as error:  # discovery is older than the CRDs: look again next time
            self._dynamic.resources.invalidate_cache()
            raise RuntimeError(f"listing {kind} {api_version}: 404") from error

    def _patch_status(self, api_version: str, kind: str, obj: dict[str, Any], status: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self._api(api_version, kind).status.patch(
            name=meta["name"],
            namespace=meta.get("namespace"),
            body={"status": status},
            content_type="application/merge-patch+json",
        )

    def reconcile(self) -> None:
        if "GatewayClass" not in self.hold:
            self._ensure_gateway_class()
            for gateway_class in self._list(GATEWAY_API, "GatewayClass"):
                if gateway_class["spec"].get("controllerName") != self.controller:
                    continue
                if not _has_true(gateway_class.get("status"), "Accepted"):
                    generation = gateway_class["metadata"].get("generation", 1)
                    self._patch_status(
                        GATEWAY_API, "GatewayClass", gateway_class, {"conditions": _conditions(generation, "Accepted")}
                    )
        gateways = [
            g for g in self._list(GATEWAY_API, "Gateway") if g["spec"].get("gatewayClassName") == self.class_name
        ]
        live = {f"{g['metadata']['namespace']}/{g['metadata']['name']}" for g in gateways}
        for key in [k for k in self._made if k not in live]:
            self._delete_proxy(*self._made.pop(key))
        if "Gateway" not in self.hold:
            for gateway in gateways:
                self._reconcile_gateway(gateway)
        routes = [r for r in self._list(GATEWAY_API, "HTTPRoute") if self._attached(r, live)]
        if "HTTPRoute" not in self.hold:
            for route in routes:
                if not route.get("status", {}).get("parents"):
                    self._patch_status(GATEWAY_API, "HTTPRoute", route, {"parents": self._route_parents(route)})
        if "InferencePool" not in self.hold:
            self._reconcile_pools(routes)

    def _ensure_gateway_class(self) -> None:
        """Providers whose controller makes its GatewayClass at start-up (catalog `created_by: provider`):
        make it once the controller's Deployment exists, unless the chart made it already."""
        stack = self.resolved.stack
        if stack.gateway_class.created_by != "provider":
            return
        if self._get(GATEWAY_API, "GatewayClass", self.class_name, None) is not None:
            return
        for release in stack.helm_releases:
            for name in release.wait_deployments:
                if self._get("apps/v1", "Deployment", name, release.namespace) is None:
                    return
        manifest = {
            "apiVersion": GATEWAY_API,
            "kind": "GatewayClass",
            "metadata": {"name": self.class_name},
            "spec": {"controllerName": self.controller},
        }
        self._api(GATEWAY_API, "GatewayClass").server_side_apply(
            body=manifest, name=self.class_name, field_manager="gateway-standin", force_conflicts=True
        )

    def _attached(self, route: dict[str, Any], gateways: set[str]) -> bool:
        namespace = route["metadata"]["namespace"]
        return any(
            f"{ref.get('namespace', namespace)}/{ref['name']}" in gateways
            for ref in route["spec"].get("parentRefs", [])
        )

    def _reconcile_gateway(self, gateway: dict[str, Any]) -> None:
        meta = gateway["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        if key not in self._made:
            self._made[key] = self._ensure_proxy(gateway)
        status = gateway.get("status") or {}
        if _has_true(status, "Programmed") and status.get("addresses"):
            return
        generation = meta.get("generation", 1)
        listeners = [
            {
                "name": listener["name"],
                "attachedRoutes": 1,
                "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                "conditions": _conditions(generation, "Accepted", "Programmed", "ResolvedRefs"),
            }
            for listener in gateway["spec"].get("listeners", [])
        ]
        self._patch_status(
            GATEWAY_API,
            "Gateway",
            gateway,
            {
                "addresses": [{"type": "IPAddress", "value": self.address}],
                "conditions": _conditions(generation, "Accepted", "Programmed"),
                "listeners": listeners,
            },
        )

    def _ensure_proxy(self, gateway: dict[str, Any]) -> tuple[str, str]:
        """The provider's data-plane Deployment + Service for a Gateway, as the catalog names it."""
        meta = gateway["metadata"]
        proxy = self.resolved.stack.proxy
        namespace = proxy.namespace or meta["namespace"]
        name = (proxy.deployment or "standin-{gateway}").format(gateway=meta["name"])
        labels = {"app.kubernetes.io/name": name, "igwlab.test/standin": "proxy"}
        if proxy.label_selector:
            key, value = proxy.label_selector.format(gateway=meta["name"]).split("=", 1)
            labels[key] = value
        owner = []
        if namespace == meta["namespace"]:
            owner = [
                {
                    "apiVersion": GATEWAY_API,
                    "kind": "Gateway",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                }
            ]
        selector = {"app.kubernetes.io/name": name}
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels, "ownerReferences": owner},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "proxy", "image": "standin.invalid/gateway-proxy:test"}]},
                },
            },
        }
        ports = [
            {"name": listener["name"], "port": listener["port"], "protocol": "TCP"}
            for listener in gateway["spec"].get("listeners", [])
        ]
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": (proxy.service or name).format(gateway=meta["name"]),
                "namespace": namespace,
                "labels": labels,
                "ownerReferences": owner,
            },
            "spec": {"type": "ClusterIP", "selector": selector, "ports": ports},
        }
        for manifest in (deployment, service):
            self._api(manifest["apiVersion"], manifest["kind"]).server_side_apply(
                body=manifest,
                name=manifest["metadata"]["name"],
                namespace=namespace,
                field_manager="gateway-standin",
                force_conflicts=True,
            )
        return namespace, name

    def _delete_proxy(self, namespace: str, name: str) -> None:
        from kubernetes.dynamic.exceptions import NotFoundError

        for api_version, kind in (("apps/v1", "Deployment"), ("v1", "Service")):
            with suppress(NotFoundError):
                self._api(api_version, kind).delete(name=name, namespace=namespace)

    def _route_parents(self, route: dict[str, Any]) -> list[dict[str, Any]]:
        generation = route["metadata"].get("generation", 1)
        return [
            {
                "parentRef": ref,
                "controllerName": self.controller,
                "conditions": _conditions(generation, "Accepted", "ResolvedRefs"),
            }
            for ref in route["spec"].get("parentRefs", [])
        ]

    def _reconcile_pools(self, routes: list[dict[str, Any]]) -> None:
        field_name = "parent" if self.pool_api.endswith("v1alpha2") else "parents"
        for route in routes:
            namespace = route["metadata"]["namespace"]
            pools = {
                ref["name"]
                for rule in route["spec"].get("rules", [])
                for ref in rule.get("backendRefs", [])
                if ref.get("kind") == "InferencePool"
            }
            for pool_name in pools:
                pool = self._get(self.pool_api, "InferencePool", pool_name, namespace)
                if pool is None:
                    continue
                # A new pool may carry the CRD's placeholder parent (kind Status, name default): replace it.
                current = (pool.get("status") or {}).get(field_name) or []
                if any((p.get("parentRef") or {}).get("kind") == "Gateway" for p in current):
                    continue
                generation = pool["metadata"].get("generation", 1)
                parents = []
                for ref in route["spec"].get("parentRefs", []):
                    parent: dict[str, Any] = {
                        "parentRef": {
                            "group": "gateway.networking.k8s.io",
                            "kind": "Gateway",
                            "name": ref["name"],
                            "namespace": ref.get("namespace", namespace),
                        },
                        "conditions": _conditions(generation, "Accepted", "ResolvedRefs"),
                    }
                    if field_name == "parents":
                        parent["controllerName"] = self.controller
                    parents.append(parent)
                self._patch_status(self.pool_api, "InferencePool", pool, {field_name: parents})

    def _get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            return dict(self._api(api_version, kind).get(name=name, namespace=namespace).to_dict())
        except NotFoundError:
            return None


def _has_true(status: dict[str, Any] | None, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in (status or {}).get("conditions") or [])


@contextmanager
def running(standin: GatewayStandIn) -> Iterator[GatewayStandIn]:
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()


def wait_for(predicate: Any, timeout_s: float = 60, what: str = "condition") -> None:
    """Poll `predicate()` until it is truthy; raise AssertionError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.1)
