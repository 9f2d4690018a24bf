"""Options shared by the commands that pick a lab (`plan`, `render`, and later `up`)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from igwlab.selection import LabSelection


class Workload(str, Enum):
    sim = "sim"
    vllm_cpu = "vllm-cpu"


LAB_HELP = "Lab preset name (see `igwlab labs`) or path to a lab file. Default: the provider's fake-llm preset."
PROVIDER_HELP = (
    "Gateway implementation: agentgateway, envoy-gateway, istio, kgateway or nginx. "
    "Alone it picks the PROVIDER-fake-llm preset; no flags at all mean agentgateway-fake-llm."
)
WORKLOAD_HELP = "Model server: the llm-d-inference-sim simulator (tiny) or vLLM on CPU (~12 CPUs, 10 GiB, amd64)."
GIE_HELP = "Gateway API Inference Extension version; refused unless the catalog has a known-good stack for it."

LabOption = Annotated[str | None, typer.Option("--lab", "-l", help=LAB_HELP, show_default=False)]
ProviderOption = Annotated[str | None, typer.Option("--provider", "-p", help=PROVIDER_HELP, show_default=False)]
WorkloadOption = Annotated[Workload | None, typer.Option("--workload", "-w", help=WORKLOAD_HELP, show_default=False)]
GieOption = Annotated[str | None, typer.Option("--gie-version", help=GIE_HELP, show_default=False)]
WITH_HELP = (
    "Add-on to install beside the lab (repeatable): observability = Prometheus and Grafana with igwlab's dashboard."
)
WithOption = Annotated[list[str] | None, typer.Option("--with", help=WITH_HELP, show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]
MIRROR_HELP = (
    "Take CRD bundles and Helm charts (and on k3d the container images) only from this directory, written by "
    "`igwlab mirror save`, each verified by sha256: no network for them. A missing or corrupt item stops "
    "before anything changes (exit 3)."
)
MirrorOption = Annotated[
    Path | None,
    typer.Option("--mirror", envvar="IGWLAB_MIRROR", help=MIRROR_HELP, show_default=False, file_okay=False),
]


def lab_selection(
    lab: str | None,
    provider: str | None,
    workload: Workload | None,
    gie_version: str | None,
    addons: list[str] | None = None,
) -> LabSelection:
    """The core's view of the lab flags (imported lazily: the core loads pydantic)."""
    from igwlab.selection import LabSelection

    return LabSelection(
        lab=lab,
        provider=provider,
        workload=workload.value if workload else None,
        gie_version=gie_version,
        addons=tuple(addons or ()),
    )
