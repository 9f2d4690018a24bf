"""Helm releases and their values: the provider's charts, the inferencepool chart, body-based routing."""

from __future__ import annotations

import copy
from typing import Any

from igwlab.render.epp import epp_chart_values
from igwlab.render.objects import HelmRelease
from igwlab.selection import ResolvedLab


def provider_releases(resolved: ResolvedLab) -> list[HelmRelease]:
    """The gateway implementation's releases, in install order, with the catalog's values."""
    return [
        HelmRelease(
            step=f"provider-{pin.name}",
            name=pin.name,
            chart=pin.chart,
            version=pin.version,
            namespace=pin.namespace,
            repo=pin.repo,
            values=copy.deepcopy(pin.values),
            wait_deployments=tuple(f"{pin.namespace}/{name}" for name in pin.wait_deployments),
        )
        for pin in resolved.stack.helm_releases
    ]


def pool_chart_values(resolved: ResolvedLab, context: dict[str, Any]) -> dict[str, Any]:
    """Values for the upstream `inferencepool` chart (GIE v1.x) for the lab's (first) pool."""
    lab = resolved.lab
    return {
        "inferenceExtension": epp_chart_values(resolved),
        "inferencePool": {
            "targetPorts": [{"number": lab.pool.target_port}],
            "modelServers": {"matchLabels": context["selector_labels"]},
        },
        "provider": {"name": resolved.stack.pool_chart_provider},
    }


def bbr_release(resolved: ResolvedLab) -> HelmRelease:
    """The upstream body-based-routing chart, at the GIE chart version."""
    gie, stack = resolved.gie, resolved.stack
    assert gie.bbr_chart is not None and gie.epp.chart_version is not None
    return HelmRelease(
        step="bbr",
        name="body-based-router",
        chart=gie.bbr_chart,
        version=gie.epp.chart_version,
        namespace=resolved.lab.namespace,
        # With provider istio the chart's EnvoyFilter attaches BBR to the Gateway of this name.
        values={
            "provider": {"name": stack.pool_chart_provider},
            "inferenceGateway": {"name": resolved.lab.gateway.name},
        },
    )
