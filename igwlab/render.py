"""Render a resolved lab into the Kubernetes objects and Helm releases `up` applies.

Templates live in manifests/ and are rendered by jinja2 with StrictUndefined, so a missing
value is an error rather than an empty string. Values reach YAML only through the `q` filter
(a JSON dump, which is valid YAML), never by pasting text.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import jinja2
import yaml

from igwlab import yamlio
from igwlab.errors import CatalogError, InvalidLabError
from igwlab.labs import Backend, Lab
from igwlab.resources import data_dir
from igwlab.selection import ResolvedLab

MANAGED_BY = {"app.kubernetes.io/managed-by": "igwlab"}


@dataclass(frozen=True)
class KubeObject:
    """One object igwlab applies, with the plan step it belongs to."""

    step: str
    template: str
    manifest: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def api_version(self) -> str:
        return str(self.manifest["apiVersion"])

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        namespace = self.manifest["metadata"].get("namespace")
        return None if namespace is None else str(namespace)

    @property
    def ref(self) -> str:
        """`Kind/name` or `Kind/namespace/name`, the way plans and messages name objects."""
        return "/".join(p for p in (self.kind, self.namespace, self.name) if p)


@dataclass(frozen=True)
class HelmRelease:
    step: str
    name: str
    chart: str
    version: str
    namespace: str
    values: dict[str, Any]
    repo: str | None = None
    wait_deployments: tuple[str, ...] = ()

    @property
    def values_file(self) -> str:
        return f"{self.name}.values.yaml"

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "release": self.name,
            "chart": self.chart,
            "version": self.version,
            "namespace": self.namespace,
            "values_file": f"helm/{self.values_file}",
        }
        if self.repo:
            summary["repo"] = self.repo
        return summary


@dataclass(frozen=True)
class CrdBundle:
    step: str
    title: str
    version: str
    url: str
    crds: tuple[str, ...]


@dataclass(frozen=True)
class Rendered:
    resolved: ResolvedLab
    crd_bundles: tuple[CrdBundle, ...]
    releases: tuple[HelmRelease, ...]
    objects: tuple[KubeObject, ...] = field(default_factory=tuple)

    def objects_for(self, step: str) -> list[KubeObject]:
        return [obj for obj in self.objects if obj.step == step]

    def releases_for(self, step: str) -> list[HelmRelease]:
        return [release for release in self.releases if release.step == step]


# -- jinja ------------------------------------------------------------------------------------


def _quote(value: Any) -> str:
    """Any value as a YAML scalar or flow collection: JSON is a subset of YAML."""
    return json.dumps(value, sort_keys=False)


def _combine(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    return {**left, **right}


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("manifests"))),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["q"] = _quote
    env.filters["combine"] = _combine
    return env


def render_template_text(template: str, context: dict[str, Any]) -> str:
    try:
        return _environment().get_template(template).render(context)
    except jinja2.TemplateError as exc:
        raise CatalogError(
            f"template {template} failed to render: {exc}",
            why="a template and the lab model disagree; this is a bug in igwlab",
            fix="report the message above with the lab you used",
        ) from exc


def _render_objects(step: str, template: str, context: dict[str, Any]) -> list[KubeObject]:
    text = render_template_text(template, context)
    try:
        documents = [doc for doc in yamlio.load_all(text) if doc]
    except yaml.YAMLError as exc:
        raise CatalogError(f"template {template} produced invalid YAML: {exc}") from exc
    return [KubeObject(step=step, template=template, manifest=doc) for doc in documents]


# -- context ----------------------------------------------------------------------------------


def _duration(milliseconds: int, units: str) -> str:
    return f"{milliseconds}ms" if units == "duration" else str(milliseconds)


def simulator_args(resolved: ResolvedLab) -> list[str]:
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


def epp_args(resolved: ResolvedLab) -> list[str]:
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


def _workload_resources(resolved: ResolvedLab) -> dict[str, Any]:
    workload = resolved.lab.workload
    if workload.resources is not None:
        amounts = {"cpu": workload.resources.cpu, "memory": workload.resources.memory}
        return {"requests": amounts, "limits": amounts}
    if workload.kind == "vllm-cpu":
        amounts = {"cpu": resolved.catalog.vllm_cpu.cpu, "memory": resolved.catalog.vllm_cpu.memory}
        return {"requests": amounts, "limits": amounts}
    return {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}}


def _epp_resources(resolved: ResolvedLab) -> dict[str, Any]:
    custom = resolved.lab.pool.epp.resources
    if custom is not None:
        return {"requests": {"cpu": custom.cpu, "memory": custom.memory}, "limits": {"memory": custom.memory}}
    return copy.deepcopy(resolved.catalog.laptop_epp_resources)


def build_context(resolved: ResolvedLab) -> dict[str, Any]:
    lab: Lab = resolved.lab
    selector = {"app": lab.workload.name}
    pod_labels = dict(selector)
    if resolved.gie.era == "ga":
        # The v1.5 EPP's core-metrics-extractor reads the engine type from this label.
        pod_labels["inference.networking.k8s.io/engine-type"] = "vllm"
    epp_name = f"{lab.pool.name}-epp"
    return {
        "lab": lab,
        "stack": resolved.stack,
        "gie": resolved.gie,
        "sim": resolved.simulator,
        "vllm": resolved.catalog.vllm_cpu,
        "common_labels": {**MANAGED_BY, "igwlab.dev/lab": lab.name},
        "selector_labels": selector,
        "pod_labels": pod_labels,
        "epp_name": epp_name,
        "epp_labels": {"app": epp_name},
        "epp_cluster_role": f"igwlab-{lab.namespace}-{epp_name}"[:253],
        "epp_args": epp_args(resolved),
        "epp_resources": _epp_resources(resolved),
        "sim_args": simulator_args(resolved),
        "vllm_args": vllm_args(resolved),
        "workload_resources": _workload_resources(resolved),
        "route_rules": route_rules(lab),
        "base_model_header": BASE_MODEL_HEADER,
    }


# -- the lab ----------------------------------------------------------------------------------


def _pool_chart_values(resolved: ResolvedLab, context: dict[str, Any]) -> dict[str, Any]:
    lab = resolved.lab
    extension: dict[str, Any] = {"resources": context["epp_resources"]}
    if lab.pool.epp.scheduling is not None:
        config = render_template_text(
            f"epp/config-{resolved.gie.epp.config_dialect}.yaml.j2", {"scheduling": lab.pool.epp.scheduling}
        )
        extension["pluginsConfigFile"] = "igwlab-scheduling.yaml"
        extension["pluginsCustomConfig"] = {"igwlab-scheduling.yaml": config}
    return {
        "inferenceExtension": extension,
        "inferencePool": {
            "targetPorts": [{"number": lab.pool.target_port}],
            "modelServers": {"matchLabels": context["selector_labels"]},
        },
        "provider": {"name": resolved.stack.pool_chart_provider},
    }


def render_dashboard(resolved: ResolvedLab) -> dict[str, Any]:
    gie = resolved.gie
    queue = (
        'sum by (model_server_pod) (inference_pool_per_pod_queue_size{job="endpoint-picker"})'
        if "inference_pool_per_pod_queue_size" in gie.epp_metrics
        else 'max(inference_pool_average_queue_size{job="endpoint-picker"})'
    )
    text = render_template_text(
        "addons/dashboard.json.j2",
        {
            "lab_name": resolved.lab.name,
            "era": gie.era,
            "kv_metric": resolved.simulator.kv_metric,
            "epp_request_metric": next(m for m in gie.epp_metrics if m.endswith("_request_total")),
            "epp_queue_expr": queue,
        },
    )
    dashboard: dict[str, Any] = json.loads(text)
    return dashboard


def _observability_values(resolved: ResolvedLab, context: dict[str, Any]) -> dict[str, dict[str, Any]]:
    lab = resolved.lab
    ns = lab.namespace
    pod_role = {"role": "pod", "namespaces": {"names": [ns]}}
    prometheus = {
        "alertmanager": {"enabled": False},
        "prometheus-pushgateway": {"enabled": False},
        "prometheus-node-exporter": {"enabled": False},
        "kube-state-metrics": {"enabled": False},
        "server": {
            "persistentVolume": {"enabled": False},
            "global": {"scrape_interval": "5s", "evaluation_interval": "15s"},
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        },
        "serverFiles": {
            "prometheus.yml": {
                "scrape_configs": [
                    {
                        "job_name": "model-servers",
                        "kubernetes_sd_configs": [pod_role],
                        "relabel_configs": [
                            {
                                "source_labels": ["__meta_kubernetes_pod_label_app"],
                                "regex": lab.workload.name,
                                "action": "keep",
                            },
                            {
                                "source_labels": ["__meta_kubernetes_pod_container_port_number"],
                                "regex": str(lab.pool.target_port),
                                "action": "keep",
                            },
                            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                        ],
                    },
                    {
                        # The EPP's /metrics wants a bearer token it can review (--metrics-endpoint-auth): the
                        # Prometheus server's own ServiceAccount token, whose ClusterRole may GET /metrics.
                        "job_name": "endpoint-picker",
                        "kubernetes_sd_configs": [{"role": "endpoints", "namespaces": {"names": [ns]}}],
                        "authorization": {"credentials_file": "/var/run/secrets/kubernetes.io/serviceaccount/token"},
                        "relabel_configs": [
                            {
                                "source_labels": ["__meta_kubernetes_service_name"],
                                "regex": context["epp_name"],
                                "action": "keep",
                            },
                            {
                                "source_labels": ["__meta_kubernetes_endpoint_port_number"],
                                "regex": "9090",
                                "action": "keep",
                            },
                            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                        ],
                    },
                ]
            }
        },
    }
    grafana = {
        "persistence": {"enabled": False},
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "grafana.ini": {"auth.anonymous": {"enabled": True, "org_role": "Viewer"}},
        "datasources": {
            "datasources.yaml": {
                "apiVersion": 1,
                "datasources": [
                    {
                        "name": "Prometheus",
                        "type": "prometheus",
                        "uid": "prometheus",
                        "access": "proxy",
                        "isDefault": True,
                        "url": f"http://igwlab-prometheus-server.{ns}.svc.cluster.local",
                    },
                ],
            }
        },
        "dashboardProviders": {
            "dashboardproviders.yaml": {
                "apiVersion": 1,
                "providers": [
                    {
                        "name": "igwlab",
                        "folder": "igwlab",
                        "type": "file",
                        "disableDeletion": False,
                        "options": {"path": "/var/lib/grafana/dashboards/igwlab"},
                    },
                ],
            }
        },
        "dashboards": {"igwlab": {"inference": {"json": json.dumps(render_dashboard(resolved), indent=2)}}},
    }
    return {"igwlab-prometheus": prometheus, "igwlab-grafana": grafana}


def gateway_service_url(resolved: ResolvedLab) -> str:
    """The inference gateway as seen from inside the cluster."""
    lab, proxy = resolved.lab, resolved.stack.proxy
    assert proxy.service is not None, "checked when the lab was resolved"
    namespace = proxy.namespace or lab.namespace
    service = proxy.service.format(gateway=lab.gateway.name)
    return f"http://{service}.{namespace}.svc.cluster.local:{lab.route_listener.port}"


def litellm_config(resolved: ResolvedLab, api_base: str | None = None) -> dict[str, Any]:
    """LiteLLM's proxy config: every model name the lab answers to, sent on to the gateway."""
    lab = resolved.lab
    base = (api_base or gateway_service_url(resolved)).rstrip("/") + "/v1"
    names = list(dict.fromkeys([*(model.name for model in lab.models), *lab.workload.served_names()]))
    return {
        "model_list": [
            {
                "model_name": name,
                "litellm_params": {
                    "model": f"openai/{name}",
                    "api_base": base,
                    "api_key": "the-inference-gateway-needs-no-key",
                },
            }
            for name in names
        ],
        "litellm_settings": {"drop_params": True},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }


