"""Render a resolved lab into the Kubernetes objects and Helm releases `up` applies."""

from __future__ import annotations

from typing import Any

from igwlab.crds import crd_sets
from igwlab.errors import InvalidLabError
from igwlab.labs import Backend, Lab
from igwlab.render.addons import addon_releases, litellm_config
from igwlab.render.charts import bbr_release, pool_chart_values, provider_releases
from igwlab.render.epp import CONFIG_DIR, config_files, epp_args, epp_name, epp_resources
from igwlab.render.model_servers import simulator_args, vllm_args, workload_resources
from igwlab.render.objects import MANAGED_BY, CrdBundle, HelmRelease, KubeObject, Rendered
from igwlab.render.pools import scoped
from igwlab.render.templates import render_objects, to_yaml
from igwlab.selection import ResolvedLab

BASE_MODEL_HEADER = "X-Gateway-Base-Model-Name"


def build_context(resolved: ResolvedLab) -> dict[str, Any]:
    """What the templates see for the lab's (first) pool."""
    lab: Lab = resolved.lab
    selector = lab.workload.selector_labels
    pod_labels = dict(selector)
    if resolved.gie.era == "ga":
        # The v1.5 EPP's core-metrics-extractor reads the engine type from this label.
        pod_labels["inference.networking.k8s.io/engine-type"] = "vllm"
    name = epp_name(resolved)
    return {
        "lab": lab,
        "stack": resolved.stack,
        "gie": resolved.gie,
        "sim": resolved.simulator,
        "vllm": resolved.catalog.vllm_cpu,
        "common_labels": {**MANAGED_BY, "igwlab.dev/lab": lab.name},
        "selector_labels": selector,
        "pod_labels": pod_labels,
        "epp_name": name,
        "epp_labels": {"app": name},
        "epp_cluster_role": f"igwlab-{lab.namespace}-{name}"[:253],
        "epp_args": epp_args(resolved),
        "epp_config_files": config_files(resolved),
        "epp_config_dir": CONFIG_DIR,
        "epp_resources": epp_resources(resolved),
        "sim_args": simulator_args(resolved),
        "vllm_args": vllm_args(resolved),
        "workload_resources": workload_resources(resolved),
        "route_rules": route_rules(lab),
        "base_model_header": BASE_MODEL_HEADER,
    }


def uses_body_based_routing(resolved: ResolvedLab) -> bool:
    """Several pools behind one Gateway, on a stack whose model routing is the upstream BBR component."""
    return len(resolved.lab.extra_pools) > 0 and resolved.stack.model_routing == "body-based-routing"


def bbr_adapters(resolved: ResolvedLab) -> str:
    """The pool's names other than its base model (LoRA adapters, model names it rewrites), as the
    YAML list BBR reads from a ConfigMap's `adapters` key."""
    lab = resolved.lab
    names = [*lab.workload.served_names(), *(model.name for model in lab.models)]
    others = [name for name in dict.fromkeys(names) if name != lab.workload.served_model]
    return to_yaml(others) if others else ""


def _render_backend(resolved: ResolvedLab, backend: Backend) -> tuple[list[KubeObject], list[HelmRelease]]:
    """A pool's model servers, InferencePool + EPP and model objects."""
    pool_lab = scoped(resolved, backend)
    lab, gie = pool_lab.lab, resolved.gie
    context = build_context(pool_lab)
    objects: list[KubeObject] = []
    releases: list[HelmRelease] = []
    workload_template = "workload/sim.yaml.j2" if lab.workload.kind == "sim" else "workload/vllm-cpu.yaml.j2"
    objects += render_objects(backend.step("workload"), workload_template, context)
    if gie.epp.install == "manifests":
        objects += render_objects(backend.step("pool"), "inference/alpha/epp.yaml.j2", context)
        objects += render_objects(backend.step("pool"), "inference/alpha/inferencepool.yaml.j2", context)
        for model in lab.models:
            objects += render_objects(
                backend.step("models"), "inference/alpha/inferencemodel.yaml.j2", {**context, "model": model}
            )
        return objects, releases
    assert gie.epp.chart is not None and gie.epp.chart_version is not None
    releases.append(
        HelmRelease(
            step=backend.step("pool"),
            name=lab.pool.name,
            chart=gie.epp.chart,
            version=gie.epp.chart_version,
            namespace=lab.namespace,
            values=pool_chart_values(pool_lab, context),
            wait_deployments=(f"{lab.namespace}/{context['epp_name']}",),
        )
    )
    if uses_body_based_routing(resolved):
        bbr_context = {**context, "bbr_adapters": bbr_adapters(pool_lab)}
        objects += render_objects(backend.step("models"), "inference/ga/bbr-models.yaml.j2", bbr_context)
    for model in lab.models:
        model_context = {**context, "model": model}
        objects += render_objects(backend.step("models"), "inference/ga/inferenceobjective.yaml.j2", model_context)
        if model.targets:
            objects += render_objects(
                backend.step("models"), "inference/ga/inferencemodelrewrite.yaml.j2", model_context
            )
    if backend.suffix == "":  # the lab's own objectives belong to its first pool
        for objective in resolved.lab.objectives:
            objects += render_objects(
                backend.step("models"), "inference/ga/inferenceobjective.yaml.j2", {**context, "model": objective}
            )
    return objects, releases


