"""Reading model-server pods' Prometheus metrics (vLLM names) into one sample per pod."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class PodSample:
    pod: str
    source: str
    running: float | None = None
    waiting: float | None = None
    kv_cache_usage: float | None = None
    running_loras: str = ""
    waiting_loras: str = ""
    max_lora: str = ""
    requests_served: float | None = None
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_vllm_metrics(pod: str, source: str, text: str) -> PodSample:
    sample = PodSample(pod=pod, source=source)
    latest_lora = -1.0
    served = 0.0
    saw_served = False
    kv_new: float | None = None
    kv_old: float | None = None
    for family in text_string_to_metric_families(text):
        if family.name in ("vllm:request_success", "vllm:request_success_total"):
            saw_served = True  # exported with no samples yet: nothing served
        for metric in family.samples:
            name, labels, value = metric.name, metric.labels, metric.value
            if name == "vllm:num_requests_running":
                sample.running = (sample.running or 0.0) + value
            elif name == "vllm:num_requests_waiting":
                sample.waiting = (sample.waiting or 0.0) + value
            elif name == "vllm:kv_cache_usage_perc":
                kv_new = value
            elif name == "vllm:gpu_cache_usage_perc":
                kv_old = value
            elif name == "vllm:lora_requests_info" and value >= latest_lora:
                # Each change adds a label set with a newer timestamp as its value: the largest is current.
                latest_lora = value
                sample.running_loras = labels.get("running_lora_adapters", "")
                sample.waiting_loras = labels.get("waiting_lora_adapters", "")
                sample.max_lora = labels.get("max_lora", "")
            elif name in ("vllm:request_success_total", "vllm:request_success"):
                served += value
    sample.kv_cache_usage = kv_new if kv_new is not None else kv_old
    sample.requests_served = served if saw_served else None
    return sample
