"""CRDs already on a cluster (`--context`, or a reused k3d cluster) are read, not trusted by name: older
bundles are upgraded with a note; newer ones, another channel, or an older bundle under Gateway API's
safe-upgrades admission policy are refused (exit 3) with the way out.

On a real API server (a kwok cluster from tests/testbin, shared by this module's tests): the real upstream
CRD bundles of ../shared/upstream are applied as a user's earlier install left them (where upstream has
no such bundle, a real one with its version or channel annotation changed), then `igwlab up --context …
--mirror …` and `igwlab doctor --context …` run as a user runs them. Each test leaves the cluster without
the CRDs and policies it made, waiting until the API server has really removed them.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testbin
import yaml
from doubles.fakecluster import crd_manifest
from doubles.world import lab_world
from kwokcluster import KwokCluster
from reallab import RealLab, Result

from igwlab.catalog import load_catalog
from igwlab.crds import GATEWAY_CHANNEL_ANNOTATION, GATEWAY_VERSION_ANNOTATION, SAFE_UPGRADES_POLICY
from igwlab.errors import ExitCode, PrerequisiteError
from igwlab.lifecycle import up

CATALOG = load_catalog()
GIE_ANNOTATION = "inference.networking.k8s.io/bundle-version"
UPSTREAM = Path(__file__).resolve().parent.parent.parent / "shared" / "upstream"
SAFE_UPGRADES = Path(__file__).parent / "data" / "gateway-api-v1.5.1-safe-upgrades.yaml"
CRD_GROUPS = ("gateway.networking.k8s.io", "inference.networking.k8s.io", "inference.networking.x-k8s.io")
EXIT_PREREQUISITES = int(ExitCode.PREREQUISITES)


# -- only on the fake -------------------------------------------------------------------------------------


def test_a_reused_k3d_cluster_is_checked_too(tmp_path: Path) -> None:
    # Fake: a reused k3d cluster needs k3d and a container engine, which this machine does not have.
    with lab_world(tmp_path) as world:
        assert up(world.options(), world.env).run.ok
        for name in CATALOG.gie_releases["v0.5.1"].crds:
            world.cluster.apply(crd_manifest(name, {GIE_ANNOTATION: "v1.1.0"}))
        with pytest.raises(PrerequisiteError) as caught:
            up(world.options(), world.env)
    assert "newer" in caught.value.what


# -- on a real API server ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kwok(real_binaries: None, upstream: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KwokCluster]:
    """One kwok cluster for the module, with nodes for the one test that brings a lab all the way up."""
    cluster = KwokCluster.create(f"igwlab-crds-{uuid.uuid4().hex[:6]}", tmp_path_factory.mktemp("kwok"), nodes=2)
    try:
        yield cluster
    finally:
        cluster.delete()


@pytest.fixture
def cluster(kwok: KwokCluster) -> Iterator[KwokCluster]:
    """The shared cluster; afterwards the CRDs and policies the test made are gone (waited on)."""
    assert not _lab_crds(kwok), f"a test before left CRDs: {sorted(_lab_crds(kwok))}"
    try:
        yield kwok
    finally:
        _clean(kwok)


@pytest.fixture
def lab(cluster: KwokCluster, real_mirror: Path, tmp_path: Path) -> Iterator[RealLab]:
    """A lab on the shared cluster for the tests whose `up` stops before it changes anything."""
    with RealLab.on(cluster, tmp_path, real_mirror, data_path=False) as real:
        yield real


@pytest.fixture
def served_lab(cluster: KwokCluster, real_mirror: Path, tmp_path: Path) -> Iterator[RealLab]:
    """A lab on the shared cluster with the real data path, for an `up` that goes all the way."""
    with RealLab.on(cluster, tmp_path, real_mirror) as real:
        yield real


def _lab_crds(kwok: KwokCluster) -> dict[str, dict[str, Any]]:
    """The Gateway API and inference CRDs on the cluster, by name."""
    items = json.loads(kwok.kubectl("get", "customresourcedefinitions", "-o", "json"))["items"]
    return {c["metadata"]["name"]: c for c in items if c["spec"]["group"] in CRD_GROUPS}


def _clean(kwok: KwokCluster) -> None:
    """Delete the policy and every lab CRD, waiting until each is really gone (CRD deletion finishes
    asynchronously, after the API server has removed the custom resources)."""
    kwok.kubectl(
        "delete",
        "validatingadmissionpolicybindings,validatingadmissionpolicies",
        SAFE_UPGRADES_POLICY,
        "--ignore-not-found",
        "--wait=true",
    )
    kwok.delete_crds(sorted(_lab_crds(kwok)))


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _bundle(*parts: str) -> list[dict[str, Any]]:
    """The real upstream CRDs of ../shared/upstream/<parts>/ (e.g. "gateway-api", "v1.2.1", "standard")."""
    files = sorted(UPSTREAM.joinpath(*parts).glob("*networking*.yaml"))
    assert files, f"no upstream CRD files under {UPSTREAM.joinpath(*parts)}"
    return [d for path in files for d in _documents(path)]


def _annotated(documents: list[dict[str, Any]], **annotations: str) -> list[dict[str, Any]]:
    """The same CRDs with their bundle annotations changed (keys: version, channel, gie)."""
    keys = {"version": GATEWAY_VERSION_ANNOTATION, "channel": GATEWAY_CHANNEL_ANNOTATION, "gie": GIE_ANNOTATION}
    for document in documents:
        document["metadata"].setdefault("annotations", {}).update({keys[k]: v for k, v in annotations.items()})
    return documents


def _install(kwok: KwokCluster, documents: list[dict[str, Any]]) -> None:
    """Apply as a user's earlier `kubectl apply --server-side -f <bundle>` did, and wait until Established."""
    kwok.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(documents))
    names = [
        f"customresourcedefinitions/{d['metadata']['name']}"
        for d in documents
        if d["kind"] == "CustomResourceDefinition"
    ]
    kwok.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names, timeout_s=90)


