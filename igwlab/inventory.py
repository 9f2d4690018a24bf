"""Summaries of labs for `igwlab labs`: plain dicts, ready for a table or JSON."""

from __future__ import annotations

from typing import Any

from igwlab.catalog import load_catalog
from igwlab.labs import Lab, load_presets
from igwlab.selection import LabSelection, ResolvedLab, resolve_lab


def _summary(lab: Lab) -> dict[str, Any]:
    stack = load_catalog().stack_for(lab.provider, lab.gie_version)
    return {
        "name": lab.name,
        "title": lab.title,
        "provider": lab.provider,
        "workload": lab.workload.kind,
        "gie_version": stack.gie_version,
        "stack": stack.id,
    }


def list_labs() -> list[dict[str, Any]]:
    return [_summary(lab) for lab in load_presets()]


def describe_lab(reference: str, gie_version: str | None = None) -> dict[str, Any]:
    resolved = resolve_lab(LabSelection(lab=reference, gie_version=gie_version, lab_flag="LAB"))
    return lab_details(resolved)


def lab_details(resolved: ResolvedLab) -> dict[str, Any]:
    lab, stack = resolved.lab, resolved.stack
    return {
        **_summary(lab),
        "description": lab.description.strip(),
        "namespace": lab.namespace,
        "stack": {
            "id": stack.id,
            "provider_version": stack.provider_version,
            "gie_version": stack.gie_version,
            "api_era": resolved.gie.era,
            "pool_api": resolved.gie.pool_api,
            "model_object": resolved.gie.model_object,
            "gateway_api": stack.gateway_api.model_dump(),
            "gateway_class": stack.gateway_class.name,
            "simulator": resolved.simulator.image,
            "notes": list(stack.notes),
            "sources": list(stack.sources),
        },
        "workload": lab.workload.model_dump(),
        "pool": lab.pool.model_dump(),
        "models": [
            {
                "name": model.name,
                "object": model.object_name,
                "criticality": model.criticality,
                "priority": model.effective_priority,
                "targets": [target.model_dump() for target in model.targets],
            }
            for model in lab.models
        ],
        "gateway": {
            "name": lab.gateway.name,
            "listeners": [
                {**listener.model_dump(), "host_port": listener.effective_host_port}
                for listener in lab.gateway.listeners
            ],
        },
        "route": {**lab.route.model_dump(), "listener": lab.route_listener.name},
        "url": f"http://localhost:{lab.route_listener.effective_host_port}",
        "checks": list(lab.checks),
    }
