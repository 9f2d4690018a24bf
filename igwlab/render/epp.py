"""The endpoint picker (EPP): its arguments, config files, resources and chart values, per GIE version.

Everything the EPP of a stack is started with comes from here, so tests (and anything that starts a
real EPP) reuse these builders instead of retyping flags. For chart-installed EPPs `epp_args` is what
the upstream chart renders from `pool_chart_values`; a test pins the two together with the real `helm`.
"""

from __future__ import annotations

import copy
from typing import Any

from igwlab.labs import FailureMode
from igwlab.render.templates import render_template_text
from igwlab.selection import ResolvedLab

CONFIG_DIR = "/config"  # where the chart and the manifests mount the EPP's ConfigMap
SCHEDULING_CONFIG_FILE = "igwlab-scheduling.yaml"
GRPC_PORT, GRPC_HEALTH_PORT, METRICS_PORT = 9002, 9003, 9090
LOG_VERBOSITY = 3


def epp_name(resolved: ResolvedLab) -> str:
    """The EPP's Deployment, Service and ConfigMap name: `<pool>-epp`, as the upstream chart names them."""
    return f"{resolved.lab.pool.name}-epp"


def config_file(resolved: ResolvedLab) -> str:
    """The plugins file under CONFIG_DIR the EPP is started with."""
    if resolved.lab.pool.epp.scheduling is not None:
        return SCHEDULING_CONFIG_FILE
    return resolved.gie.epp.config_file


def config_files(resolved: ResolvedLab) -> dict[str, str]:
    """File name -> YAML text of the EndpointPickerConfig files igwlab writes into the EPP's ConfigMap.

    Manifest-installed EPPs (GIE v0.5) get their version's upstream default file, without which they
    do not start; chart-installed EPPs get only the lab's own scheduling profile (the chart writes its
    default file itself). Source: each version's config/manifests/inferencepool-resources.yaml and chart.
    """
    epp = resolved.gie.epp
    files: dict[str, str] = {}
    if epp.default_config is not None:
        files[epp.config_file] = render_template_text(epp.default_config, {})
    scheduling = resolved.lab.pool.epp.scheduling
    if scheduling is not None:
        files[SCHEDULING_CONFIG_FILE] = render_template_text(
            f"epp/config-{epp.config_dialect}.yaml.j2", {"scheduling": scheduling}
        )
    return files


def scheduling_config(resolved: ResolvedLab) -> str | None:
    """The lab's EndpointPickerConfig (YAML text) in the dialect of its GIE version, or None."""
    return config_files(resolved).get(SCHEDULING_CONFIG_FILE)


def epp_args(resolved: ResolvedLab) -> list[str]:
    """The EPP's command line for the lab's (first) pool, in the flag dialect of its GIE version.

    v0.5 (`-camelCase` flags, cmd/epp/runner/runner.go at v0.5.1): pool, ports, verbosity and the
    plugins file it cannot start without. v1.5 (`--kebab-case`, pkg/epp/server/options.go at v1.5.0):
    exactly what the inferencepool chart v1.5.0 renders (config/charts/epplib/templates/_deployment.yaml)
    from `pool_chart_values` — the chart leaves the ports at their defaults (9002, 9003, 9090).
    """
    lab, gie = resolved.lab, resolved.gie
    config = f"{CONFIG_DIR}/{config_file(resolved)}"
    if gie.epp.flag_style == "camel":
        return [
            "-poolName",
            lab.pool.name,
            "-poolNamespace",
            lab.namespace,
            "-v",
            str(LOG_VERBOSITY),
            "-grpcPort",
            str(GRPC_PORT),
            "-grpcHealthPort",
            str(GRPC_HEALTH_PORT),
            "-metricsPort",
            str(METRICS_PORT),
            "-configFile",
            config,
        ]
    args = [
        "--pool-name",
        lab.pool.name,
        "--pool-namespace",
        lab.namespace,
        "--pool-group",
        gie.pool_group,
        "--zap-encoder",
        "json",
        "--config-file",
        config,
        "--v",
        str(LOG_VERBOSITY),
        "--tracing=false",
    ]
    if gie.epp.metrics_auth == "disabled":
        args.append("--metrics-endpoint-auth=false")
    return args


def epp_resources(resolved: ResolvedLab) -> dict[str, Any]:
    """The lab's EPP resources, else the catalog's laptop size (the v1.4+ chart asks for 4 CPU / 8Gi)."""
    custom = resolved.lab.pool.epp.resources
    if custom is not None:
        return {"requests": {"cpu": custom.cpu, "memory": custom.memory}, "limits": {"memory": custom.memory}}
    return copy.deepcopy(resolved.catalog.laptop_epp_resources)


def epp_chart_values(resolved: ResolvedLab) -> dict[str, Any]:
    """`inferenceExtension` values of the inferencepool chart (v1.5.0: config/charts/inferencepool/values.yaml)."""
    extension: dict[str, Any] = {
        "resources": epp_resources(resolved),
        "flags": {"v": LOG_VERBOSITY},
        # The chart writes it into the InferencePool's endpointPickerRef; its own default is FailOpen.
        "failureMode": resolved.lab.pool.failure_mode,
    }
    if resolved.gie.epp.metrics_auth == "disabled":
        # Renders --metrics-endpoint-auth=false: Prometheus (and `igwlab top`) read /metrics without the
        # TokenReview rights the chart only grants together with a Prometheus-Operator ServiceMonitor.
        extension["monitoring"] = {"prometheus": {"enabled": False, "auth": {"enabled": False}}}
    custom = {name: text for name, text in config_files(resolved).items() if name == SCHEDULING_CONFIG_FILE}
    if custom:
        extension["pluginsConfigFile"] = SCHEDULING_CONFIG_FILE
        extension["pluginsCustomConfig"] = custom
    return extension


def failure_mode_in_force(resolved: ResolvedLab) -> FailureMode:
    """The failure mode the gateway applies to the lab's pool: the lab's, unless the stack's gateway
    ignores FailOpen (catalog `stack.ignores_fail_open`, e.g. Envoy AI Gateway: ai-gateway#2502)."""
    mode = resolved.lab.pool.failure_mode
    return "FailClose" if mode == "FailOpen" and resolved.stack.ignores_fail_open else mode
