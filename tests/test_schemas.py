"""Every object igwlab renders must be accepted by the upstream CRD schemas (and CEL rules) of
its stack's versions, or by kubernetes-validate for core kinds."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import find, render
from schemas import crd_directories, find_crd, is_core, validate_core, validate_custom_resource

from igwlab.catalog import load_catalog
from igwlab.labs import preset_names
from igwlab.render import Rendered

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _validate_all(rendered: Rendered, upstream: Path) -> tuple[list[str], int]:
    stack = rendered.resolved.stack
    directories = crd_directories(upstream, stack.gie_version, stack.gateway_api.version, stack.gateway_api.channel)
    problems: list[str] = []
    cel_rules = 0
    for obj in rendered.objects:
        manifest = obj.manifest
        metadata = manifest["metadata"]
        if not DNS_SUBDOMAIN.match(metadata["name"]) or len(metadata["name"]) > 253:
            problems.append(f"{obj.ref}: invalid name")
        for key, value in metadata.get("labels", {}).items():
            if len(value) > 63 or not LABEL_VALUE.match(value):
                problems.append(f"{obj.ref}: invalid label {key}={value}")
        if is_core(manifest):
            problems += [f"{obj.ref}: {e}" for e in validate_core(manifest)]
            continue
        crd = find_crd(directories, manifest["apiVersion"].split("/")[0], manifest["kind"])
        if crd is None:
            problems.append(f"{obj.ref}: no upstream CRD for {manifest['apiVersion']} {manifest['kind']}")
            continue
        report = validate_custom_resource(manifest, crd)
        cel_rules += report.cel_rules_checked
        problems += [f"{obj.ref}: {e}" for e in report.errors]
    return problems, cel_rules


@pytest.mark.parametrize("lab", preset_names())
def test_every_preset_renders_objects_the_upstream_schemas_accept(lab: str, upstream: Path) -> None:
    rendered = render(lab=lab)
    problems, cel_rules = _validate_all(rendered, upstream)
    assert problems == []
    assert cel_rules > 0, "the CEL rules of the Gateway and HTTPRoute CRDs were not evaluated"


@pytest.mark.parametrize(
    ("provider", "stack_id"), [(p, s.id) for p, s in load_catalog().all_stacks()], ids=lambda v: str(v)
)
@pytest.mark.parametrize("workload", ["sim", "vllm-cpu"])
def test_every_catalog_stack_renders_valid_objects_for_both_workloads(
    provider: str, stack_id: str, workload: str, upstream: Path
) -> None:
    stack = next(s for p, s in load_catalog().all_stacks() if s.id == stack_id)
    rendered = render(provider=provider, gie_version=stack.gie_version, workload=workload)
    assert rendered.resolved.stack.id == stack_id
    problems, _ = _validate_all(rendered, upstream)
    assert problems == []


def _problems_after(mutate: Any, upstream: Path, lab: str = "kgateway-fake-llm") -> list[str]:
    rendered = render(lab=lab)
    objects = tuple(
        type(obj)(step=obj.step, template=obj.template, manifest=copy.deepcopy(obj.manifest))
        for obj in rendered.objects
    )
    for obj in objects:
        mutate(obj.manifest)
    problems, _ = _validate_all(
        type(rendered)(rendered.resolved, rendered.crd_bundles, rendered.releases, objects), upstream
    )
    return problems


def test_the_validator_rejects_a_target_weight_below_the_minimum(upstream: Path) -> None:
    def zero_weight(manifest: dict[str, Any]) -> None:
        if manifest["kind"] == "InferenceModel":
            manifest["spec"]["targetModels"][0]["weight"] = 0

    assert any("weight" in p or "minimum" in p for p in _problems_after(zero_weight, upstream))


def test_the_validator_evaluates_cel_rules_weights_all_or_none(upstream: Path) -> None:
    def drop_one_weight(manifest: dict[str, Any]) -> None:
        if manifest["kind"] == "InferenceModel":
            del manifest["spec"]["targetModels"][1]["weight"]

    assert any("CEL rule failed" in p for p in _problems_after(drop_one_weight, upstream))


def test_the_validator_rejects_unknown_fields_and_wrong_api_versions(upstream: Path) -> None:
    def v1_fields_on_alpha_pool(manifest: dict[str, Any]) -> None:
        if manifest["kind"] == "InferencePool":
            manifest["spec"]["targetPorts"] = [{"number": 8000}]

    def core_typo(manifest: dict[str, Any]) -> None:
        if manifest["kind"] == "Service":
            manifest["spec"]["portz"] = []

    assert any("targetPorts" in p for p in _problems_after(v1_fields_on_alpha_pool, upstream))
    assert any("Service" in p for p in _problems_after(core_typo, upstream))


def test_the_validator_rejects_a_v1_pool_without_an_endpoint_picker_port(upstream: Path) -> None:
    """The v1 CRD's CEL rule: a Service endpointPickerRef needs a port."""
    crd = find_crd([upstream / "gie" / "v1.5.0"], "inference.networking.k8s.io", "InferencePool")
    assert crd is not None
    pool = {
        "apiVersion": "inference.networking.k8s.io/v1",
        "kind": "InferencePool",
        "metadata": {"name": "p"},
        "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "targetPorts": [{"number": 8000}],
            "endpointPickerRef": {"name": "p-epp"},
        },
    }
    assert validate_custom_resource(pool, crd).errors
    pool["spec"]["endpointPickerRef"]["port"] = {"number": 9002}
    assert validate_custom_resource(pool, crd).errors == []


def test_routes_point_at_the_pool_group_of_the_stacks_era() -> None:
    """The #1 way the guides broke: a v1 backendRef against a v1alpha2 pool (BackendNotFound)."""
    alpha = find(render(lab="kgateway-fake-llm"), "HTTPRoute")[0]
    ga = find(render(lab="agentgateway-fake-llm"), "HTTPRoute")[0]
    assert alpha["spec"]["rules"][0]["backendRefs"][0]["group"] == "inference.networking.x-k8s.io"
    assert ga["spec"]["rules"][0]["backendRefs"][0]["group"] == "inference.networking.k8s.io"
    assert "port" not in ga["spec"]["rules"][0]["backendRefs"][0]
