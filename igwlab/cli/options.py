"""Options shared by the commands, and the checks every flag value passes before a command runs.

The lab flags (`--lab`, `--provider`, `--workload`, `--gie-version`, `--with`) are shared by `up`,
`plan`, `render` and `doctor`. Fixed sets are Enums, so `--help` lists the choices and a typo is
refused by the parser (exit 2). Callbacks refuse what the types let through: empty strings,
NaN and infinity, control characters.
"""

from __future__ import annotations

import math
import re
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from igwlab.selection import LabSelection


class Provider(str, Enum):
    """The catalog's providers (tests/test_cli_contract.py keeps the two in step)."""

    agentgateway = "agentgateway"
    envoy_gateway = "envoy-gateway"
    istio = "istio"
    kgateway = "kgateway"
    nginx = "nginx"


class Workload(str, Enum):
    sim = "sim"
    vllm_cpu = "vllm-cpu"


class Addon(str, Enum):
    observability = "observability"
    litellm = "litellm"


# -- value checks (typer callbacks: they run while parsing, so a bad value is exit 2) -------------


def finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def text(value: str | None) -> str | None:
    """A non-empty value without control characters (names, models, paths)."""
    if value is None:
        return None
    if not value.strip():
        raise typer.BadParameter("is empty")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise typer.BadParameter(f"{value!r} contains control characters")
    return value


def texts(values: list[str] | None) -> list[str] | None:
    for value in values or ():
        text(value)
    return values


_KUBE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def kube_name(value: str | None) -> str | None:
    """A Kubernetes object name (RFC 1123 subdomain), as pod and namespace names are."""
    if value is not None and not _KUBE_NAME.fullmatch(value):
        raise typer.BadParameter(
            f"{value!r} is not a Kubernetes name (lowercase letters, digits, '-' and '.', at most 253)"
        )
    return value


# -- the lab flags -------------------------------------------------------------------------------

LAB_HELP = (
    "Lab preset name (see `igwlab labs`) or path to a lab file. Default: the provider's PROVIDER-fake-llm preset."
)
PROVIDER_HELP = (
    "Gateway implementation. Alone it picks the PROVIDER-fake-llm preset; no lab flags at all mean "
    "agentgateway-fake-llm."
)
WORKLOAD_HELP = "Model server: the llm-d-inference-sim simulator (tiny) or vLLM on CPU (~12 CPUs, 10 GiB, amd64)."
GIE_HELP = (
    "Gateway API Inference Extension version, e.g. v1.5.0; refused unless the catalog has a known-good stack for it."
)
WITH_HELP = (
    "Add-on to install beside the lab (repeatable): observability = Prometheus and Grafana with igwlab's "
    "dashboard; litellm = a LiteLLM proxy in front of the gateway."
)

LabOption = Annotated[
    str | None, typer.Option("--lab", "-l", help=LAB_HELP, show_default=False, metavar="LAB", callback=text)
]
ProviderOption = Annotated[Provider | None, typer.Option("--provider", "-p", help=PROVIDER_HELP, show_default=False)]
WorkloadOption = Annotated[Workload | None, typer.Option("--workload", "-w", help=WORKLOAD_HELP, show_default=False)]
GieOption = Annotated[
    str | None, typer.Option("--gie-version", help=GIE_HELP, show_default=False, metavar="VERSION", callback=text)
]
WithOption = Annotated[
    list[Addon] | None,
    typer.Option("--with", help=WITH_HELP, show_default=False, metavar="<observability|litellm>"),
]
JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON document instead of tables: {igwlab_result_version, command, ok, error, data}, "
        "errors included.",
    ),
]
ContextOption = Annotated[
    str | None,
    typer.Option(
        "--context",
        help="Use this existing cluster (a kubeconfig context) instead of creating a k3d "
        "one. igwlab then installs into it and `teardown` removes only what the lab created.",
        show_default=False,
        metavar="CONTEXT",
        callback=text,
    ),
]

MIRROR_HELP = (
    "Take CRD bundles and Helm charts (and on k3d the container images) only from this directory, written by "
    "`igwlab mirror save`, each verified by sha256: no network for them. A missing or corrupt item stops "
    "before anything changes (exit 3)."
)
MirrorOption = Annotated[
    Path | None,
    typer.Option(
        "--mirror", envvar="IGWLAB_MIRROR", help=MIRROR_HELP, show_default=False, file_okay=False, metavar="DIR"
    ),
]


def examples(*lines: str) -> str:
    """A command's epilog: its examples, one per line, kept as written (click's \\b paragraph)."""
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)


def lab_selection(
    lab: str | None,
    provider: Provider | None,
    workload: Workload | None,
    gie_version: str | None,
    addons: list[Addon] | None = None,
) -> LabSelection:
    """The core's view of the lab flags (imported lazily: the core loads pydantic)."""
    from igwlab.selection import LabSelection

    return LabSelection(
        lab=lab,
        provider=provider.value if provider else None,
        workload=workload.value if workload else None,
        gie_version=gie_version,
        addons=tuple(addon.value for addon in addons or ()),
    )
