"""CRDs already on a cluster (`--context`, or a reused k3d cluster) are read, not trusted by name: older
bundles are upgraded with a note; newer ones, another channel, or an older bundle under Gateway API's
safe-upgrades admission policy are refused (exit 3) with the way out."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import testbin
import yaml
from doubles.fakecluster import FakeCluster, crd_manifest
from doubles.world import lab_world
from kwokcluster import KwokCluster

from igwlab.catalog import load_catalog
from igwlab.crds import GATEWAY_CHANNEL_ANNOTATION, GATEWAY_VERSION_ANNOTATION, SAFE_UPGRADES_POLICY
from igwlab.errors import ExitCode, PrerequisiteError
from igwlab.lifecycle import Environment, check_prerequisites, up
from igwlab.selection import LabSelection, resolve_lab
from igwlab.tools.kube import KubernetesApi
from igwlab.tools.proc import ToolRunner

CATALOG = load_catalog()
GIE_ANNOTATION = "inference.networking.k8s.io/bundle-version"
UPSTREAM = Path(__file__).resolve().parent.parent.parent / "shared" / "upstream"
SAFE_UPGRADES = Path(__file__).parent / "data" / "gateway-api-v1.5.1-safe-upgrades.yaml"


def _gateway_crds(cluster: FakeCluster, version: str, channel: str = "standard") -> None:
    for name in CATALOG.gateway_api_standard_crds:
        cluster.apply(crd_manifest(name, {GATEWAY_VERSION_ANNOTATION: version, GATEWAY_CHANNEL_ANNOTATION: channel}))


def _annotation(cluster: FakeCluster, name: str, key: str) -> str | None:
    crd = cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
    return ((crd or {}).get("metadata", {}).get("annotations") or {}).get(key)


def test_older_gateway_api_crds_on_the_cluster_are_upgraded_with_a_note(tmp_path: Path) -> None:
    with lab_world(tmp_path, preset="agentgateway-fake-llm", context=True) as world:
        _gateway_crds(world.cluster, "v1.2.1")
        result = up(world.options(context="ctx"), world.env)
        versions = {
            _annotation(world.cluster, n, GATEWAY_VERSION_ANNOTATION) for n in CATALOG.gateway_api_standard_crds
        }
    assert result.run.ok, result.run.error
    assert result.run.outcomes["gateway-api-crds"].status == "done", "an older bundle is not skipped"
    assert versions == {"v1.5.1"}
    assert result.doctor is not None
    note = next(f for f in result.doctor.findings if f.name == "gateway-api-crds")
    assert note.status == "warn" and "upgrades" in note.detail and "v1.2.1" in note.detail


def test_older_inference_crds_are_upgraded_too(tmp_path: Path) -> None:
    """GIE v1.2's InferenceModelRewrite says `split` where v1.3+ says `targets`: the lab needs its own."""
    with lab_world(tmp_path, preset="agentgateway-fake-llm", context=True) as world:
        for name in CATALOG.gie_releases["v1.5.0"].crds:
            world.cluster.apply(crd_manifest(name, {GIE_ANNOTATION: "v1.2.1"}))
        result = up(world.options(context="ctx"), world.env)
        version = _annotation(world.cluster, "inferencemodelrewrites.inference.networking.x-k8s.io", GIE_ANNOTATION)
    assert result.run.ok, result.run.error
    assert version == "v1.5.0"


def _refusal(tmp_path: Path, preset: str, prepare: object) -> PrerequisiteError:
    with lab_world(tmp_path, preset=preset, context=True) as world:
        prepare(world.cluster)  # type: ignore[operator]
        with pytest.raises(PrerequisiteError) as caught:
            up(world.options(context="ctx"), world.env)
        assert not [ref for ref in world.cluster.applied if not ref.startswith(("CustomResourceDefinition", "Valid"))]
    assert caught.value.exit_code == ExitCode.PREREQUISITES
    return caught.value


def test_newer_inference_crds_are_refused_with_the_way_out(tmp_path: Path) -> None:
    def newer(cluster: FakeCluster) -> None:
        for name in CATALOG.gie_releases["v1.5.0"].crds:
            cluster.apply(crd_manifest(name, {GIE_ANNOTATION: "v1.6.0"}))

    error = _refusal(tmp_path, "agentgateway-fake-llm", newer)
    assert "newer" in error.what and "v1.6.0" in error.what
    assert "--cluster NAME" in (error.fix or "")


def test_the_alpha_lab_refuses_a_cluster_with_v1_inference_crds_of_the_same_names(tmp_path: Path) -> None:
    """GIE v1.0-v1.4 shipped an annotated inferencepools.inference.networking.x-k8s.io; v0.5.1's would replace it."""

    def v1_era(cluster: FakeCluster) -> None:
        cluster.apply(crd_manifest("inferencepools.inference.networking.x-k8s.io", {GIE_ANNOTATION: "v1.4.0"}))

    error = _refusal(tmp_path, "kgateway-fake-llm", v1_era)
    assert "inferencepools.inference.networking.x-k8s.io at v1.4.0" in error.what


