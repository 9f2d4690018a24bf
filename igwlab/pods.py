"""What the pods of a workload say when it does not become ready: the cause a user needs, named.

Read from Pod status as the Kubernetes API reference describes it (core/v1 PodStatus):
`containerStatuses[].state.waiting.{reason,message}`, `containerStatuses[].lastState.terminated.
{exitCode,reason,message}`, `restartCount`, and the `PodScheduled` condition (`Unschedulable` with the
scheduler's message), with the pod's container requests against the nodes' `status.allocatable`.
A cause is *certain* when waiting longer cannot fix it (an image that does not exist, requests no node
can hold, a Secret that is missing, a container that keeps crashing): gates stop waiting then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from igwlab.quantities import cpu_text, memory_text, quantity
from igwlab.tools.kube import KubeApi, Manifest

CRASH_RESTARTS = 2  # restarts after which a crash loop is the pod's state, not a slow start
PULL_FAILURES = ("not found", "manifest unknown", "unauthorized", "denied", "invalid reference", "no such host")


@dataclass(frozen=True)
class PodTrouble:
    pod: str
    reason: str  # CrashLoopBackOff, ImagePullBackOff, ErrImagePull, Unschedulable, CreateContainerConfigError...
    detail: str
    fix: str
    certain: bool

    def describe(self) -> str:
        return f"pod {self.pod}: {self.reason}: {self.detail}"


def selector(labels: dict[str, Any]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def pod_trouble(kube: KubeApi, namespace: str, match_labels: dict[str, Any]) -> PodTrouble | None:
    """The most telling trouble among the pods these labels select (certain causes first), or None."""
    if not match_labels:
        return None
    troubles = [
        trouble
        for pod in kube.list_objects("v1", "Pod", namespace, selector(match_labels))
        if (trouble := _trouble(kube, pod)) is not None
    ]
    troubles.sort(key=lambda trouble: not trouble.certain)
    return troubles[0] if troubles else None


def _trouble(kube: KubeApi, pod: Manifest) -> PodTrouble | None:
    name = pod["metadata"]["name"]
    namespace = pod["metadata"].get("namespace", "")
    status = pod.get("status") or {}
    statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    for container in statuses:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        message = str(waiting.get("message") or "")
        if reason in ("ImagePullBackOff", "ErrImagePull", "InvalidImageName"):
            image = container.get("image") or _spec_image(pod, container.get("name"))
            certain = reason != "ErrImagePull" or any(word in message.lower() for word in PULL_FAILURES)
            return PodTrouble(
                name,
                reason,
                f"container {container.get('name')} cannot pull image {image}" + (f" ({message})" if message else ""),
                f"check that {image} exists and this cluster can reach its registry (`kubectl describe pod -n "
                f"{namespace} {name}`); a private registry needs an imagePullSecret",
                certain,
            )
        if reason == "CreateContainerConfigError":
            return PodTrouble(
                name,
                reason,
                f"container {container.get('name')} cannot be created: {message or 'its configuration is invalid'}",
                "create the Secret or ConfigMap (and key) it names in namespace "
                f"{namespace}; for hf-token: export HF_TOKEN and re-run `igwlab up`",
                True,
            )
        if reason == "CrashLoopBackOff":
            restarts = int(container.get("restartCount") or 0)
            last = ((container.get("lastState") or {}).get("terminated")) or {}
            said = str(last.get("message") or "").strip() or _last_log_lines(kube, namespace, name, container)
            exit_code = last.get("exitCode")
            detail = f"container {container.get('name')} keeps exiting (restarts {restarts}"
            detail += f", exit code {exit_code}" if exit_code is not None else ""
            detail += f", {last['reason']}" if last.get("reason") else ""
            detail += ")" + (f": {said}" if said else "")
            return PodTrouble(
                name,
                reason,
                detail,
                f"read `kubectl logs -n {namespace} {name} -c {container.get('name')} --previous`: a wrong flag, "
                "a missing config file or an unreachable dependency makes a container exit at start",
                restarts >= CRASH_RESTARTS,
            )
    scheduled = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return _unschedulable(kube, pod, str(scheduled.get("message") or ""))
    return None


def _spec_image(pod: Manifest, container: str | None) -> str:
    spec = pod.get("spec") or {}
    for item in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if item.get("name") == container:
            return str(item.get("image"))
    return "its image"


def _last_log_lines(kube: KubeApi, namespace: str, pod: str, container: dict[str, Any], lines: int = 5) -> str:
    try:
        text = kube.logs(namespace, pod, tail_lines=lines, container=container.get("name"), previous=True)
    except Exception:  # no logs kept: the reason and exit code still say something
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[-600:]


def pod_requests(pod: Manifest) -> tuple[float, float]:
    """(CPU cores, memory bytes) the pod's containers request (init containers: their largest, as the
    scheduler counts them)."""
    spec = pod.get("spec") or {}

    def total(containers: list[dict[str, Any]], key: str) -> float:
        return sum(quantity(((c.get("resources") or {}).get("requests") or {}).get(key, 0)) for c in containers)

    def largest(containers: list[dict[str, Any]], key: str) -> float:
        return max((total([c], key) for c in containers), default=0.0)

    main, init = spec.get("containers") or [], spec.get("initContainers") or []
    return max(total(main, "cpu"), largest(init, "cpu")), max(total(main, "memory"), largest(init, "memory"))


def _unschedulable(kube: KubeApi, pod: Manifest, message: str) -> PodTrouble:
    name = pod["metadata"]["name"]
    cpu, memory = pod_requests(pod)
    nodes = kube.list_objects("v1", "Node")
    offers = [
        (
            node["metadata"]["name"],
            quantity(((node.get("status") or {}).get("allocatable") or {}).get("cpu", 0)),
            quantity(((node.get("status") or {}).get("allocatable") or {}).get("memory", 0)),
        )
        for node in nodes
    ]
    detail = f"not scheduled: {message.strip()}" if message else "not scheduled"
    detail += f" (the pod requests cpu {cpu_text(cpu)}, memory {memory_text(memory)}"
    if offers:
        biggest = max(offers, key=lambda offer: (offer[1], offer[2]))
        detail += f"; node {biggest[0]} has cpu {cpu_text(biggest[1])}, memory {memory_text(biggest[2])} allocatable"
    detail += ")"
    never_fits = bool(offers) and all(cpu > node_cpu or memory > node_memory for _, node_cpu, node_memory in offers)
    return PodTrouble(
        name,
        "Unschedulable",
        detail,
        "lower the requests (a lab's workload.resources or pool.epp.resources) or give the cluster more CPU "
        "and memory (Docker Desktop: Settings > Resources); `igwlab doctor` adds up what the lab asks for",
        never_fits,
    )
