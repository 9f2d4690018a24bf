"""Add-ons: Prometheus and Grafana values with igwlab's dashboard; LiteLLM's proxy config."""

from __future__ import annotations

import json
from typing import Any

from igwlab.render.epp import METRICS_PORT, epp_name
from igwlab.render.objects import HelmRelease
from igwlab.render.pools import scoped
from igwlab.render.templates import render_template_text
from igwlab.selection import ResolvedLab


def render_dashboard(resolved: ResolvedLab) -> dict[str, Any]:
    """igwlab's Grafana dashboard for a lab, on the metric names of its stack's simulator and EPP."""
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


def _any_of(names: list[str]) -> str:
    """A Prometheus relabel regex (anchored by Prometheus) matching exactly these names: Kubernetes names
    and port numbers hold no regex metacharacters."""
    return "|".join(dict.fromkeys(names))


def observability_values(resolved: ResolvedLab, context: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Values of the `prometheus` and `grafana` charts, keyed by release name. Prometheus scrapes the
    model servers and the endpoint picker of every pool of the lab."""
    lab = resolved.lab
    ns = lab.namespace
    backends = lab.backends()
    workloads = _any_of([backend.workload.name for backend in backends])
    epps = _any_of([epp_name(scoped(resolved, backend)) for backend in backends])
    ports = _any_of([str(backend.pool.target_port) for backend in backends])
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
                                "regex": workloads,
                                "action": "keep",
                            },
                            {
                                "source_labels": ["__meta_kubernetes_pod_container_port_number"],
                                "regex": ports,
                                "action": "keep",
                            },
                            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                        ],
                    },
                    {
                        # Where the EPP's /metrics wants a bearer token it can review (v0.5, always): the
                        # Prometheus server's own ServiceAccount token, whose ClusterRole may GET /metrics.
                        "job_name": "endpoint-picker",
                        "kubernetes_sd_configs": [{"role": "endpoints", "namespaces": {"names": [ns]}}],
                        "authorization": {"credentials_file": "/var/run/secrets/kubernetes.io/serviceaccount/token"},
                        "relabel_configs": [
                            {
                                "source_labels": ["__meta_kubernetes_service_name"],
                                "regex": epps,
                                "action": "keep",
                            },
                            {
                                "source_labels": ["__meta_kubernetes_endpoint_port_number"],
                                "regex": str(METRICS_PORT),
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


def addon_releases(resolved: ResolvedLab, addon: str, context: dict[str, Any]) -> list[HelmRelease]:
    values = observability_values(resolved, context) if addon == "observability" else {}
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