def _versions(kwok: KwokCluster) -> dict[str, tuple[str | None, str | None, str]]:
    """Each lab CRD's (bundle version, channel, resourceVersion): a refusal changes none of them."""
    found = {}
    for name, crd in _lab_crds(kwok).items():
        annotations = crd["metadata"].get("annotations") or {}
        version = annotations.get(GATEWAY_VERSION_ANNOTATION) or annotations.get(GIE_ANNOTATION)
        found[name] = (version, annotations.get(GATEWAY_CHANNEL_ANNOTATION), crd["metadata"]["resourceVersion"])
    return found


def _refused(lab: RealLab, preset: str) -> Result:
    """`igwlab up --lab PRESET` refused with exit 3, and the cluster left as it was."""
    before, crds_before, releases_before = lab.inventory(), _versions(lab.cluster), lab.releases()
    result = lab.igwlab("up", "--lab", preset, "--timeout", "60")
    assert result.returncode == EXIT_PREREQUISITES, result.output
    assert "created nothing" in result.stderr, result.output
    assert lab.inventory() == before and lab.releases() == releases_before
    assert _versions(lab.cluster) == crds_before, "a refused up changed the cluster's CRDs"
    return result


def _doctor(lab: RealLab, preset: str) -> tuple[int, dict[str, dict[str, Any]]]:
    """`igwlab doctor --context … --lab PRESET --json`: its exit code and its findings by name."""
    result = lab.igwlab("doctor", "--lab", preset, "--json")
    data = result.json()
    findings = (data["data"] or (data["error"] or {}).get("data") or {})["findings"]
    return result.returncode, {f["name"]: f for f in findings}