def test_an_older_gateway_api_bundle_is_refused_under_the_safe_upgrades_policy(tmp_path: Path) -> None:
    policy = next(d for d in yaml.safe_load_all(SAFE_UPGRADES.read_text()) if d)

    def with_policy(cluster: FakeCluster) -> None:
        cluster.apply(policy)

    error = _refusal(tmp_path, "kgateway-fake-llm", with_policy)
    assert SAFE_UPGRADES_POLICY in error.what and "v1.3.0" in error.what


def test_another_gateway_api_channel_is_refused(tmp_path: Path) -> None:
    error = _refusal(
        tmp_path, "agentgateway-fake-llm", lambda cluster: _gateway_crds(cluster, "v1.5.1", "experimental")
    )
    assert "another channel" in error.what and "experimental" in error.what


def test_older_crds_where_the_providers_chart_installs_them_are_refused_with_the_command(tmp_path: Path) -> None:
    """Helm installs a chart's CRDs only where none exist: Envoy Gateway would run on the old ones."""
    error = _refusal(tmp_path, "envoy-gateway-fake-llm", lambda c: _gateway_crds(c, "v1.4.1", "experimental"))
    assert "Helm does not upgrade CRDs" in error.what
    assert "kubectl apply --server-side" in (error.fix or "") and "experimental-install.yaml" in (error.fix or "")


def test_a_reused_k3d_cluster_is_checked_too(tmp_path: Path) -> None:
    with lab_world(tmp_path) as world:
        assert up(world.options(), world.env).run.ok
        for name in CATALOG.gie_releases["v0.5.1"].crds:
            world.cluster.apply(crd_manifest(name, {GIE_ANNOTATION: "v1.1.0"}))
        with pytest.raises(PrerequisiteError) as caught:
            up(world.options(), world.env)
    assert "newer" in caught.value.what


# -- on a real API server -----------------------------------------------------------------------------


@pytest.fixture
def kwok(tmp_path: Path) -> Iterator[KwokCluster]:
    if not UPSTREAM.is_dir():
        pytest.skip(f"upstream CRDs not found at {UPSTREAM} (clone outside the igwlab workspace)")
    try:
        cluster = KwokCluster.create("igwlab-crds", tmp_path / "kwok", nodes=0)
    except testbin.BuildError as error:
        pytest.skip(f"the kwok cluster's binaries cannot be built: {error}")
    try:
        yield cluster
    finally:
        cluster.delete()


@pytest.mark.realcluster
def test_on_a_real_api_server_the_policy_denies_the_older_bundle_and_doctor_says_so_first(kwok: KwokCluster) -> None:
    for path in sorted((UPSTREAM / "gateway-api" / "v1.5.1" / "standard").glob("*.yaml")):
        kwok.kubectl("apply", "--server-side", "-f", str(path))
    kwok.kubectl("apply", "--server-side", "-f", str(SAFE_UPGRADES))
    older = UPSTREAM / "gateway-api" / "v1.3.0" / "standard" / "gateway.networking.k8s.io_httproutes.yaml"
    # The premise, on the real API server: the policy rejects the older bundle the kgateway stack installs
    # (a server-side dry run goes through admission; the policy is in force once the API server has loaded it).
    kubectl = [str(kwok.kubectl_binary), "--kubeconfig", str(kwok.kubeconfig), "--context", kwok.context]
    argv = [*kubectl, "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", str(older)]
    deadline = time.monotonic() + 60
    while True:
        denied = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if denied.returncode != 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert denied.returncode != 0 and "before v1.5.0 is prohibited" in denied.stderr, denied.stderr
    # The kubeconfig by path: the kubernetes client reads $KUBECONFIG once, when it is first imported.
    env = Environment(kube_factory=lambda kubeconfig, context: KubernetesApi(str(kwok.kubeconfig), context))
    tools = ToolRunner(env={**os.environ, "PATH": f"{testbin.binary('helm').parent}:{os.environ['PATH']}"})
    report = check_prerequisites(resolve_lab(LabSelection(lab="kgateway-fake-llm")), tools, kwok.context, env)
    crds = next(f for f in report.findings if f.name == "gateway-api-crds")
    assert crds.status == "fail" and "v1.3.0" in crds.detail, crds
    version = next(f for f in report.findings if f.name == "kubernetes")
    assert testbin.K8S_VERSION in version.detail
    fine = check_prerequisites(resolve_lab(LabSelection(lab="agentgateway-fake-llm")), tools, kwok.context, env)
    assert next(f for f in fine.findings if f.name == "gateway-api-crds").status == "ok"
