"""`up --mirror`, `plan --mirror`: CRDs and charts only from the mirror, verified, images imported on k3d.

The mirror is assembled with the real helm from ../shared/upstream (tests/mirror_support.py). `up` runs
against the fake k3d/helm/docker executables and the in-memory cluster (tests/doubles): installing the
mirrored charts with the real helm needs a real API server, which the real-cluster suite provides.
Images come from a fake `docker` (no Docker engine here) and go in with a fake `k3d image import`.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from doubles.world import lab_world
from helpers import envelope, invoke, json_data
from mirror_support import assemble_mirror
from typer.testing import CliRunner

from igwlab.errors import ExitCode
from igwlab.lifecycle import up
from igwlab.mirror import INDEX_NAME, MirrorError, lab_artifacts
from igwlab.render import render_lab
from igwlab.selection import LabSelection, resolve_lab


@pytest.fixture(scope="module")
def images_mirror(upstream: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return assemble_mirror("kgateway-fake-llm", tmp_path_factory.mktemp("img") / "mirror", images=True)


@pytest.fixture
def mirror(images_mirror: Path, tmp_path: Path) -> Path:
    target = tmp_path / "mirror"
    shutil.copytree(images_mirror, target)
    return target


def _no_network(url: str) -> str:
    raise AssertionError(f"up fetched {url} although a mirror was given")


def _commands(world, tool: str, *prefix: str) -> list[list[str]]:  # type: ignore[no-untyped-def]
    return [call for call in world.tools.calls(tool) if call[1 : 1 + len(prefix)] == list(prefix)]


def test_up_takes_crds_and_charts_only_from_the_mirror_and_imports_images_first(mirror: Path, tmp_path: Path) -> None:
    with lab_world(tmp_path) as world:
        env = replace(world.env, fetch=_no_network)
        result = up(world.options(mirror=mirror), env)
        assert result.run.ok, result.run.error
        installs = _commands(world, "helm", "upgrade")
        charts = [call[4] for call in installs]
        assert charts == [
            str(mirror / "charts/cr.kgateway.dev/kgateway-dev/charts/kgateway-crds-v2.0.4.tgz"),
            str(mirror / "charts/cr.kgateway.dev/kgateway-dev/charts/kgateway-v2.0.4.tgz"),
        ]
        assert all("--version" not in call and "--repo" not in call for call in installs)
        assert {ref.split("/")[0] for ref in world.cluster.applied} >= {"CustomResourceDefinition"}

        imports = _commands(world, "k3d", "image", "import")
        assert len(imports) == 1 and imports[0][-2:] == ["--cluster", "igwlab-test"]
        imported = sorted(world.tools.k3d_images("igwlab-test"))
        assert imported == [
            "cr.kgateway.dev/kgateway-dev/kgateway:v2.0.4",
            "ghcr.io/llm-d/llm-d-inference-sim:v0.6.1",
            "registry.k8s.io/gateway-api-inference-extension/epp:v0.5.1",
        ]
        events = [json.loads(line) for line in (result.record / "events.jsonl").read_text().splitlines()]  # type: ignore[operator]
        done = {e["step"]: e["time"] for e in events if e["kind"] == "done"}
        started = {e["step"]: e["time"] for e in events if e["kind"] == "start"}
        assert all(done["images"] <= started[s] for s in started if s not in ("cluster", "images"))

        again = up(world.options(mirror=mirror), env)
        assert again.run.ok and again.run.outcomes["images"].status == "skipped"
        assert len(_commands(world, "k3d", "image", "import")) == 1, "images already on the node"


def test_a_missing_or_corrupt_item_stops_up_before_anything_changes(mirror: Path, tmp_path: Path) -> None:
    rendered = render_lab(resolve_lab(LabSelection(lab="kgateway-fake-llm")))
    crds, chart = lab_artifacts(rendered)[1], lab_artifacts(rendered)[2]
    (mirror / crds.relpath()).unlink()
    (mirror / chart.relpath()).write_bytes(b"corrupt")
    image = next(mirror.glob("images/ghcr.io/**/*.tar"))
    image.write_bytes(b"corrupt too")
    with lab_world(tmp_path) as world:
        with pytest.raises(MirrorError) as caught:
            up(world.options(mirror=mirror), replace(world.env, fetch=_no_network))
        assert world.tools.calls("k3d") == [] and world.tools.calls("helm") == []
        assert world.cluster.applied == []
    error = caught.value
    assert error.exit_code == ExitCode.PREREQUISITES
    states = {item.artifact.what: item.state for item in error.items}
    assert states == {
        "Gateway API Inference Extension v0.5.1 CRDs": "missing",
        "Helm chart kgateway-crds v2.0.4": "corrupt",
        "image ghcr.io/llm-d/llm-d-inference-sim:v0.6.1": "corrupt",
    }
    assert error.fix is not None and f"--images {mirror}" in error.fix
    assert "igwlab mirror save --lab " in error.fix and "changed nothing" in (error.why or "")


def test_on_an_existing_cluster_the_mirror_gives_crds_and_charts_and_no_image_import(
    mirror: Path, tmp_path: Path
) -> None:
    for image in mirror.glob("images/**/*.tar"):
        image.unlink()  # images do not matter with --context: a broken image archive must not stop it
    with lab_world(tmp_path, context=True) as world:
        result = up(world.options(context="ctx", mirror=mirror), replace(world.env, fetch=_no_network))
        assert result.run.ok, result.run.error
        assert "images" not in result.run.outcomes
        assert all(call[4].endswith(".tgz") for call in _commands(world, "helm", "upgrade"))
        assert _commands(world, "k3d") == []


def test_plan_shows_where_each_artifact_comes_from(cli: CliRunner, mirror: Path) -> None:
    network = json_data(invoke(cli, "plan", "--lab", "kgateway-fake-llm", "--json"), "plan")
    sources = [a for step in network["steps"] for a in step.get("artifacts", [])]
    assert [a["from"] for a in sources] == ["network"] * 4
    assert sources[0]["source"].startswith("https://github.com/kubernetes-sigs/gateway-api/releases/download/")

    chart = mirror / "charts/cr.kgateway.dev/kgateway-dev/charts/kgateway-v2.0.4.tgz"
    data = yaml.safe_load((mirror / INDEX_NAME).read_text())
    data["artifacts"] = [e for e in data["artifacts"] if not e["file"].endswith("kgateway-v2.0.4.tgz")]
    (mirror / INDEX_NAME).write_text(yaml.safe_dump(data))
    result = invoke(cli, "plan", "--lab", "kgateway-fake-llm", "--mirror", str(mirror), "--json")
    plan = json_data(result, "plan")
    steps = {step["id"]: step for step in plan["steps"]}
    assert steps["images"]["wave"] == 2 and steps["images"]["command"][:3] == ["k3d", "image", "import"]
    assert {s for s in steps if "cluster" in steps[s]["depends_on"]} == {"images"}
    crds = steps["gateway-api-crds"]["artifacts"][0]
    assert crds["from"] == "mirror" and crds["file"].startswith(str(mirror / "crds"))
    missing = steps["provider-kgateway"]["artifacts"][0]
    assert missing["from"] == "mirror" and missing["indexed"] is False and missing["file"] is None
    assert str(chart) not in result.stdout

    text = invoke(cli, "plan", "--lab", "kgateway-fake-llm", "--mirror", str(mirror))
    flat = " ".join(text.stdout.split())
    assert f"mirror {mirror}: CRDs, charts and images come from its files" in flat and "1 MISSING" in flat
    # Two CRD bundles, one chart, two images: the images of the chart the index lacks are not known yet.
    assert flat.count("from mirror:") == 2 + 1 + 2
    assert "MISSING from the mirror" in flat


@pytest.mark.usefixtures("host_ports_free")
def test_up_dry_run_with_igwlab_mirror_describes_mirror_files(
    cli: CliRunner, mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from doubles.faketools import FakeTools
    from doubles.world import free_port, write_lab

    fakes = FakeTools.install(tmp_path / "fake")
    monkeypatch.setenv("PATH", fakes.env()["PATH"])
    monkeypatch.setenv("IGWLAB_MIRROR", str(mirror))
    lab = str(write_lab(tmp_path, "kgateway-fake-llm", free_port(), context=False))  # free host ports
    result = invoke(cli, "up", "--lab", lab, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    steps = {step["step"]: step for step in json_data(result, "up")["steps"]}
    assert steps["images"]["status"] == "dry-run"
    assert not fakes.calls("docker")[1:] and not [c for c in fakes.calls("k3d") if c[1] == "image"]

    (next(mirror.glob("crds/**/*.yaml"))).write_text("kind: Nothing\n")
    failed = envelope(invoke(cli, "up", "--lab", lab, "--json"), "up")
    assert failed["error"]["code"] == "mirror-incomplete" and failed["data"]["items"][0]["state"] == "corrupt"
    assert failed["data"]["fetch_with"] == f"igwlab mirror save --lab {lab} --images {mirror}"
    broken = invoke(cli, "up", "--lab", lab)
    assert broken.exit_code == ExitCode.PREREQUISITES
    assert "corrupt" in broken.stderr and f"igwlab mirror save --lab {lab} --images" in " ".join(broken.stderr.split())
    assert not [c for c in fakes.calls("k3d") if c[1:3] == ["cluster", "create"]]


@pytest.mark.realcluster
def test_the_real_helm_installs_mirrored_packages_and_a_rerun_sees_them_deployed(
    images_mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a real API server (kwok): the mirror's CRD bundle applied server-side and Established, the
    mirror's chart package installed by the real helm, and a re-run recognizing both as done (helm
    lists the chart with Chart.yaml's version verbatim: `kgateway-crds-v2.0.4`)."""
    from kwokcluster import KwokCluster
    from mirror_support import helm_binary, helm_env

    from igwlab.lifecycle import lab_sources, prepare, real_kube
    from igwlab.steps import StepAction, UpContext
    from igwlab.tools.proc import ToolRunner

    cluster = KwokCluster.create(f"mirror-{uuid.uuid4().hex[:8]}", tmp_path / "kwok")
    try:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        env = {**helm_env(tmp_path, helm_binary()), "KUBECONFIG": str(cluster.kubeconfig)}
        selection = LabSelection(lab="kgateway-fake-llm")
        resolved, rendered, plan = prepare(selection, None, cluster.context, images_mirror)
        sources = lab_sources(rendered, selection, cluster.context, images_mirror)
        ctx = UpContext(
            resolved, rendered, plan, ToolRunner(env=env), None, real_kube, _no_network,
            context=cluster.context, timeout_s=120, sources=sources, poll_s=0.1,
        )  # fmt: skip
        steps = {step.id: step for step in plan.steps}
        for step_id in ("gateway-api-crds", "provider-kgateway-crds"):
            action = StepAction(ctx, steps[step_id])
            assert not action.is_done()
            action.apply()
            action.wait()
            assert StepAction(ctx, steps[step_id]).is_done(), f"a re-run would repeat {step_id}"
        listed = ToolRunner(env=env).run(["helm", "list", "-A", "-o", "json"], timeout=60).stdout
        assert [(r["name"], r["chart"]) for r in json.loads(listed)] == [("kgateway-crds", "kgateway-crds-v2.0.4")]
        crds = cluster.kubectl("get", "crd", "-o", "name")
        assert "gateways.gateway.networking.k8s.io" in crds and "backends.gateway.kgateway.dev" in crds
    finally:
        cluster.delete()