def route_rules(lab: Lab) -> list[dict[str, Any]]:
    """One rule per extra pool, matching the base-model header, then the lab's own pool for the rest."""
    rules = [{"pool": backend.pool.name, "header": backend.workload.served_model} for backend in lab.backends()[1:]]
    return [*rules, {"pool": lab.pool.name, "header": None}]


def crd_bundles(resolved: ResolvedLab) -> list[CrdBundle]:
    """The CRD bundles igwlab applies: the Gateway API one (unless the provider's chart brings it) and GIE's."""
    steps = {True: "gateway-api-crds", False: "inference-crds"}
    return [
        CrdBundle(
            step=steps[crd_set.gateway_api],
            title=crd_set.title,
            version=crd_set.version,
            url=crd_set.url,
            crds=crd_set.names,
            version_annotation=crd_set.version_annotation,
            admission=crd_set.admission,
        )
        for crd_set in crd_sets(resolved)
        if crd_set.installed_by == "igwlab"
    ]


def render_lab(resolved: ResolvedLab) -> Rendered:
    lab, stack = resolved.lab, resolved.stack
    context = build_context(resolved)
    releases = provider_releases(resolved)

    objects: list[KubeObject] = []
    objects += render_objects("namespace", "base/namespace.yaml.j2", context)
    if stack.gateway_class.created_by == "igwlab":
        objects += render_objects("gatewayclass", "gateway/gatewayclass.yaml.j2", context)
    for backend in lab.backends():
        objects_, releases_ = _render_backend(resolved, backend)
        objects += objects_
        releases += releases_
    if uses_body_based_routing(resolved):
        releases.append(bbr_release(resolved))

    for addon in lab.addons:
        releases += addon_releases(resolved, addon, context)
    if "litellm" in lab.addons:
        litellm_context = {
            **context,
            "litellm_config": to_yaml(litellm_config(resolved)),
            "litellm_image": resolved.catalog.addons["litellm"].image,
        }
        objects += render_objects("addon-litellm", "addons/litellm.yaml.j2", litellm_context)

    objects += render_objects("gateway", "gateway/gateway.yaml.j2", context)
    objects += render_objects("route", "gateway/httproute.yaml.j2", context)
    _refuse_duplicates(lab, objects, releases)
    return Rendered(
        resolved=resolved, crd_bundles=tuple(crd_bundles(resolved)), releases=tuple(releases), objects=tuple(objects)
    )


def _refuse_duplicates(lab: Lab, objects: list[KubeObject], releases: list[HelmRelease]) -> None:
    """Two rendered objects (or Helm releases) with one kind, namespace and name: the second would
    overwrite the first. labs.py names the fields behind the usual clashes; this catches the rest."""
    seen: dict[tuple[str, str, str], str] = {}
    problems: list[str] = []
    for kind, namespace, name, made_by in [
        *((obj.kind, obj.namespace or "", obj.name, obj.template) for obj in objects),
        *(("Helm release", release.namespace, release.name, release.chart) for release in releases),
    ]:
        key = (kind, namespace, name)
        if key in seen:
            where = "/".join(part for part in (namespace, name) if part)
            problems.append(f"{kind} {where} comes from {seen[key]} and {made_by}")
        seen.setdefault(key, made_by)
    if problems:
        raise InvalidLabError(
            f"lab {lab.name} would create the same object twice:\n" + "\n".join(f"  - {p}" for p in problems),
            why="the second would overwrite the first, so one part of the lab would silently not exist",
            fix="rename the lab field behind one of them (names of the workload, pool, models, gateway or route)",
        )
