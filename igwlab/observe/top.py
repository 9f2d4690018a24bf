"""`igwlab top`: each model-server pod's queue, KV-cache use and LoRA adapters, from its /metrics.

Sources: URLs given on the command line (local sims), or the pods of the lab that is up, read
through the Kubernetes API's pod proxy (no port-forward needed).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from igwlab.observe.podmetrics import PodSample, parse_vllm_metrics
from igwlab.tools.kube import KubeApi, api_error_line
from igwlab.urls import check_url


@dataclass(frozen=True)
class Target:
    pod: str
    url: str | None = None  # scraped directly
    namespace: str | None = None  # or through the pod proxy
    port: int = 8000


def targets_from_urls(urls: list[str]) -> list[Target]:
    """`URL` or `NAME=URL`, each URL checked up front (igwlab/urls.py): a bad one is exit 2."""
    targets = []
    for item in urls:
        name, _, url = item.partition("=") if "=" in item and not item.startswith("http") else ("", "", item)
        url = check_url(url, f"--url {item!r}:" if name else "--url")
        targets.append(Target(pod=name or url, url=url))
    return targets


def targets_from_cluster(kube: KubeApi, namespace: str, selector: dict[str, str], port: int) -> list[Target]:
    label_selector = ",".join(f"{key}={value}" for key, value in selector.items())
    pods = kube.list_objects("v1", "Pod", namespace, label_selector)
    return [Target(pod=p["metadata"]["name"], namespace=namespace, port=port) for p in pods]


async def _scrape(client: httpx.AsyncClient, kube: KubeApi | None, target: Target) -> PodSample:
    try:
        if target.url is not None:
            response = await client.get(f"{target.url}/metrics")
            response.raise_for_status()
            text = response.text
        else:
            assert kube is not None and target.namespace is not None
            text = await asyncio.to_thread(kube.pod_proxy_get, target.namespace, target.pod, target.port, "metrics")
        return parse_vllm_metrics(target.pod, target.url or f"pod proxy {target.namespace}/{target.pod}", text)
    except Exception as error:  # one unreachable pod must not hide the others
        return PodSample(pod=target.pod, source=target.url or "pod proxy", error=_scrape_error(target, error))


def _scrape_error(target: Target, error: Exception) -> str:
    """One line saying why a pod's /metrics could not be read: the API server's refusal of the pod proxy
    (with its status and words), or what the direct HTTP request met."""
    if target.url is None and isinstance(getattr(error, "status", None), int):
        return f"the API server refused the pod proxy: {api_error_line(error, 200)}"
    if isinstance(error, httpx.HTTPStatusError):
        return f"{target.url}/metrics answered HTTP {error.response.status_code}"
    return api_error_line(error, 200)


async def sample(targets: list[Target], kube: KubeApi | None = None, timeout_s: float = 5.0) -> list[PodSample]:
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        return list(await asyncio.gather(*(_scrape(client, kube, target) for target in targets)))


def sample_dict(samples: list[PodSample]) -> dict[str, Any]:
    return {"pods": [s.as_dict() for s in samples]}
