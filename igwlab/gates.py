"""Readiness gates: what a step waits for, checked against the Kubernetes API.

Each gate says what it waits for (`describe`, shown by `plan`) and, when checked, whether it
holds and the object's last state (shown when a wait times out). Where the cause of a gate not
holding is certain (a pod whose image does not exist, a Gateway its controller rejects), the state
says so (`failed`, with the fix), and the step stops waiting at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from igwlab.pods import pod_trouble
from igwlab.tools.kube import KubeApi, condition, describe_condition, is_true
from igwlab.wording import counted


@dataclass(frozen=True)
class GateState:
    ok: bool
    detail: str
    failed: bool = False  # the cause is certain: waiting longer cannot make the gate hold
    fix: str = ""


@dataclass(frozen=True)
class Gate:
    def describe(self) -> str:
        raise NotImplementedError

    def check(self, kube: KubeApi) -> GateState:
        raise NotImplementedError


@dataclass(frozen=True)
class NodesReady(Gate):
    def describe(self) -> str:
        return "node Ready"

    def check(self, kube: KubeApi) -> GateState:
        nodes = kube.list_objects("v1", "Node")
        ready = [n for n in nodes if is_true(condition(n, "Ready"))]
        return GateState(bool(ready), f"{len(ready)} of {counted(len(nodes), 'node')} Ready")


@dataclass(frozen=True)
class CrdsEstablished(Gate):
    """Each CRD Established and, where the bundle annotates its version, at that version: CRDs of an
    older bundle left on the cluster keep the step from being skipped, so a re-apply upgrades them."""

    names: tuple[str, ...]
    version_annotation: str | None = None
    version: str | None = None

    def describe(self) -> str:
        short = ", ".join(name.split(".", 1)[0] for name in self.names)
        at = f" at {self.version}" if self.version_annotation and self.version else ""
        return f"{counted(len(self.names), 'CRD')} Established{at} ({short})"

    def check(self, kube: KubeApi) -> GateState:
        pending = []
        for name in self.names:
            crd = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
            if crd is None:
                pending.append(f"{name} (missing)")
                continue
            if (crd.get("metadata") or {}).get("deletionTimestamp"):
                pending.append(f"{name} (being deleted)")  # still Established until it is gone
                continue
            if self.version_annotation and self.version:
                have = ((crd.get("metadata") or {}).get("annotations") or {}).get(self.version_annotation)
                if have != self.version:
                    pending.append(f"{name} (at {have or 'no bundle version'}, want {self.version})")
                    continue
            if not is_true(condition(crd, "Established")):
                pending.append(name)
        return GateState(not pending, "not ready: " + ", ".join(pending) if pending else "all Established")


@dataclass(frozen=True)
class NamespaceActive(Gate):
    name: str

    def describe(self) -> str:
        return "Namespace Active"

    def check(self, kube: KubeApi) -> GateState:
        namespace = kube.get("v1", "Namespace", self.name)
        phase = (namespace or {}).get("status", {}).get("phase")
        return GateState(namespace is not None and phase in (None, "Active"), f"Namespace {self.name}: {phase}")


def _deployment_state(kube: KubeApi, deployment: dict[str, Any] | None, label: str) -> GateState:
    if deployment is None:
        return GateState(False, f"{label} does not exist yet")
    status = deployment.get("status") or {}
    available = is_true(condition(deployment, "Available"))
    ready = int(status.get("readyReplicas") or 0)
    wanted = int((deployment.get("spec") or {}).get("replicas", 1))
    ok = available and ready >= wanted
    detail = f"{label}: {ready}/{wanted} ready, {describe_condition(condition(deployment, 'Available'), 'Available')}"
    if ok:
        return GateState(True, detail)
    namespace = str((deployment.get("metadata") or {}).get("namespace") or "")
    labels = (((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels")) or {}
    trouble = pod_trouble(kube, namespace, labels)
    if trouble is None:
        return GateState(False, detail)
    return GateState(False, f"{detail}; {trouble.describe()}", failed=trouble.certain, fix=trouble.fix)


@dataclass(frozen=True)
class DeploymentAvailable(Gate):
    namespace: str
    name: str
    replicas: int | None = None
    note: str = ""

    def describe(self) -> str:
        count = f" ({self.replicas} ready)" if self.replicas else ""
        return f"Deployment/{self.namespace}/{self.name} Available{count}{self.note}"

    def check(self, kube: KubeApi) -> GateState:
        label = f"Deployment {self.namespace}/{self.name}"
        deployment = kube.get("apps/v1", "Deployment", self.name, self.namespace)
        scaled = int(((deployment or {}).get("spec") or {}).get("replicas", 1))
        if deployment is not None and self.replicas and scaled < self.replicas:
            # Scaled down by someone else (kubectl scale, another field manager): not the lab as written,
            # so the step is not done and `up` applies the lab's count again.
            return GateState(False, f"{label}: spec.replicas is {scaled}, the lab asks for {self.replicas}")
        return _deployment_state(kube, deployment, label)


@dataclass(frozen=True)
class ProxyAvailable(Gate):
    """The data-plane Deployment a provider creates for a Gateway (found by name or by label)."""

    gateway: str
    namespace: str
    name: str | None = None
    label_selector: str | None = None

    def describe(self) -> str:
        return f"proxy for {self.gateway} Available"

    def check(self, kube: KubeApi) -> GateState:
        if self.name is not None:
            deployment = kube.get("apps/v1", "Deployment", self.name, self.namespace)
            return _deployment_state(kube, deployment, f"proxy Deployment {self.namespace}/{self.name}")
        found = kube.list_objects("apps/v1", "Deployment", self.namespace, self.label_selector)
        if not found:
            return GateState(False, f"no proxy Deployment matching {self.label_selector} in {self.namespace}")
        return _deployment_state(kube, found[0], f"proxy Deployment {self.namespace}/{found[0]['metadata']['name']}")


@dataclass(frozen=True)
class GatewayClassAccepted(Gate):
    name: str

    def describe(self) -> str:
        return f"GatewayClass/{self.name} Accepted"

    def check(self, kube: KubeApi) -> GateState:
        gateway_class = kube.get("gateway.networking.k8s.io/v1", "GatewayClass", self.name)
        if gateway_class is None:
            return GateState(False, f"GatewayClass {self.name} does not exist (the provider creates it)")
        accepted = condition(gateway_class, "Accepted")
        return GateState(is_true(accepted), describe_condition(accepted, "Accepted"))


# Condition reasons (Gateway API, GatewayConditionReason) a controller gives when it rejects a Gateway as
# written: waiting does not change them. Pending, NoResources, AddressNotAssigned... can still clear.
_GATEWAY_REJECTED = {"Invalid", "InvalidParameters", "UnsupportedAddress", "ListenersNotValid", "UnsupportedValue"}


@dataclass(frozen=True)
class GatewayProgrammed(Gate):
    namespace: str
    name: str

    def describe(self) -> str:
        return f"Gateway/{self.namespace}/{self.name} Programmed with an address"

    def check(self, kube: KubeApi) -> GateState:
        gateway = kube.get("gateway.networking.k8s.io/v1", "Gateway", self.name, self.namespace)
        if gateway is None:
            return GateState(False, f"Gateway {self.namespace}/{self.name} does not exist")
        programmed = condition(gateway, "Programmed")
        addresses = (gateway.get("status") or {}).get("addresses") or []
        if is_true(programmed) and addresses:
            return GateState(True, describe_condition(programmed, "Programmed"))
        # Quote the controller: its reason and message, for the Gateway and for each listener.
        said = [_quote(programmed, "Programmed"), _quote(condition(gateway, "Accepted"), "Accepted")]
        for listener in (gateway.get("status") or {}).get("listeners") or []:
            for item in listener.get("conditions") or []:
                if item.get("status") == "False" or (item.get("type") == "Conflicted" and is_true(item)):
                    said.append(f"listener {listener.get('name')}: " + _quote(item, str(item.get("type"))))
        detail = "; ".join(part for part in said if part)
        if is_true(programmed) and not addresses:
            detail += "; no address assigned yet"
        rejected = [
            item
            for item in (condition(gateway, "Accepted"), programmed)
            if item is not None and item.get("status") == "False" and item.get("reason") in _GATEWAY_REJECTED
        ]
        fix = (
            "the gateway controller rejects this Gateway as written: read its reason above and "
            f"`kubectl describe gateway -n {self.namespace} {self.name}`"
            if rejected
            else ""
        )
        return GateState(False, detail or "no Programmed condition yet", failed=bool(rejected), fix=fix)


def _quote(item: dict[str, Any] | None, kind: str) -> str:
    """A condition as its controller wrote it: `Programmed=False (AddressNotAssigned): "message"`."""
    if item is None:
        return ""
    text = f"{kind}={item.get('status')}"
    if item.get("reason"):
        text += f" ({item['reason']})"
    if item.get("message"):
        text += f': "{item["message"]}"'
    return text


def _parent_conditions_ok(parent: dict[str, Any]) -> tuple[bool, str]:
    accepted = condition(parent, "Accepted", ("conditions",))
    resolved = condition(parent, "ResolvedRefs", ("conditions",))
    ok = is_true(accepted) and is_true(resolved)
    return ok, f"{describe_condition(accepted, 'Accepted')}; {describe_condition(resolved, 'ResolvedRefs')}"


@dataclass(frozen=True)
class RouteAccepted(Gate):
    namespace: str
    name: str

    def describe(self) -> str:
        return f"HTTPRoute/{self.namespace}/{self.name} Accepted and ResolvedRefs"

    def check(self, kube: KubeApi) -> GateState:
        route = kube.get("gateway.networking.k8s.io/v1", "HTTPRoute", self.name, self.namespace)
        parents = ((route or {}).get("status") or {}).get("parents") or []
        if not parents:
            return GateState(False, f"HTTPRoute {self.namespace}/{self.name} has no parent status yet")
        states = [_parent_conditions_ok(parent) for parent in parents]
        return GateState(all(ok for ok, _ in states), " | ".join(detail for _, detail in states))


@dataclass(frozen=True)
class PoolAccepted(Gate):
    namespace: str
    name: str
    api_version: str
    gateway: str

    @property
    def status_field(self) -> str:
        return "parent" if self.api_version.endswith("v1alpha2") else "parents"

    def describe(self) -> str:
        return (
            f"InferencePool/{self.namespace}/{self.name} status.{self.status_field} Accepted and ResolvedRefs "
            "for the Gateway"
        )

    def check(self, kube: KubeApi) -> GateState:
        pool = kube.get(self.api_version, "InferencePool", self.name, self.namespace)
        parents = ((pool or {}).get("status") or {}).get(self.status_field) or []
        # Some controllers first report a placeholder parent (kind Status, name default): match the Gateway.
        mine = [p for p in parents if (p.get("parentRef") or {}).get("name") == self.gateway]
        if not mine:
            return GateState(
                False, f"InferencePool {self.namespace}/{self.name} has no status for Gateway {self.gateway} yet"
            )
        ok, detail = _parent_conditions_ok(mine[0])
        return GateState(ok, detail)


@dataclass(frozen=True)
class ObjectsExist(Gate):
    refs: tuple[tuple[str, str, str, str | None], ...]  # apiVersion, kind, name, namespace

    def describe(self) -> str:
        return "accepted by the API server"

    def check(self, kube: KubeApi) -> GateState:
        missing = [f"{kind}/{name}" for api, kind, name, ns in self.refs if kube.get(api, kind, name, ns) is None]
        return GateState(not missing, "missing: " + ", ".join(missing) if missing else "all present")


@dataclass(frozen=True)
class Answers(Gate):
    """Checked by the warm-up probe over HTTP, not through the Kubernetes API."""

    url: str  # "" on an existing cluster (--context): the Gateway's address is known only once it is up

    def describe(self) -> str:
        if not self.url:
            return "POST /v1/completions at the Gateway's address (or a port-forward to it) answers 200"
        return f"POST {self.url}/v1/completions answers 200"

    def check(self, kube: KubeApi) -> GateState:
        raise NotImplementedError("the warm-up probe checks this gate over HTTP")
