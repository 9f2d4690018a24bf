"""Model-server arguments and resources: llm-d-inference-sim and vLLM on CPU."""

from __future__ import annotations

import json
from typing import Any

from igwlab.selection import ResolvedLab


def _duration(milliseconds: int, units: str) -> str:
    return f"{milliseconds}ms" if units == "duration" else str(milliseconds)


def simulator_args(resolved: ResolvedLab) -> list[str]:
    """llm-d-inference-sim's command line for the lab's (first) pool, in the dialect of the stack's
    simulator version (latency units, dummy tokenizer; see catalog.yaml `simulators`)."""
    lab, sim = resolved.lab, resolved.simulator
    workload = lab.workload
    args = ["--model", workload.served_model, "--port", str(lab.pool.target_port)]
    args += ["--max-loras", str(max(1, len(workload.loras)))]
    if workload.loras:
        args += ["--lora-modules", *(json.dumps({"name": lora.name}) for lora in workload.loras)]
    args += [
        "--time-to-first-token",
        _duration(workload.latency.time_to_first_token_ms, sim.latency_units),
        "--inter-token-latency",
        _duration(workload.latency.inter_token_latency_ms, sim.latency_units),
    ]
    if workload.kv_cache:
        # KV-cache and prefix metrics only move when the simulator tracks blocks.
        args += ["--enable-kvcache", "--kv-cache-size", "1024", "--block-size", "16"]
    if sim.force_dummy_tokenizer:
        args.append("--force-dummy-tokenizer")
    return args


def vllm_args(resolved: ResolvedLab) -> list[str]:
    """vLLM's OpenAI server arguments: model, served name, port and LoRA modules."""
    lab = resolved.lab
    workload = lab.workload
    args = [
        "--model",
        workload.base_model,
        "--served-model-name",
        workload.served_model,
        "--port",
        str(lab.pool.target_port),
    ]
    if workload.loras:
        args += ["--enable-lora", "--max-loras", str(max(4, len(workload.loras))), "--lora-modules"]
        for lora in workload.loras:
            module = {"name": lora.name, "path": lora.source}
            if lora.base_model:
                module["base_model_name"] = lora.base_model
            args.append(json.dumps(module))
    return args


def workload_resources(resolved: ResolvedLab) -> dict[str, Any]:
    """Container resources of one model-server replica: the lab's own, else vLLM CPU's or the simulator's."""
    workload = resolved.lab.workload
    if workload.resources is not None:
        amounts = {"cpu": workload.resources.cpu, "memory": workload.resources.memory}
        return {"requests": amounts, "limits": amounts}
    if workload.kind == "vllm-cpu":
        amounts = {"cpu": resolved.catalog.vllm_cpu.cpu, "memory": resolved.catalog.vllm_cpu.memory}
        return {"requests": amounts, "limits": amounts}
    return {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}}