@pytest.mark.realcluster
@pytest.mark.realpicker  # up ends with a completion through the gateway: the real data path answers it
def test_older_crds_on_the_cluster_are_upgraded_with_a_note(served_lab: RealLab) -> None:
    """Gateway API v1.2.1 and GIE v1.0.0, as their releases installed them: `up` of a Gateway API v1.5.1,
    GIE v1.5.0 lab upgrades both (GIE v1.2's InferenceModelRewrite says `split` where v1.3+ says `targets`:
    the lab needs its own), says so, and brings the lab up."""
    lab = served_lab
    _install(lab.cluster, _bundle("gateway-api", "v1.2.1", "standard") + _bundle("gie", "v1.0.0"))
    code, findings = _doctor(lab, "agentgateway-fake-llm")
    assert code == 0, findings
    for name, older in (("gateway-api-crds", "v1.2.1"), ("inference-crds", "v1.0.0")):
        assert findings[name]["status"] == "warn" and "upgrades" in findings[name]["detail"], findings[name]
        assert older in findings[name]["detail"], findings[name]

    result = lab.igwlab("up", "--lab", "agentgateway-fake-llm", "--timeout", "180", "--json")
    assert result.returncode == 0, result.output + lab.diagnostics()
    notes = {note["check"]: note["detail"] for note in result.json()["data"]["notes"]}
    assert set(notes) == {"gateway-api-crds", "inference-crds"} and "v1.2.1" in notes["gateway-api-crds"], notes
    assert "note: gateway-api-crds: up upgrades" in result.stderr and "v1.2.1" in result.stderr, result.output
    assert "note: inference-crds: up upgrades" in result.stderr, result.output
    versions = _versions(lab.cluster)
    for name in CATALOG.gateway_api_standard_crds:
        assert versions[name][:2] == ("v1.5.1", "standard"), (name, versions[name])
    for name in CATALOG.gie_releases["v1.5.0"].crds:
        assert versions[name][0] == "v1.5.0", (name, versions[name])
    # The upgraded CRDs serve what the lab's objects use: the InferencePool igwlab made is there.
    pools = json.loads(lab.cluster.kubectl("get", "inferencepools.inference.networking.k8s.io", "-A", "-o", "json"))
    assert pools["items"], "the lab's InferencePool is missing after the upgrade"

    # teardown --crds returns once the lab's CRDs are gone, the admission policy their bundle brought too;
    # the user's own CRD of v1.0.0 that v1.5.0 no longer has stays.
    down = lab.run("teardown", "--yes", "--crds")
    assert down.returncode == 0, down.output
    assert set(_lab_crds(lab.cluster)) == {"inferencepools.inference.networking.x-k8s.io"}, down.output
    left = lab.cluster.kubectl("get", "validatingadmissionpolicies,validatingadmissionpolicybindings", "-o", "name")
    assert not left.strip(), f"teardown --crds left {left}"


@pytest.mark.realcluster
def test_newer_inference_crds_are_refused_with_the_way_out(lab: RealLab) -> None:
    """GIE v1.6.0's CRDs on the cluster; the lab's v1.5.0 would downgrade them."""
    _install(lab.cluster, _bundle("gie", "v1.6.0"))
    code, findings = _doctor(lab, "agentgateway-fake-llm")
    assert code == EXIT_PREREQUISITES and findings["inference-crds"]["status"] == "fail", findings
    result = _refused(lab, "agentgateway-fake-llm")
    assert "newer" in result.stderr and "inferencepools.inference.networking.k8s.io at v1.6.0" in result.stderr
    assert "--cluster NAME" in result.stderr, result.output


@pytest.mark.realcluster
def test_the_alpha_lab_refuses_a_cluster_with_v1_inference_crds_of_the_same_names(lab: RealLab) -> None:
    """GIE v1.0-v1.4 shipped an annotated inferencepools.inference.networking.x-k8s.io; v0.5.1's would replace it."""
    _install(lab.cluster, _bundle("gie", "v1.0.0"))
    result = _refused(lab, "kgateway-fake-llm")
    assert "inferencepools.inference.networking.x-k8s.io at v1.0.0" in result.stderr, result.output