def _addon_releases(resolved: ResolvedLab, addon: str, context: dict[str, Any]) -> list[HelmRelease]:
    values = _observability_values(resolved, context) if addon == "observability" else {}
    namespace = resolved.lab.namespace
    return [
        HelmRelease(
            step=f"addon-{pin.name.removeprefix('igwlab-')}",
            name=pin.name,
            chart=pin.chart,
            version=pin.version,
            namespace=pin.namespace or namespace,
            repo=pin.repo,
            values=values.get(pin.name, {}),
            wait_deployments=tuple(f"{pin.namespace or namespace}/{name}" for name in pin.wait_deployments),
        )
        for pin in resolved.catalog.addons[addon].releases
    ]


BASE_MODEL_HEADER = "X-Gateway-Base-Model-Name"


def _render_backend(resolved: ResolvedLab, backend: Backend) -> tuple[list[KubeObject], list[HelmRelease]]:
    """A pool's model servers, InferencePool + EPP and model objects. Templates see the lab with
    this pool in the place of its own, so one set of templates serves every pool."""
    lab = resolved.lab.model_copy(update={"workload": backend.workload, "pool": backend.pool, "models": backend.models})
    scoped = replace(resolved, lab=lab)
    gie = resolved.gie
    context = build_context(scoped)
    objects: list[KubeObject] = []
    releases: list[HelmRelease] = []
    workload_template = "workload/sim.yaml.j2" if lab.workload.kind == "sim" else "workload/vllm-cpu.yaml.j2"
    objects += _render_objects(backend.step("workload"), workload_template, context)
    if gie.epp.install == "manifests":
        objects += _render_objects(backend.step("pool"), "inference/alpha/epp.yaml.j2", context)
        objects += _render_objects(backend.step("pool"), "inference/alpha/inferencepool.yaml.j2", context)
        for model in lab.models:
            objects += _render_objects(
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
            values=_pool_chart_values(scoped, context),
            wait_deployments=(f"{lab.namespace}/{context['epp_name']}",),
        )
    )
    for model in lab.models:
        model_context = {**context, "model": model}
        objects += _render_objects(backend.step("models"), "inference/ga/inferenceobjective.yaml.j2", model_context)
        if model.targets:
            objects += _render_objects(
                backend.step("models"), "inference/ga/inferencemodelrewrite.yaml.j2", model_context
            )
    return objects, releases


