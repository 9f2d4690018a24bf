"""Turn lab-selection flags (--lab, --provider, --workload, --gie-version) into one resolved lab.

`up`, `plan` and `render` all go through `resolve_lab`, so what `plan` shows is what `up` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from igwlab.catalog import (
    Catalog,
    GatewayApiRelease,
    GieRelease,
    Simulator,
    Stack,
    check_version,
    load_catalog,
)
from igwlab.errors import InvalidLabError, LabFileError, UnsupportedCombinationError, UsageError
from igwlab.labs import (
    DEFAULT_PROVIDER,
    PRESET_SUFFIX,
    Lab,
    WorkloadKind,
    load_lab,
    name_clashes,
    preset_names,
)


@dataclass(frozen=True)
class LabSelection:
    """What the user asked for on the command line; every field is optional."""

    lab: str | None = None
    provider: str | None = None
    workload: WorkloadKind | None = None
    gie_version: str | None = None
    addons: tuple[str, ...] = ()
    # How the user named the lab, for messages: the --lab flag, or the LAB argument of `labs show`.
    lab_flag: str = "--lab"


@dataclass(frozen=True)
class ResolvedLab:
    lab: Lab
    stack: Stack
    catalog: Catalog
    overrides: tuple[str, ...] = field(default_factory=tuple)

    @property
    def provider(self) -> str:
        return self.lab.provider

    @property
    def gie(self) -> GieRelease:
        return self.catalog.gie(self.stack)

    @property
    def gateway_api(self) -> GatewayApiRelease:
        return self.catalog.gateway_api(self.stack)

    @property
    def simulator(self) -> Simulator:
        return self.catalog.simulator(self.stack)

    def objective_headers(self) -> dict[str, dict[str, str]]:
        """Model name -> the header that selects its InferenceObjective, on stacks that select objectives
        by header (GIE v1.x, `x-gateway-inference-objective`); empty elsewhere. Whatever igwlab sends for a
        lab model (up's warm-up, verify) carries it, or the EPP gives the request the default priority."""
        header = self.gie.objective_header
        if header is None:
            return {}
        return {m.name: {header: m.object_name} for backend in self.lab.backends() for m in backend.models}


def resolve_lab(selection: LabSelection, catalog: Catalog | None = None) -> ResolvedLab:
    """The lab, its stack and the overrides the flags made; refuses a lab that cannot work (exit 2).

    Besides the lab file's own checks (igwlab/labs.py), this refuses names that clash once the stack
    is known: the provider's proxy, add-on releases and the inferencepool chart's objects.
    """
    catalog = catalog or load_catalog()
    if selection.provider is not None and not selection.provider.strip():
        raise UsageError("--provider is empty", fix=f"providers: {', '.join(sorted(catalog.providers))}")
    lab = _pick_lab(selection, catalog)
    overrides: list[str] = []
    lab_file = _lab_file(selection)
    gie_source = f"gie_version in {lab_file}" if lab_file else f"the gie_version of preset {lab.name}"

    if selection.gie_version is not None:
        gie_source = "--gie-version"
        wanted = check_version(selection.gie_version)
        if wanted != lab.gie_version:
            overrides.append(f"GIE version {lab.gie_version or 'default'} -> {wanted}")
        lab = lab.model_copy(update={"gie_version": wanted})

    if selection.workload is not None and selection.workload != lab.workload.kind:
        lab = _switch_workload(lab, selection.workload, catalog)
        overrides.append(f"workload -> {selection.workload} (replicas {lab.workload.replicas})")

    for addon in selection.addons:
        if addon not in catalog.addons:
            raise UsageError(f"unknown add-on {addon!r}", fix=f"add-ons: {', '.join(sorted(catalog.addons))}")
        if addon not in lab.addons:
            lab = lab.model_copy(update={"addons": [*lab.addons, addon]})
            overrides.append(f"with {addon}")

    stack = catalog.stack_for(lab.provider, lab.gie_version, source=gie_source)
    if lab.gie_version is None:
        lab = lab.model_copy(update={"gie_version": stack.gie_version})
    if "litellm" in lab.addons and stack.proxy.service is None:
        raise UnsupportedCombinationError(
            f"--with litellm is not available for provider {lab.provider!r}",
            why="LiteLLM needs the gateway's in-cluster Service name, and this provider names it with a hash",
            fix="use --with litellm with agentgateway, istio, kgateway or nginx",
        )
    resolved = ResolvedLab(lab=lab, stack=stack, catalog=catalog, overrides=tuple(overrides))
    _check_era_support(resolved)
    _check_names(resolved, selection)
    return resolved


def stack_names(resolved: ResolvedLab) -> list[tuple[str, str, str]]:
    """(kind, name, why) of what the stack's charts and controllers create in the lab's namespace."""
    lab, stack = resolved.lab, resolved.stack
    names: list[tuple[str, str, str]] = []
    proxy = stack.proxy
    if proxy.namespace is None:
        owner = f"gateway.name (the {lab.provider} proxy for Gateway {lab.gateway.name})"
        if proxy.deployment:
            names.append(("Deployment", proxy.deployment.format(gateway=lab.gateway.name), owner))
        if proxy.service:
            names.append(("Service", proxy.service.format(gateway=lab.gateway.name), owner))
    if resolved.gie.epp.install == "chart":
        for index, backend in enumerate(lab.backends()):
            field = "pool.name" if index == 0 else f"extra_pools.{index - 1}.pool.name"
            names.append(("Helm release", backend.pool.name, f"{field} (the inferencepool chart's release)"))
    if lab.extra_pools and stack.model_routing == "body-based-routing":
        names.append(("Helm release", "body-based-router", "body-based routing between the pools"))
    for addon in lab.addons:
        for pin in resolved.catalog.addons[addon].releases:
            if pin.namespace:
                continue
            names.append(("Helm release", pin.name, f"the {addon} add-on"))
            names += [("Deployment", deployment, f"the {addon} add-on") for deployment in pin.wait_deployments]
    return names


def _check_names(resolved: ResolvedLab, selection: LabSelection) -> None:
    problems = name_clashes(resolved.lab, stack_names(resolved))
    if not problems:
        return
    where = _lab_file(selection)
    if where is not None:
        raise LabFileError(where, problems, fix="rename one of each pair in the lab file")
    raise InvalidLabError(
        f"lab {resolved.lab.name} cannot work with these options:\n" + "\n".join(f"  - {p}" for p in problems),
        fix="copy the preset from labs/, rename one of each pair, and pass the file with --lab",
    )


def _lab_file(selection: LabSelection) -> str | None:
    """The lab file the user named, or None for a preset (or no --lab)."""
    reference = selection.lab
    if reference is None or ("/" not in reference and "\\" not in reference and reference in preset_names()):
        return None
    return reference


def _pick_lab(selection: LabSelection, catalog: Catalog) -> Lab:
    if selection.lab is not None:
        lab = load_lab(selection.lab, selection.lab_flag)
        if selection.provider is not None and selection.provider != lab.provider:
            raise UsageError(
                f"lab {lab.name!r} is for provider {lab.provider!r}, not {selection.provider!r}",
                why="a lab's manifests and checks are written for one gateway implementation",
                fix=f"drop --provider, or use --lab {selection.provider}{PRESET_SUFFIX}",
            )
        return lab
    provider = selection.provider or DEFAULT_PROVIDER
    catalog.provider(provider)  # an unknown provider is refused with the list of known ones
    preset = f"{provider}{PRESET_SUFFIX}"
    if preset not in preset_names():
        raise UsageError(
            f"there is no {preset!r} preset for provider {provider!r}",
            fix="pick a lab with --lab; `igwlab labs` lists them",
        )
    return load_lab(preset)


def _switch_workload(lab: Lab, kind: WorkloadKind, catalog: Catalog) -> Lab:
    """Swap the model server while keeping the model names the lab's routing relies on."""
    update: dict[str, object] = {"kind": kind}
    if kind == "vllm-cpu":
        # Each vLLM CPU replica wants about 12 CPUs: keep to what the catalog says fits a laptop.
        update["replicas"] = catalog.vllm_cpu.replicas
        update["kv_cache"] = False
    extra = [pool.model_copy(update={"workload": pool.workload.model_copy(update=update)}) for pool in lab.extra_pools]
    update_first = update
    if kind == "vllm-cpu":
        update_first = {**update, "replicas": min(lab.workload.replicas, catalog.vllm_cpu.replicas)}
    return lab.model_copy(update={"workload": lab.workload.model_copy(update=update_first), "extra_pools": extra})


def _check_era_support(resolved: ResolvedLab) -> None:
    lab, gie = resolved.lab, resolved.gie
    if gie.era == "ga" and gie.rewrite_targets_field is None and any(m.targets for m in lab.models):
        raise UnsupportedCombinationError(
            f"GIE {resolved.stack.gie_version} cannot split model {lab.models[0].name!r} across targets",
            why="InferenceModelRewrite, which does model-name splits on v1 pools, arrived in GIE v1.2",
            fix="use GIE v1.5.0 (the catalog default) or remove the model targets",
        )
    if lab.objectives and gie.objective_header is None:
        raise UnsupportedCombinationError(
            f"lab {lab.name!r} defines objectives ({', '.join(o.name for o in lab.objectives)}), which GIE "
            f"{resolved.stack.gie_version} cannot select",
            why="requests pick an InferenceObjective by header from GIE v1.0; earlier InferenceModels set a "
            "criticality per model name",
            fix="drop --gie-version, or remove `objectives` from the lab (give a model criticality: Sheddable)",
        )
    if lab.pool.epp.scheduling is not None and gie.epp.config_dialect is None:
        raise UnsupportedCombinationError(
            f"lab {lab.name!r} sets an EPP scheduling profile, which GIE {resolved.stack.gie_version} "
            "igwlab cannot configure",
            why="igwlab writes EndpointPickerConfig only for the chart-installed EPP of GIE v1.5.0",
            fix="drop --gie-version, or remove pool.epp.scheduling from the lab",
        )