@pytest.mark.realcluster
def test_another_gateway_api_channel_is_refused(lab: RealLab) -> None:
    """The lab's own Gateway API version, but marked experimental (upstream has no v1.5.1 experimental here)."""
    _install(lab.cluster, _annotated(_bundle("gateway-api", "v1.5.1", "standard"), channel="experimental"))
    result = _refused(lab, "agentgateway-fake-llm")
    assert "another channel" in result.stderr and "experimental" in result.stderr, result.output


@pytest.mark.realcluster
def test_older_crds_where_the_providers_chart_installs_them_are_refused_with_the_command(lab: RealLab) -> None:
    """Helm installs a chart's CRDs only where none exist: Envoy Gateway would run on the old ones."""
    _install(lab.cluster, _bundle("gateway-api", "v1.2.1", "experimental"))
    result = _refused(lab, "envoy-gateway-fake-llm")
    assert "Helm does not upgrade CRDs" in result.stderr and "v1.2.1" in result.stderr, result.output
    assert "kubectl apply --server-side" in result.stderr and "experimental-install.yaml" in result.stderr


@pytest.mark.realcluster
def test_the_safe_upgrades_policy_denies_the_older_bundle_and_igwlab_says_so_first(lab: RealLab) -> None:
    """Gateway API v1.5.1's standard install (CRDs and the safe-upgrades policy) on the cluster; the
    kgateway lab installs v1.3.0, which the policy denies whether the CRDs exist or not."""
    kwok = lab.cluster
    _install(kwok, _bundle("gateway-api", "v1.5.1", "standard"))
    kwok.kubectl("apply", "--server-side", "-f", str(SAFE_UPGRADES))
    older = UPSTREAM / "gateway-api" / "v1.3.0" / "standard" / "gateway.networking.k8s.io_httproutes.yaml"
    # The premise, on the real API server: the policy rejects the older bundle (a server-side dry run goes
    # through admission; the policy is in force once the API server has loaded it, which nothing announces:
    # the dry run is retried until it is denied).
    deadline = time.monotonic() + 60
    while True:
        denied = _dry_run(kwok, "apply", "--server-side", "--force-conflicts", "-f", str(older))
        if denied.returncode != 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert denied.returncode != 0 and "before v1.5.0 is prohibited" in denied.stderr, denied.stderr

    code, findings = _doctor(lab, "kgateway-fake-llm")
    assert code == EXIT_PREREQUISITES and findings["gateway-api-crds"]["status"] == "fail", findings
    assert testbin.K8S_VERSION in findings["kubernetes"]["detail"], findings["kubernetes"]
    result = _refused(lab, "kgateway-fake-llm")
    # The policy first: deleting the newer CRDs alone would not let the older bundle in.
    assert SAFE_UPGRADES_POLICY in result.stderr and "v1.3.0" in result.stderr, result.output
    assert "httproutes.gateway.networking.k8s.io at v1.5.1" in result.stderr, result.output
    assert "--provider agentgateway" in result.stderr, result.output
    assert f"validatingadmissionpolicybinding {SAFE_UPGRADES_POLICY}) and those CRDs" in result.stderr
    # A lab on Gateway API v1.5+ fits the same cluster.
    code, findings = _doctor(lab, "agentgateway-fake-llm")
    assert findings["gateway-api-crds"]["status"] == "ok", findings

    # Only the CRDs deleted: the API server still denies creating the older ones, and igwlab still says why.
    kwok.delete_crds(sorted(_lab_crds(kwok)))
    denied = _dry_run(kwok, "create", "-f", str(older))
    assert denied.returncode != 0 and "before v1.5.0 is prohibited" in denied.stderr, denied.stderr
    result = _refused(lab, "kgateway-fake-llm")
    assert SAFE_UPGRADES_POLICY in result.stderr and "and those CRDs" not in result.stderr, result.output


def _dry_run(kwok: KwokCluster, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl ARGS --dry-run=server`: through the API server's admission, changing nothing."""
    argv = [str(kwok.kubectl_binary), "--kubeconfig", str(kwok.kubeconfig), "--context", kwok.context, *args]
    return subprocess.run([*argv, "--dry-run=server"], capture_output=True, text=True, timeout=60, check=False)
