"""The version catalog: which provider, GIE and Gateway API versions igwlab knows to work together.

The facts live in catalog.yaml; this module only gives them types, checks that they are
consistent, and answers "which stack for this provider and GIE version?".
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from igwlab import yamlio
from igwlab.errors import CatalogError, UnsupportedCombinationError, UsageError
from igwlab.resources import catalog_path
from igwlab.tools.versions import parse_version

Era = Literal["alpha", "ga"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EppRelease(_Strict):
    install: Literal["manifests", "chart"]
    image: str
    kv_metric: str
    flag_style: Literal["camel", "kebab"] = "kebab"
    chart: str | None = None
    chart_version: str | None = None
    config_dialect: str | None = None
    # The plugins file under /config the EPP is started with, and (manifest installs) its template.
    config_file: str = "default-plugins.yaml"
    default_config: str | None = None
    # How Prometheus may read /metrics: `rbac` (token review, always on) or `disabled` (auth switched off).
    metrics_auth: Literal["rbac", "disabled"] = "rbac"


class GieRelease(_Strict):
    era: Era
    crds_url: str
    pool_api: str
    model_object: Literal["InferenceModel", "InferenceObjective"]
    crds: list[str]
    epp_metrics: list[str]
    # The EPP counter of requests by model_name and target_model_name: evidence of a split that
    # survives an EPP which writes the requested name back into answers (answers_name_target false).
    split_metric: str
    answers_name_target: bool
    objective_header: str | None = None
    bbr_buffers_responses: bool = False
    # The EPP filters to pods already running a requested LoRA adapter (v0.x), rather than scoring them.
    lora_affinity_filter: bool = False
    rewrite_targets_field: Literal["split", "targets"] | None = None
    # The oldest Gateway API the release's own module requires (its go.mod), if it requires one.
    gateway_api_min: str | None = None
    # How a cluster's copy of the CRDs shows its release: an annotation (v1.0+), else a served version.
    crd_version_annotation: str | None = None
    crd_served_version: str | None = None
    bbr_chart: str | None = None
    # Label of the ConfigMaps body-based routing reads base models and LoRA adapters from (v1.5).
    bbr_configmap_label: str | None = None
    epp: EppRelease
    sources: list[str]

    @property
    def pool_group(self) -> str:
        return self.pool_api.split("/")[0]


class GatewayApiRelease(_Strict):
    standard_url: str
    experimental_url: str
    min_kubernetes: str  # "1.30": the oldest Kubernetes minor the bundle installs on


class K3sImage(_Strict):
    kubernetes: str  # v1.33.4
    min_k3d: str  # the oldest k3d that starts it
    sources: list[str]


class KubernetesPin(_Strict):
    """The Kubernetes versions a stack supports (minor versions, "1.32"; max open when unknown) and the
    k3s image `up` creates k3d clusters with."""

    min: str
    max: str | None = None
    k3s_image: str
    sources: list[str]

    def accepts(self, version: tuple[int, int, int]) -> bool:
        return version[:2] >= minor_tuple(self.min)

    def above_max(self, version: tuple[int, int, int]) -> bool:
        return self.max is not None and version[:2] > minor_tuple(self.max)

    def describe(self) -> str:
        return f"{self.min}-{self.max}" if self.max else f"{self.min} or newer"


class Simulator(_Strict):
    image: str
    latency_units: Literal["milliseconds", "duration"]
    kv_metric: str
    force_dummy_tokenizer: bool
    metrics: list[str]
    sources: list[str]


class VllmCpu(_Strict):
    image: str
    architectures: list[str]
    replicas: int
    cpu: str
    memory: str
    kv_cache_space_gib: int
    sources: list[str]


class GatewayApiPin(_Strict):
    version: str
    channel: Literal["standard", "experimental"]
    installed_by: Literal["igwlab", "provider"]


class GatewayClassPin(_Strict):
    name: str
    controller: str
    created_by: Literal["igwlab", "provider"]


class HelmReleasePin(_Strict):
    name: str
    chart: str
    version: str
    namespace: str
    repo: str | None = None
    values: dict[str, Any] = Field(default_factory=dict)
    wait_deployments: list[str] = Field(default_factory=list)


class ProxyPin(_Strict):
    """How to find the data-plane Deployment a provider creates for a Gateway."""

    deployment: str | None = None
    namespace: str | None = None
    label_selector: str | None = None
    # The in-cluster Service in front of the proxy, where a fixed name is known.
    service: str | None = None


class Stack(_Strict):
    id: str
    provider_version: str
    gie_version: str
    gateway_api: GatewayApiPin
    kubernetes: KubernetesPin
    simulator: str
    gateway_class: GatewayClassPin
    helm_releases: list[HelmReleasePin]
    proxy: ProxyPin
    pool_chart_provider: Literal["none", "istio", "gke"] = "none"
    # How a multi-pool lab sends each model to its pool: the upstream body-based-routing component sets
    # the base-model header from the request body; elsewhere clients must send that header themselves.
    model_routing: Literal["header", "body-based-routing"] = "header"
    # The gateway treats an InferencePool's FailOpen as FailClose.
    ignores_fail_open: bool = False
    extra_resources: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    sources: list[str]


class Provider(_Strict):
    title: str
    default_stack: str
    stacks: list[Stack]

    @model_validator(mode="after")
    def _default_exists(self) -> Provider:
        if self.default_stack not in {s.id for s in self.stacks}:
            raise ValueError(f"default_stack {self.default_stack!r} is not one of its stacks")
        return self


class Addon(_Strict):
    releases: list[HelmReleasePin]
    sources: list[str]
    image: str | None = None


class Catalog(_Strict):
    catalog_version: int
    gie_releases: dict[str, GieRelease]
    gateway_api_standard_crds: list[str]
    gateway_api_releases: dict[str, GatewayApiRelease]
    k3s_images: dict[str, K3sImage]
    simulators: dict[str, Simulator]
    vllm_cpu: VllmCpu
    laptop_epp_resources: dict[str, dict[str, str]]
    addons: dict[str, Addon]
    providers: dict[str, Provider]

    @model_validator(mode="after")
    def _references_resolve(self) -> Catalog:
        for provider_name, provider in self.providers.items():
            for stack in provider.stacks:
                where = f"providers.{provider_name}.{stack.id}"
                if stack.gie_version not in self.gie_releases:
                    raise ValueError(f"{where}: unknown gie_version {stack.gie_version}")
                if stack.gateway_api.version not in self.gateway_api_releases:
                    raise ValueError(f"{where}: unknown gateway_api version {stack.gateway_api.version}")
                if stack.simulator not in self.simulators:
                    raise ValueError(f"{where}: unknown simulator {stack.simulator}")
                pin = stack.kubernetes
                if pin.k3s_image not in self.k3s_images:
                    raise ValueError(f"{where}: unknown k3s image {pin.k3s_image}")
                image_version = version_tuple(self.k3s_images[pin.k3s_image].kubernetes)
                if not pin.accepts(image_version) or pin.above_max(image_version):
                    raise ValueError(f"{where}: k3s image {pin.k3s_image} is outside Kubernetes {pin.describe()}")
                bundle_floor = self.gateway_api_releases[stack.gateway_api.version].min_kubernetes
                if minor_tuple(pin.min) < minor_tuple(bundle_floor):
                    raise ValueError(
                        f"{where}: Kubernetes {pin.min} is below the {bundle_floor} Gateway API "
                        f"{stack.gateway_api.version} needs"
                    )
                floor = self.gie_releases[stack.gie_version].gateway_api_min
                if floor and version_tuple(stack.gateway_api.version) < version_tuple(floor):
                    raise ValueError(
                        f"{where}: Gateway API {stack.gateway_api.version} is older than the {floor} "
                        f"GIE {stack.gie_version} is built against"
                    )
        return self

    # -- lookups ---------------------------------------------------------------------------

    def provider(self, name: str) -> Provider:
        try:
            return self.providers[name]
        except KeyError:
            raise UnsupportedCombinationError(
                f"unknown provider {name!r}",
                why="the catalog has stacks only for known gateway implementations",
                fix=f"use one of: {', '.join(sorted(self.providers))}",
            ) from None

    def stack_for(self, provider_name: str, gie_version: str | None = None, source: str = "--gie-version") -> Stack:
        """The stack for a provider, optionally pinned to a GIE version; refuse unknown combinations.

        `source` names where the version came from (the flag, or a lab file's `gie_version`), so the
        hint says what to change.
        """
        provider = self.provider(provider_name)
        if gie_version is None:
            return next(s for s in provider.stacks if s.id == provider.default_stack)
        wanted = check_version(gie_version, source)
        for stack in provider.stacks:
            if stack.gie_version == wanted:
                return stack
        supported = ", ".join(sorted({s.gie_version for s in provider.stacks}))
        others = sorted(
            name
            for name, other in self.providers.items()
            if name != provider_name and any(s.gie_version == wanted for s in other.stacks)
        )
        default = next(s for s in provider.stacks if s.id == provider.default_stack)
        if source == "--gie-version":
            hint = f"drop --gie-version to use {provider.default_stack}"
        else:
            hint = f"set {source} to {default.gie_version} (or remove it) to use {provider.default_stack}"
        if others:
            switch = f"--provider {others[0]}" if source == "--gie-version" else f"provider: {others[0]}"
            hint += f", or use GIE {wanted} with {switch}"
        raise UnsupportedCombinationError(
            f"provider {provider_name!r} has no known-good stack for GIE {wanted}",
            why=f"igwlab's catalog pins {provider_name} to GIE {supported}",
            fix=hint,
        )

    def gie(self, stack: Stack) -> GieRelease:
        return self.gie_releases[stack.gie_version]

    def gateway_api(self, stack: Stack) -> GatewayApiRelease:
        return self.gateway_api_releases[stack.gateway_api.version]

    def k3s_image(self, stack: Stack) -> K3sImage:
        return self.k3s_images[stack.kubernetes.k3s_image]

    def simulator(self, stack: Stack) -> Simulator:
        return self.simulators[stack.simulator]

    def all_stacks(self) -> list[tuple[str, Stack]]:
        return [(name, stack) for name, provider in self.providers.items() for stack in provider.stacks]


def version_tuple(version: str) -> tuple[int, int, int]:
    """`v1.3.0` -> (1, 3, 0); unreadable versions sort first."""
    return parse_version(version) or (0, 0, 0)


def minor_tuple(version: str) -> tuple[int, int]:
    """`1.32` or `v1.32.4` -> (1, 32)."""
    return version_tuple(version)[:2]


def normalize_version(version: str) -> str:
    """Accept `1.5.0` as well as `v1.5.0`."""
    version = version.strip()
    return version if version.startswith("v") else f"v{version}"


_VERSION = re.compile(r"v?[0-9]+\.[0-9]+\.[0-9]+")


def check_version(version: str, source: str = "--gie-version") -> str:
    """`version` normalized to `vX.Y.Z`, or a UsageError naming `source` when it is not a release version."""
    if not _VERSION.fullmatch(version.strip()):
        known = ", ".join(sorted({s.gie_version for _, s in load_catalog().all_stacks()}))
        raise UsageError(
            f"{source} {version!r} is not a release version such as v1.5.0",
            fix=f"GIE versions the catalog knows: {known}",
        )
    return normalize_version(version)


@cache
def load_catalog() -> Catalog:
    path = catalog_path()
    try:
        raw = yamlio.load(path.read_text(encoding="utf-8"))
        return Catalog.model_validate(raw)
    except (OSError, UnicodeDecodeError, yamlio.YAMLError, ValidationError) as exc:
        raise CatalogError(
            f"igwlab's version catalog {path.name} is unreadable: {exc}",
            why="the catalog ships with igwlab; this is a packaging bug",
            fix="reinstall igwlab, or report the message above",
        ) from exc
