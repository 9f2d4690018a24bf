"""The endpoint picker (EPP): its arguments, resources and scheduling config, per GIE version."""

from __future__ import annotations

import copy
from typing import Any

from igwlab.render.templates import render_template_text
from igwlab.selection import ResolvedLab


def epp_name(resolved: ResolvedLab) -> str:
    """The EPP's Deployment and Service name: `<pool>-epp`, as the upstream chart names them."""
    return f"{resolved.lab.pool.name}-epp"


def epp_args(resolved: ResolvedLab) -> list[str]:
    """The EPP's command line for manifest-installed EPPs (the chart builds its own)."""
    lab = resolved.lab
    if resolved.gie.epp.flag_style == "camel":
        return [
            "-poolName",
            lab.pool.name,
            "-poolNamespace",
            lab.namespace,
            "-v",
            "3",
            "-grpcPort",
            "9002",
            "-grpcHealthPort",
            "9003",
            "-metricsPort",
            "9090",
        ]
    return [
        "--pool-name",
        lab.pool.name,
        "--pool-namespace",
        lab.namespace,
        "--pool-group",
        resolved.gie.pool_group,
        "--v",
        "3",
        "--grpc-port",
        "9002",
        "--grpc-health-port",
        "9003",
        "--metrics-port",
        "9090",
    ]


def epp_resources(resolved: ResolvedLab) -> dict[str, Any]:
    """The lab's EPP resources, else the catalog's laptop size (the v1.4+ chart asks for 4 CPU / 8Gi)."""
    custom = resolved.lab.pool.epp.resources
    if custom is not None:
        return {"requests": {"cpu": custom.cpu, "memory": custom.memory}, "limits": {"memory": custom.memory}}
    return copy.deepcopy(resolved.catalog.laptop_epp_resources)


def scheduling_config(resolved: ResolvedLab) -> str | None:
    """The lab's EndpointPickerConfig (YAML text) in the dialect of its GIE version, or None."""
    scheduling = resolved.lab.pool.epp.scheduling
    if scheduling is None:
        return None
    return render_template_text(f"epp/config-{resolved.gie.epp.config_dialect}.yaml.j2", {"scheduling": scheduling})
