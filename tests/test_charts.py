"""Every Helm release igwlab installs, rendered by the real `helm` from the real chart at its pinned
version with the values igwlab renders (../shared/upstream/charts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from charts import container, find, lint, template
from helpers import render

from igwlab.labs import preset_names
from igwlab.render import HelmRelease, to_yaml
from igwlab.render.epp import METRICS_PORT, epp_name
from igwlab.render.pools import pools

PRESETS = preset_names()


def _distinct_releases() -> dict[str, HelmRelease]:
    """Every release of every preset (with the add-ons), each distinct chart + values once."""
    found: dict[str, HelmRelease] = {}
    for lab in PRESETS:
        for release in render(lab=lab, addons=("observability",)).releases:
            key = f"{release.chart}@{release.version}:{to_yaml(release.values)}"
            found.setdefault(key, release)
    return {f"{r.name}-{r.version}-{i}": r for i, r in enumerate(found.values())}


RELEASES = _distinct_releases()


@pytest.mark.parametrize("key", sorted(RELEASES))
def test_every_release_lints_and_renders_with_igwlabs_values(key: str, tmp_path: Path) -> None:
    release = RELEASES[key]
    result = lint(release, tmp_path)
    assert result.returncode == 0, f"helm lint {release.name}: {result.stdout}{result.stderr}"
    assert template(release, tmp_path), release.name


def _rules_allow(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule.get("apiGroups", []) and resource in rule.get("resources", []) and verb in rule.get("verbs", [])
        for rule in rules
    )


def _cluster_rules_of(objects: list[dict[str, Any]], account: str, namespace: str) -> list[dict[str, Any]]:
    """Every rule a ServiceAccount gets from the ClusterRoleBindings among `objects`."""
    roles = {o["metadata"]["name"]: o for o in find(objects, "ClusterRole")}
    rules: list[dict[str, Any]] = []
    for binding in find(objects, "ClusterRoleBinding"):
        subjects = binding.get("subjects") or []
        if any(s.get("name") == account and s.get("namespace") == namespace for s in subjects):
            rules += roles.get(binding["roleRef"]["name"], {}).get("rules", [])
    return rules


@pytest.mark.parametrize("lab", PRESETS)
def test_prometheus_can_read_every_endpoint_pickers_metrics(lab: str, tmp_path: Path) -> None:
    """The EPP's /metrics either needs no token (v1.5: --metrics-endpoint-auth=false) or reviews the token
    Prometheus sends (v0.5: the EPP may create TokenReviews and SubjectAccessReviews, and the Prometheus
    server may GET /metrics); and the scrape job keeps every pool's EPP Service on its metrics port."""
    rendered = render(lab=lab, addons=("observability",))
    releases = {r.name: r for r in rendered.releases}
    prometheus = template(releases["igwlab-prometheus"], tmp_path)
    config = yaml.safe_load(find(prometheus, "ConfigMap", "igwlab-prometheus-server")[0]["data"]["prometheus.yml"])
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "endpoint-picker")
    keep = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    namespace = rendered.resolved.lab.namespace
    for pool in pools(rendered.resolved):
        name = epp_name(pool)
        assert name in keep["__meta_kubernetes_service_name"].split("|"), f"pool {pool.lab.pool.name} not scraped"
        assert keep["__meta_kubernetes_endpoint_port_number"] == str(METRICS_PORT)
        release = rendered.releases_for(
            "pool" if pool.lab.pool.name == rendered.resolved.lab.pool.name else f"pool-{pool.lab.pool.name}"
        )
        objects = template(release[0], tmp_path) if release else [o.manifest for o in rendered.objects]
        service = find(objects, "Service", name)[0]
        assert METRICS_PORT in [p["port"] for p in service["spec"]["ports"]]
        args = [str(a) for a in container(objects, name, "epp")["args"]]
        if "--metrics-endpoint-auth=false" in args:
            continue
        epp_rules = _cluster_rules_of(objects, name, namespace)
        assert _rules_allow(epp_rules, "authentication.k8s.io", "tokenreviews", "create"), f"{name} cannot review"
        assert _rules_allow(epp_rules, "authorization.k8s.io", "subjectaccessreviews", "create")
        server_rules = _cluster_rules_of(prometheus, "igwlab-prometheus-server", namespace)
        assert any("/metrics" in r.get("nonResourceURLs", []) and "get" in r["verbs"] for r in server_rules)
        assert job["authorization"]["credentials_file"].endswith("serviceaccount/token")


def test_prometheus_scrapes_the_model_servers_of_every_pool(tmp_path: Path) -> None:
    rendered = render(lab="multi-model", addons=("observability",))
    values = next(r for r in rendered.releases if r.name == "igwlab-prometheus").values
    job = next(j for j in values["serverFiles"]["prometheus.yml"]["scrape_configs"] if j["job_name"] == "model-servers")
    apps = job["relabel_configs"][0]["regex"].split("|")
    assert apps == [backend.workload.name for backend in rendered.resolved.lab.backends()]
