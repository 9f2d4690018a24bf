"""`igwlab mirror save/check`: the real helm pulls the real chart packages from a chart repository and an
OCI registry stand-in on 127.0.0.1 (tests/mirror_support.py), CRD bundles come over real HTTP."""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helpers import envelope, invoke, json_data, render
from mirror_support import (
    LocalFetcher,
    assemble_mirror,
    chart_package,
    crd_bundle,
    every_preset_selection,
    helm_binary,
    helm_env,
    upstream_stand_in,
)
from typer.testing import CliRunner

import igwlab.mirror as mirror_module
from igwlab.errors import ExitCode, IgwlabError, UsageError
from igwlab.mirror import (
    INDEX_NAME,
    Fetcher,
    Mirror,
    chart_artifact,
    check,
    image_artifact,
    lab_artifacts,
    manifest_images,
    normalize_image,
    object_images,
    save,
    save_command,
)
from igwlab.render import Rendered
from igwlab.selection import LabSelection
from igwlab.tools.proc import ToolRunner


@pytest.fixture(scope="session")
def helm() -> Path:
    return helm_binary()


@pytest.fixture(scope="session")
def kgateway_mirror(helm: Path, upstream: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return assemble_mirror("kgateway-fake-llm", tmp_path_factory.mktemp("kgw") / "mirror", helm=helm)


@pytest.fixture
def mirror_copy(kgateway_mirror: Path, tmp_path: Path) -> Path:
    target = tmp_path / "mirror"
    shutil.copytree(kgateway_mirror, target)
    return target


@pytest.fixture
def helm_on_path(helm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The real helm for commands run in-process, its caches under tmp_path."""
    env = helm_env(tmp_path, helm)
    for name in ("PATH", "HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME", "HELM_REGISTRY_CONFIG"):
        monkeypatch.setenv(name, env[name])
    return env


def _index(root: Path) -> dict[str, dict[str, object]]:
    data = yaml.safe_load((root / INDEX_NAME).read_text())
    return {f"{e['kind']}:{e['source']}@{e['version']}": e for e in data["artifacts"]}


# -- what a lab needs ---------------------------------------------------------------------------------


def test_every_chart_and_crd_bundle_of_a_lab_is_an_artifact_once() -> None:
    rendered = render(lab="multi-model", addons=("observability",))
    artifacts = lab_artifacts(rendered)
    charts = {a.source.rsplit("/", 1)[-1] for a in artifacts if a.kind == "chart"}
    assert charts == {"base", "istiod", "inferencepool", "body-based-routing", "prometheus", "grafana"}
    assert len(artifacts) == len({a.key for a in artifacts}), "two pools share one inferencepool chart"
    assert [a.kind for a in artifacts][:2] == ["crds", "crds"]
    prometheus = next(a for a in artifacts if a.source == "prometheus")
    assert prometheus.repo == "https://prometheus-community.github.io/helm-charts"


def test_objects_name_their_images_and_the_kind_of_fault_is_covered() -> None:
    assert object_images(render(lab="kgateway-fake-llm")) == [
        "ghcr.io/llm-d/llm-d-inference-sim:v0.6.1",
        "registry.k8s.io/gateway-api-inference-extension/epp:v0.5.1",
    ]
    assert "ghcr.io/berriai/litellm:main-v1.83.14-stable" in object_images(
        render(lab="agentgateway-fake-llm", addons=("litellm",))
    )
    assert object_images(render(lab="agentgateway-vllm-cpu")) == [
        "public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v0.9.3"
    ]
    cron = {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "initContainers": [{"name": "a", "image": "busybox"}], "containers": [{"name": "b", "image": "busybox"}],
        "ephemeralContainers": [{"name": "c", "image": "x/y@sha256:" + "0" * 64}]}}}}}}  # fmt: skip
    assert manifest_images([cron, None, "text"]) == ["busybox", "x/y@sha256:" + "0" * 64]
    image = {"repository": "ghcr.io/nginx/nginx-gateway-fabric/nginx", "tag": "2.6.0", "pullPolicy": "IfNotPresent"}
    proxy = {"kind": "NginxProxy", "spec": {"kubernetes": {"deployment": {"container": {"image": image}}}}}
    schema = {"kind": "CustomResourceDefinition", "spec": {"image": {"properties": {"repository": {"type": "string"}}}}}
    assert manifest_images([proxy, schema]) == ["ghcr.io/nginx/nginx-gateway-fabric/nginx:2.6.0"]
    assert manifest_images([{"image": {"registry": "cr.dev/", "repository": "a", "tag": "v1"}}]) == ["cr.dev/a:v1"]


@pytest.mark.parametrize(
    ("ref", "full", "file"),
    [
        ("busybox", "docker.io/library/busybox:latest", "images/docker.io/library/busybox/latest.tar"),
        ("grafana/grafana:12.1.1", "docker.io/grafana/grafana:12.1.1", "images/docker.io/grafana/grafana/12.1.1.tar"),
        ("ghcr.io/llm-d/sim:v0.6.1", "ghcr.io/llm-d/sim:v0.6.1", "images/ghcr.io/llm-d/sim/v0.6.1.tar"),
        ("localhost:5000/a/b", "localhost:5000/a/b:latest", "images/localhost_5000/a/b/latest.tar"),
        (
            "x/y@sha256:" + "a" * 64,
            "docker.io/x/y@sha256:" + "a" * 64,
            "images/docker.io/x/y/sha256-" + "a" * 64 + ".tar",
        ),
    ],
)
def test_image_references_normalize_and_get_their_own_file(ref: str, full: str, file: str) -> None:
    assert normalize_image(ref) == full
    assert image_artifact(ref).relpath() == file


def test_mirror_file_paths_come_from_the_source_and_never_leave_the_directory() -> None:
    crds = lab_artifacts(render(lab="kgateway-fake-llm"))[0]
    assert (
        crds.relpath() == "crds/github.com/kubernetes-sigs/gateway-api/releases/download/v1.3.0/standard-install.yaml"
    )
    repo_chart = next(a for a in lab_artifacts(render(lab="istio-fake-llm")) if a.source == "istiod")
    assert repo_chart.relpath() == "charts/istio-release.storage.googleapis.com/charts/istiod-1.30.1.tgz"
    hostile = image_artifact("../../../etc/passwd:..")
    assert ".." not in Path(hostile.relpath()).parts


def test_the_fetch_command_names_the_lab_as_the_user_picked_it() -> None:
    selection = LabSelection(provider="istio", workload="vllm-cpu", addons=("observability",))
    command = save_command(selection, Path("my mirror"), images=True)
    assert command == (
        "igwlab mirror save --provider istio --workload vllm-cpu --with observability --images 'my mirror'"
    )


# -- the index ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda d: d["artifacts"][0].update(file="../../outside.yaml"), "relative path inside"),
        (lambda d: d["artifacts"][0].update(file="/etc/passwd"), "relative path inside"),
        (lambda d: d["artifacts"][0].update(sha256="abc"), "64 lowercase hex"),
        (lambda d: d.update(igwlab_mirror_version=2), "igwlab_mirror_version"),
        (lambda d: d["artifacts"][0].pop("sha256"), "sha256"),
    ],
)
def test_an_invalid_index_is_refused_with_the_field_exit_2(
    cli: CliRunner,
    mirror_copy: Path,
    mutate,
    problem: str,  # type: ignore[no-untyped-def]
) -> None:
    data = yaml.safe_load((mirror_copy / INDEX_NAME).read_text())
    mutate(data)
    (mirror_copy / INDEX_NAME).write_text(yaml.safe_dump(data))
    result = invoke(cli, "mirror", "check", "--lab", "kgateway-fake-llm", str(mirror_copy))
    assert result.exit_code == ExitCode.USAGE
    assert problem in " ".join(result.stderr.split()) and "Traceback" not in result.stderr
    with pytest.raises(UsageError):
        Mirror.open(mirror_copy)


def test_a_symlink_out_of_the_mirror_is_not_followed(mirror_copy: Path, tmp_path: Path) -> None:
    rendered = render(lab="kgateway-fake-llm")
    artifact = lab_artifacts(rendered)[0]
    target = mirror_copy / artifact.relpath()
    outside = tmp_path / "outside.yaml"
    shutil.copy(target, outside)
    target.unlink()
    target.symlink_to(outside)
    with pytest.raises(IgwlabError, match="outside"):
        Mirror.open(mirror_copy).read_verified(artifact, fix="")


# -- save: the real helm, real HTTP, the real chart packages -----------------------------------------------


def test_save_fetches_crds_and_charts_as_upstream_serves_them(kgateway_mirror: Path, upstream: Path) -> None:
    index = _index(kgateway_mirror)
    rendered = render(lab="kgateway-fake-llm")
    assert set(index) == {f"{a.kind}:{a.source}@{a.version}" for a in lab_artifacts(rendered)}
    for entry in index.values():
        path = kgateway_mirror / str(entry["file"])
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"] and path.stat().st_size == entry["size"]
    bundle = kgateway_mirror / lab_artifacts(rendered)[0].relpath()
    assert bundle.read_bytes() == crd_bundle(rendered.crd_bundles[0].url, upstream)
    kinds = [d["kind"] for d in yaml.safe_load_all(bundle.read_text()) if d]
    assert kinds == ["CustomResourceDefinition"] * 5
    for release in rendered.releases:  # pulled over OCI by the real helm: byte for byte the upstream package
        entry = index[f"chart:{release.chart}@{release.version}"]
        package = chart_package(release.chart.rsplit("/", 1)[-1], release.version, upstream)
        assert (kgateway_mirror / str(entry["file"])).read_bytes() == package.read_bytes()
    controller = index["chart:oci://cr.kgateway.dev/kgateway-dev/charts/kgateway@v2.0.4"]
    assert controller["images"] == ["cr.kgateway.dev/kgateway-dev/kgateway:v2.0.4"]


def test_gateway_api_v1_5_bundle_carries_its_admission_policy(upstream: Path) -> None:
    url = render(lab="nginx-fake-llm").crd_bundles[0].url
    kinds = [d["kind"] for d in yaml.safe_load_all(crd_bundle(url, upstream)) if d]
    assert kinds[-2:] == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    assert kinds.count("CustomResourceDefinition") == 5
    gie = [
        d["metadata"]["name"] for d in yaml.safe_load_all(crd_bundle(render(lab="nginx-fake-llm").crd_bundles[1].url))
    ]
    assert "inferencepoolimports.inference.networking.x-k8s.io" in gie


@pytest.fixture(scope="session")
def every_preset_mirror(helm: Path, upstream: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return assemble_mirror(every_preset_selection(), tmp_path_factory.mktemp("all") / "mirror", helm=helm)


@pytest.mark.parametrize("selection", every_preset_selection(), ids=lambda s: "+".join([s.lab or "", *s.addons]))
def test_one_mirror_serves_every_preset_and_add_on(every_preset_mirror: Path, selection: LabSelection) -> None:
    report = check(render(**vars(selection)), every_preset_mirror, selection=selection)
    assert report.ok, report.as_dict()


def test_charts_record_the_images_their_templates_name_with_igwlab_values(every_preset_mirror: Path) -> None:
    images = {
        str(entry["source"]).rsplit("/", 1)[-1]: list(entry.get("images") or [])  # type: ignore[call-overload]
        for entry in _index(every_preset_mirror).values()
        if entry["kind"] == "chart"
    }
    assert images["inferencepool"] == ["registry.k8s.io/gateway-api-inference-extension/epp:v1.5.0"]
    assert any(ref.startswith("docker.io/grafana/grafana:") for ref in images["grafana"]), images["grafana"]
    assert images["prometheus"] and not any("alertmanager" in ref for ref in images["prometheus"]), "turned off"
    assert images["agentgateway-crds"] == []
    # The data-plane image NGINX Gateway Fabric's controller starts per Gateway, from its NginxProxy.
    assert "ghcr.io/nginx/nginx-gateway-fabric/nginx:2.6.0" in images["nginx-gateway-fabric"]


def test_saving_again_keeps_what_is_there_without_running_helm(
    mirror_copy: Path, helm: Path, upstream: Path, tmp_path: Path
) -> None:
    before = (mirror_copy / INDEX_NAME).read_text()
    rendered = render(lab="kgateway-fake-llm")
    commands: list[list[str]] = []
    tools = ToolRunner(env=helm_env(tmp_path, helm), recorder=lambda result: commands.append(list(result.argv)))
    with upstream_stand_in([rendered], tmp_path / "work", ToolRunner(env=helm_env(tmp_path, helm)), upstream) as st:
        report = save(rendered, mirror_copy, fetcher=LocalFetcher(st, tools))
    assert [item.action for item in report.items] == ["kept"] * 4
    assert commands == [], "no helm pull, and no helm template: the images of the charts are remembered"
    assert (mirror_copy / INDEX_NAME).read_text() == before
    (mirror_copy / ".chart-images.json").write_text("{not json")
    with upstream_stand_in([rendered], tmp_path / "work2", ToolRunner(env=helm_env(tmp_path, helm)), upstream) as st:
        save(rendered, mirror_copy, fetcher=LocalFetcher(st, tools))
    assert [argv[:2] for argv in commands] == [["helm", "template"]] * 2, "a broken cache only costs time"
    assert (mirror_copy / INDEX_NAME).read_text() == before


def test_a_lost_or_damaged_file_is_fetched_again(mirror_copy: Path, helm: Path, tmp_path: Path) -> None:
    rendered = render(lab="kgateway-fake-llm")
    crds, chart = lab_artifacts(rendered)[0], lab_artifacts(rendered)[3]
    (mirror_copy / crds.relpath()).unlink()
    (mirror_copy / chart.relpath()).write_bytes(b"not a chart")
    report = check(rendered, mirror_copy, selection=LabSelection(lab="kgateway-fake-llm"))
    assert {i.artifact.source: i.state for i in report.items if i.state != "present"} == {
        crds.source: "missing",
        chart.source: "corrupt",
    }
    saved = _save_locally(rendered, mirror_copy, helm, tmp_path)
    assert sorted(i.action for i in saved.items) == ["kept", "kept", "refreshed", "refreshed"]
    assert check(rendered, mirror_copy, selection=LabSelection(lab="kgateway-fake-llm")).ok


def test_a_source_serving_other_bytes_than_first_saved_is_refused_unless_refresh(
    mirror_copy: Path, helm: Path, tmp_path: Path
) -> None:
    rendered = render(lab="kgateway-fake-llm")
    crds = lab_artifacts(rendered)[0]
    (mirror_copy / crds.relpath()).unlink()
    original = _index(mirror_copy)[f"crds:{crds.source}@{crds.version}"]["sha256"]

    class Changed(LocalFetcher):
        def download(self, url, dest, on_bytes):  # type: ignore[no-untyped-def]
            super().download(url, dest, on_bytes)
            dest.write_bytes(dest.read_bytes() + b"\n# changed upstream\n")

    with pytest.raises(IgwlabError, match="recorded") as caught:
        _save_locally(rendered, mirror_copy, helm, tmp_path, fetcher_class=Changed)
    assert "--refresh" in (caught.value.fix or "")
    assert not (mirror_copy / crds.relpath()).exists()
    assert _index(mirror_copy)[f"crds:{crds.source}@{crds.version}"]["sha256"] == original
    _save_locally(rendered, mirror_copy, helm, tmp_path, fetcher_class=Changed, refresh=True)
    assert _index(mirror_copy)[f"crds:{crds.source}@{crds.version}"]["sha256"] != original


def test_an_error_page_instead_of_a_crd_bundle_is_not_saved(tmp_path: Path, helm: Path) -> None:
    class ErrorPage(LocalFetcher):
        def download(self, url, dest, on_bytes):  # type: ignore[no-untyped-def]
            dest.write_text("<html><body>Please sign in</body></html>\n")

    rendered = render(lab="kgateway-fake-llm")
    with pytest.raises(IgwlabError, match="served no CustomResourceDefinition"):
        _save_locally(rendered, tmp_path / "m", helm, tmp_path, fetcher_class=ErrorPage)
    assert not (tmp_path / "m" / INDEX_NAME).exists() or _index(tmp_path / "m") == {}
    assert not [p for p in (tmp_path / "m").rglob("*") if p.is_file() and p.name != ".mirror.lock"]


def test_an_unreachable_source_fails_with_what_to_do(tmp_path: Path, helm: Path) -> None:
    class Unreachable(LocalFetcher):
        def download(self, url, dest, on_bytes):  # type: ignore[no-untyped-def]
            Fetcher.download(self, "http://127.0.0.1:9/standard-install.yaml", dest, on_bytes)

    with pytest.raises(IgwlabError, match="could not download") as caught:
        _save_locally(render(lab="kgateway-fake-llm"), tmp_path / "m", helm, tmp_path, fetcher_class=Unreachable)
    assert caught.value.exit_code == ExitCode.FAILED and "what it saved is kept" in (caught.value.fix or "")


def test_labs_saved_at_once_into_one_directory_share_one_index(helm: Path, upstream: Path, tmp_path: Path) -> None:
    labs = [render(lab="kgateway-fake-llm"), render(lab="nginx-fake-llm")]
    env = helm_env(tmp_path, helm)
    tools = ToolRunner(env=env)
    errors: list[BaseException] = []
    with upstream_stand_in(labs, tmp_path / "work", tools, upstream) as stand_in:

        def run(rendered: Rendered) -> None:
            try:
                save(rendered, tmp_path / "shared", fetcher=LocalFetcher(stand_in, tools))
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=run, args=(lab,)) for lab in labs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    expected = {f"{a.kind}:{a.source}@{a.version}" for lab in labs for a in lab_artifacts(lab)}
    assert set(_index(tmp_path / "shared")) == expected


def _save_locally(  # type: ignore[no-untyped-def]
    rendered: Rendered, root: Path, helm: Path, tmp_path: Path, fetcher_class=LocalFetcher, refresh: bool = False
):
    from mirror_support import UPSTREAM

    tools = ToolRunner(env=helm_env(tmp_path, helm))
    with upstream_stand_in([rendered], tmp_path / "work", tools, UPSTREAM) as stand_in:
        return save(rendered, root, fetcher=fetcher_class(stand_in, tools), refresh=refresh)


# -- the commands ----------------------------------------------------------------------------------------


@pytest.fixture
def local_upstream(
    helm_on_path: dict[str, str], upstream: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """`igwlab mirror save` as typed, its fetcher aimed at the 127.0.0.1 stand-ins (no internet here)."""
    tools = ToolRunner(env=helm_on_path)
    labs = [render(lab="kgateway-fake-llm"), render(lab="istio-fake-llm")]
    with upstream_stand_in(labs, tmp_path / "work", tools, upstream) as stand_in:
        monkeypatch.setattr(mirror_module, "Fetcher", lambda: LocalFetcher(stand_in, tools))
        yield


def test_mirror_save_command_then_check(cli: CliRunner, local_upstream: None, tmp_path: Path) -> None:
    root = tmp_path / "offline"
    saved = invoke(cli, "mirror", "save", "--provider", "istio", str(root))
    assert saved.exit_code == 0, saved.stderr
    assert "5 fetched, 0 already there" in saved.stdout and f"--mirror {root}" in saved.stdout
    assert "fetching Helm chart istiod 1.30.1 from https://istio-release.storage.googleapis.com/charts" in saved.stderr
    again = json_data(invoke(cli, "mirror", "save", "--provider", "istio", "--json", str(root)), "mirror save")
    assert again["saved"] == 0 and again["kept"] == 5 and all(a["sha256"] for a in again["artifacts"])

    assert not (root / ".mirror.lock").exists(), "a finished save leaves no lock file behind"
    checked = invoke(cli, "mirror", "check", "--provider", "istio", str(root))
    assert checked.exit_code == 0, checked.stdout
    assert "5 present, 0 missing, 0 corrupt" in checked.stdout

    other = invoke(cli, "mirror", "check", "--provider", "kgateway", "--json", str(root))
    result = envelope(other, "mirror check")
    assert other.exit_code == ExitCode.PREREQUISITES and result["error"]["code"] == "mirror-incomplete"
    report = result["data"]
    assert report["ok"] is False
    assert report["counts"] == {"present": 0, "missing": 4, "corrupt": 0}
    assert report["fetch_with"] == f"igwlab mirror save --provider kgateway {root}"
    invoke(cli, "mirror", "save", "--provider", "kgateway", str(root))
    assert invoke(cli, "mirror", "check", "--provider", "kgateway", str(root)).exit_code == 0
    assert invoke(cli, "mirror", "check", "--provider", "istio", str(root)).exit_code == 0


def test_mirror_check_names_corrupt_items_and_the_command(cli: CliRunner, mirror_copy: Path) -> None:
    chart = next(a for a in lab_artifacts(render(lab="kgateway-fake-llm")) if a.kind == "chart")
    (mirror_copy / chart.relpath()).write_bytes(b"tampered")
    result = invoke(cli, "mirror", "check", "--lab", "kgateway-fake-llm", str(mirror_copy))
    assert result.exit_code == ExitCode.PREREQUISITES
    assert "corrupt" in result.stdout and "8 bytes" in result.stdout
    assert "0 missing, 1 corrupt" in result.stderr
    assert f"igwlab mirror save --lab kgateway-fake-llm {mirror_copy}" in " ".join(result.stderr.split())


def test_mirror_check_of_a_directory_without_a_mirror(cli: CliRunner, tmp_path: Path) -> None:
    result = invoke(cli, "mirror", "check", "--json", str(tmp_path / "nowhere"))
    report = envelope(result, "mirror check")["data"]
    assert result.exit_code == ExitCode.PREREQUISITES
    assert report["counts"]["missing"] == len(report["items"]) > 0
    assert report["items"][0]["detail"] == f"{tmp_path / 'nowhere'} does not exist"
    assert not (tmp_path / "nowhere").exists(), "check creates nothing"
    text = invoke(cli, "mirror", "check", str(tmp_path / "nowhere"))
    message = " ".join(text.stderr.split())
    assert f"the mirror {tmp_path / 'nowhere'} does not exist" in message and "save one: igwlab mirror save" in message
    assert "created if needed" not in " ".join(invoke(cli, "mirror", "check", "--help").stdout.split())
    (tmp_path / "empty").mkdir()
    report = envelope(invoke(cli, "mirror", "check", "--json", str(tmp_path / "empty")), "mirror check")["data"]
    assert "holds no mirror.yaml" in report["items"][0]["detail"]


def test_mirror_save_without_helm_exits_3_and_keeps_what_it_fetched(
    cli: CliRunner, upstream: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(Fetcher, "download", lambda self, url, dest, on: dest.write_text(crd_bundle(url).decode()))
    result = invoke(cli, "mirror", "save", "--lab", "kgateway-fake-llm", str(tmp_path / "m"))
    assert result.exit_code == ExitCode.PREREQUISITES
    assert "helm is not installed" in result.stderr and "Traceback" not in result.stderr
    assert len(_index(tmp_path / "m")) == 2, "the CRD bundles fetched before stay indexed"


def test_the_mirror_directory_may_come_from_igwlab_mirror(
    cli: CliRunner, mirror_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IGWLAB_MIRROR", str(mirror_copy))
    result = invoke(cli, "mirror", "check", "--lab", "kgateway-fake-llm")
    assert result.exit_code == 0, result.stdout
    assert str(mirror_copy) in result.stdout


def test_chart_of_every_release_is_an_artifact() -> None:
    rendered = render(lab="multi-model")
    assert {chart_artifact(r).key for r in rendered.releases} <= {a.key for a in lab_artifacts(rendered)}


def test_an_interrupted_save_leaves_a_consistent_mirror_and_a_rerun_continues(tmp_path: Path, helm: Path) -> None:
    # Ctrl-C cannot be timed into the middle of a real helm pull reliably: the fetcher raises it instead.
    rendered = render(lab="kgateway-fake-llm")
    second_chart = [a for a in lab_artifacts(rendered) if a.kind == "chart"][1]

    class Interrupted(LocalFetcher):
        def pull_chart(self, artifact, destination):  # type: ignore[no-untyped-def]
            if artifact.key == second_chart.key:
                (destination / "half.tgz").write_bytes(b"half")
                raise KeyboardInterrupt
            return super().pull_chart(artifact, destination)

    root = tmp_path / "m"
    with pytest.raises(KeyboardInterrupt):
        _save_locally(rendered, root, helm, tmp_path, fetcher_class=Interrupted)
    assert len(_index(root)) == 3, "the CRD bundles and the first chart are indexed"
    assert not [p for p in root.rglob("*") if p.name.startswith((".partial", "fetch-")) or p.name == "half.tgz"]
    report = check(rendered, root, selection=LabSelection(lab="kgateway-fake-llm"))
    assert [i.state for i in report.items] == ["present", "present", "present", "missing"]
    again = _save_locally(rendered, root, helm, tmp_path)
    assert [i.action for i in again.items] == ["kept", "kept", "kept", "saved"]


def test_a_mirror_directory_that_cannot_be_written_is_exit_2(cli: CliRunner, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = invoke(cli, "mirror", "save", "--lab", "kgateway-fake-llm", "--json", str(blocker / "mirror"))
    failed = envelope(result, "mirror save")
    assert result.exit_code == ExitCode.USAGE and failed["error"]["code"] == "cannot-write"
    assert "cannot write the mirror" in failed["error"]["message"] and "Traceback" not in result.stderr
    notdir = invoke(cli, "mirror", "save", "--lab", "kgateway-fake-llm", str(blocker))
    assert notdir.exit_code == ExitCode.USAGE and "is a file" in notdir.stderr