def route_rules(lab: Lab) -> list[dict[str, Any]]:
    """One rule per extra pool, matching the base-model header, then the lab's own pool for the rest."""
    rules = [{"pool": backend.pool.name, "header": backend.workload.served_model} for backend in lab.backends()[1:]]
    return [*rules, {"pool": lab.pool.name, "header": None}]


def render_lab(resolved: ResolvedLab) -> Rendered:
    lab, stack, gie = resolved.lab, resolved.stack, resolved.gie
    context = build_context(resolved)

    crd_bundles: list[CrdBundle] = []
    if stack.gateway_api.installed_by == "igwlab":
        release = resolved.gateway_api
        url = release.standard_url if stack.gateway_api.channel == "standard" else release.experimental_url
        crd_bundles.append(
            CrdBundle(
                step="gateway-api-crds",
                title=f"Gateway API {stack.gateway_api.version} ({stack.gateway_api.channel})",
                version=stack.gateway_api.version,
                url=url,
                crds=tuple(resolved.catalog.gateway_api_standard_crds),
            )
        )
    crd_bundles.append(
        CrdBundle(
            step="inference-crds",
            title=f"Gateway API Inference Extension {stack.gie_version}",
            version=stack.gie_version,
            url=gie.crds_url,
            crds=tuple(gie.crds),
        )
    )

    releases = [
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
        for pin in stack.helm_releases
    ]

    objects: list[KubeObject] = []
    objects += _render_objects("namespace", "base/namespace.yaml.j2", context)
    if stack.gateway_class.created_by == "igwlab":
        objects += _render_objects("gatewayclass", "gateway/gatewayclass.yaml.j2", context)
    for backend in lab.backends():
        objects_, releases_ = _render_backend(resolved, backend)
        objects += objects_
        releases += releases_
    if len(lab.extra_pools) > 0 and stack.model_routing == "body-based-routing":
        assert gie.bbr_chart is not None and gie.epp.chart_version is not None
        releases.append(
            HelmRelease(
                step="bbr",
                name="body-based-router",
                chart=gie.bbr_chart,
                version=gie.epp.chart_version,
                namespace=lab.namespace,
                values={"provider": {"name": stack.pool_chart_provider}},
            )
        )

    for addon in lab.addons:
        releases += _addon_releases(resolved, addon, context)
    if "litellm" in lab.addons:
        litellm_context = {
            **context,
            "litellm_config": to_yaml(litellm_config(resolved)),
            "litellm_image": resolved.catalog.addons["litellm"].image,
        }
        objects += _render_objects("addon-litellm", "addons/litellm.yaml.j2", litellm_context)

    objects += _render_objects("gateway", "gateway/gateway.yaml.j2", context)
    objects += _render_objects("route", "gateway/httproute.yaml.j2", context)
    _refuse_duplicates(lab, objects, releases)
    return Rendered(resolved=resolved, crd_bundles=tuple(crd_bundles), releases=tuple(releases), objects=tuple(objects))


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
            problems.append(
                f"{kind} {'/'.join(p for p in (namespace, name) if p)} comes from {seen[key]} and {made_by}"
            )
        seen.setdefault(key, made_by)
    if problems:
        raise InvalidLabError(
            f"lab {lab.name} would create the same object twice:\n" + "\n".join(f"  - {p}" for p in problems),
            why="the second would overwrite the first, so one part of the lab would silently not exist",
            fix="rename the lab field behind one of them (names of the workload, pool, models, gateway or route)",
        )


# -- output -----------------------------------------------------------------------------------


class _Dumper(yamlio.SafeDumper):
    """Block-style YAML; multi-line strings (such as EPP configs) as literal blocks."""


def _str_representer(dumper: yamlio.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def to_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def to_multi_document_yaml(documents: list[Any]) -> str:
    return "".join(f"---\n{to_yaml(doc)}" for doc in documents)
