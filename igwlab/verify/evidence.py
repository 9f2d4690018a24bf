"""Evidence of a traffic split that survives the endpoint picker rewriting answers.

The GIE v1.x endpoint picker (EPP) writes the model name a client sent back into every answer (streams
too), so answers cannot show which target model served. The EPP counts each request it routes by the
name the client sent and the name it rewrote it to: `inference_objective_request_total{model_name,
target_model_name}` (v1.x; `inference_model_request_total` in v0.x; the catalog's `split_metric`).
Reading that counter on every EPP pod of the lab before and after a batch gives the split the EPP made.

Pods are read through the Kubernetes API's pod proxy (KubeApi.pod_proxy_get): `/metrics` of the EPP
container's port named `metrics` (9090 when unnamed). The EPP must serve its metrics without token
auth, which igwlab's rendering sets (`--metrics-endpoint-auth=false`, igwlab/render/epp.py).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from igwlab.tools.kube import KubeApi, api_error_line

METRICS_PORT = 9090  # the EPP's default --metrics-port (GIE v0.5.1 and v1.5.0 pkg/epp/server)


@dataclass(frozen=True)
class EppRef:
    """One pool's endpoint picker, as a Deployment."""

    namespace: str
    deployment: str


@dataclass
class SplitCounts:
    """Requests for one model name, by the target model the EPP sent them to (summed over EPP pods)."""

    by_target: Counter[str] = field(default_factory=Counter)
    pods: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def readable(self) -> bool:
        return self.pods > 0

    def since(self, earlier: SplitCounts) -> Counter[str]:
        """What was counted between `earlier` and this reading (counters only grow while a pod lives)."""
        delta: Counter[str] = Counter()
        for target, value in self.by_target.items():
            grown = value - earlier.by_target.get(target, 0)
            if grown > 0:
                delta[target] = round(grown)
        return delta


def parse_split(text: str, metric: str, model: str) -> Counter[str]:
    """Sum of `metric` samples with model_name=`model`, by target_model_name, from Prometheus text."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: Counter[str] = Counter()
    family_name = metric.removesuffix("_total")
    for family in text_string_to_metric_families(text):
        if family.name not in (family_name, metric):
            continue
        for sample in family.samples:
            if sample.name != metric or sample.labels.get("model_name") != model:
                continue
            counts[sample.labels.get("target_model_name") or model] += int(sample.value)
    return counts


def _epp_pods(kube: KubeApi, epp: EppRef) -> list[tuple[str, int]]:
    """(pod name, metrics port) of the EPP Deployment's running pods."""
    deployment = kube.get("apps/v1", "Deployment", epp.deployment, epp.namespace)
    if deployment is None:
        return []
    labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
    pods = []
    for pod in kube.list_objects("v1", "Pod", epp.namespace, selector or None):
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        port = METRICS_PORT
        for container in (pod.get("spec") or {}).get("containers") or []:
            for declared in container.get("ports") or []:
                if declared.get("name") == "metrics":
                    port = int(declared.get("containerPort") or declared.get("container_port") or METRICS_PORT)
        pods.append((str(pod["metadata"]["name"]), port))
    return pods


def read_split(kube: KubeApi, epps: list[EppRef], metric: str, model: str) -> SplitCounts:
    """The EPP counters for `model`, summed over every EPP pod of `epps`; errors name what could not be read."""
    counts = SplitCounts()
    for epp in epps:
        try:
            pods = _epp_pods(kube, epp)
        except Exception as error:
            counts.errors.append(f"listing the pods of {epp.namespace}/{epp.deployment}: {type(error).__name__}")
            continue
        if not pods:
            counts.errors.append(f"no running pod of Deployment {epp.namespace}/{epp.deployment}")
        for pod, port in pods:
            try:
                text = kube.pod_proxy_get(epp.namespace, pod, port, "metrics")
            except Exception as error:
                counts.errors.append(f"{epp.namespace}/{pod}:{port}/metrics: {api_error_line(error, 200)}")
                continue
            counts.by_target.update(parse_split(text, metric, model))
            counts.pods += 1
    return counts


async def read_split_async(kube: KubeApi, epps: list[EppRef], metric: str, model: str) -> SplitCounts:
    return await asyncio.to_thread(read_split, kube, epps, metric, model)
