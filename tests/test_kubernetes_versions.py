"""Each stack pins the Kubernetes it runs on: a range with its sources and a k3s image `up` starts k3d
with; doctor checks the installed k3d can start that image and, on an existing cluster, the version."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from charts import template, template_error
from doubles.world import lab_world
from helpers import render

from igwlab.catalog import Stack, load_catalog, minor_tuple, version_tuple
from igwlab.errors import ExitCode, PrerequisiteError
from igwlab.lifecycle import up
from igwlab.plan import build_plan
from igwlab.selection import LabSelection, resolve_lab

CATALOG = load_catalog()
STACKS = [(provider, stack) for provider, stack in CATALOG.all_stacks()]
IDS = [stack.id for _, stack in STACKS]
SAFE_UPGRADES = Path(__file__).parent / "data" / "gateway-api-v1.5.1-safe-upgrades.yaml"


@pytest.mark.parametrize(("provider", "stack"), STACKS, ids=IDS)
def test_k3d_clusters_are_created_with_the_stacks_k3s_image(provider: str, stack: Stack) -> None:
    plan = build_plan(render(provider=provider, gie_version=stack.gie_version))
    command = list(next(step for step in plan.steps if step.id == "cluster").command)
    assert command[command.index("--image") + 1] == stack.kubernetes.k3s_image
    image = CATALOG.k3s_images[stack.kubernetes.k3s_image]
    assert stack.kubernetes.k3s_image.endswith(image.kubernetes + "-k3s1")
    version = version_tuple(image.kubernetes)
    assert stack.kubernetes.accepts(version) and not stack.kubernetes.above_max(version)
    assert stack.kubernetes.sources and image.sources


@pytest.mark.parametrize(("provider", "stack"), STACKS, ids=IDS)
def test_every_chart_of_the_stack_installs_on_its_kubernetes_range(provider: str, stack: Stack, tmp_path: Path) -> None:
    """`helm template --kube-version` (the chart's kubeVersion and its version-dependent templates) at the
    stack's minimum and at its pinned k3s version."""
    rendered = render(provider=provider, gie_version=stack.gie_version)
    pinned = CATALOG.k3s_images[stack.kubernetes.k3s_image].kubernetes
    for release in rendered.releases:
        for version in (f"v{stack.kubernetes.min}.0", pinned):
            assert template(release, tmp_path, kube_version=version), (release.name, version)


def test_a_chart_below_its_kube_version_is_refused_so_the_range_test_bites(tmp_path: Path) -> None:
    ngf = next(r for r in render(provider="nginx").releases if r.name == "ngf")
    assert "kubeVersion" in template_error(ngf, tmp_path, "v1.30.0")
    assert CATALOG.stack_for("nginx").kubernetes.min == "1.31"


def test_the_gateway_api_bundle_floor_is_its_admission_policys() -> None:
    """Gateway API v1.5.1's standard bundle holds a ValidatingAdmissionPolicy in admissionregistration.k8s.io/v1
    (GA in Kubernetes 1.30): no stack installing that bundle may start below 1.30."""
    kinds = {(d["apiVersion"], d["kind"]) for d in yaml.safe_load_all(SAFE_UPGRADES.read_text()) if d}
    assert ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy") in kinds
    assert CATALOG.gateway_api_releases["v1.5.1"].min_kubernetes == "1.30"
    for _, stack in STACKS:
        floor = CATALOG.gateway_api_releases[stack.gateway_api.version].min_kubernetes
        assert minor_tuple(stack.kubernetes.min) >= minor_tuple(floor), stack.id


def test_up_refuses_a_k3d_too_old_for_the_stacks_k3s_image(tmp_path: Path) -> None:
    with lab_world(tmp_path) as world:
        world.tools.configure(k3d_version="v5.6.3")
        with pytest.raises(PrerequisiteError) as caught:
            up(world.options(), world.env)
    error = caught.value
    assert error.exit_code == ExitCode.PREREQUISITES
    assert "k3d v5.6.3 cannot start rancher/k3s:v1.31.5-k3s1" in error.what
    assert "upgrade k3d to v5.7.4" in (error.fix or "")
    assert not [c for c in world.tools.calls("k3d") if c[1:3] == ["cluster", "create"]]


def test_up_on_a_context_below_the_stacks_kubernetes_refuses_with_the_fix(tmp_path: Path) -> None:
    with lab_world(tmp_path, preset="agentgateway-fake-llm", context=True, kubernetes_version="v1.29.4") as world:
        with pytest.raises(PrerequisiteError) as caught:
            up(world.options(context="ctx"), world.env)
        created = world.cluster.applied
    error = caught.value
    assert error.exit_code == ExitCode.PREREQUISITES
    assert "Kubernetes v1.29.4" in error.what and "older than 1.30" in error.what
    assert "--provider kgateway" in (error.fix or ""), error.fix
    assert created == [], "nothing is applied before the check"


def test_up_on_a_context_newer_than_tested_warns_and_goes_on(tmp_path: Path) -> None:
    with lab_world(tmp_path, preset="istio-fake-llm", context=True, kubernetes_version="v1.37.0") as world:
        result = up(world.options(context="ctx"), world.env)
    assert result.run.ok, result.run.error
    assert result.doctor is not None
    finding = next(f for f in result.doctor.findings if f.name == "kubernetes")
    assert finding.status == "warn" and "newer than 1.36" in finding.detail


def test_doctor_reads_the_version_of_the_context(tmp_path: Path) -> None:
    from igwlab.doctor import kubernetes_finding

    resolved = resolve_lab(LabSelection(provider="envoy-gateway"))
    assert kubernetes_finding(resolved, "v1.33.4+k3s1", "x").status == "ok"
    assert kubernetes_finding(resolved, "v1.31.9-gke.100", "x").status == "fail"
    assert kubernetes_finding(resolved, "v1.36.0", "x").status == "warn"


def test_doctors_k3d_minimum_starts_every_pinned_k3s_image() -> None:
    from igwlab.doctor import MINIMUM_VERSIONS

    for image in CATALOG.k3s_images.values():
        assert MINIMUM_VERSIONS["k3d"] >= version_tuple(image.min_k3d), image
