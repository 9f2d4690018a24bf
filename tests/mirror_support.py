"""Offline mirrors for tests, assembled from ../shared/upstream by igwlab's own `mirror save`.

    from mirror_support import assemble_mirror
    mirror = assemble_mirror(["kgateway-fake-llm", LabSelection(lab="multi-model", addons=("observability",))],
                             tmp_path / "mirror")
    # then: igwlab up --context CTX --mirror <mirror>   (nothing of it reaches the network)

`assemble_mirror` serves the upstream artifacts on 127.0.0.1 and runs the real `mirror save` code
with the real `helm` against them:
- CRD bundles as the release URLs serve them: the CRD files of ../shared/upstream/gateway-api/<v>/<channel>/
  and ../shared/upstream/gie/<v>/ concatenated into one multi-document YAML (plus, for Gateway API v1.5+,
  the ValidatingAdmissionPolicy and binding the standard bundle carries: tests/data/).
- Helm charts from the packages in ../shared/upstream/charts/: repository charts through a chart
  repository (`helm repo index`) on 127.0.0.1, OCI charts through a small read-only stand-in of an OCI
  registry on 127.0.0.1 (the real registries cannot be reached here; the stand-in speaks the OCI
  distribution API so `helm pull oci://...` runs helm's real OCI code, with --plain-http since it
  serves no TLS).
- Images (only with images=True): `docker pull`/`docker save` cannot run here (no Docker engine), so a
  fake `docker` first on PATH (doubles.faketools) writes a small archive per image.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import shutil
import tarfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import testbin
import yaml
from doubles.faketools import FakeTools

from igwlab.mirror import Artifact, Fetcher, SaveReport, lab_artifacts, save
from igwlab.render import Rendered, render_lab
from igwlab.selection import LabSelection, resolve_lab
from igwlab.tools.proc import ToolRunner

TESTS = Path(__file__).resolve().parent
UPSTREAM = TESTS.parent.parent / "shared" / "upstream"
SAFE_UPGRADES = TESTS / "data" / "gateway-api-v1.5.1-safe-upgrades.yaml"

_GATEWAY_API = re.compile(
    r"/kubernetes-sigs/gateway-api/releases/download/(v[^/]+)/(standard|experimental)-install\.yaml$"
)
_GIE = re.compile(r"/kubernetes-sigs/gateway-api-inference-extension/releases/download/(v[^/]+)/manifests\.yaml$")
OCI_CONFIG = "application/vnd.cncf.helm.config.v1+json"
OCI_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

Selection = LabSelection | str


def helm_binary() -> Path:
    """The real helm, from the test binary cache (built from the Go module proxy when absent)."""
    return Path(testbin.binary("helm"))


# -- CRD bundles as the release URLs serve them ---------------------------------------------------------


def crd_bundle(url: str, upstream: Path = UPSTREAM) -> bytes:
    """The bundle a catalog CRD URL serves, assembled from the verbatim upstream CRD files."""
    if match := _GATEWAY_API.search(url):
        version, channel = match.groups()
        files = sorted((upstream / "gateway-api" / version / channel).glob("*.yaml"))
        extra = [SAFE_UPGRADES] if channel == "standard" and _at_least(version, (1, 5)) else []
        header = f"# Gateway API {channel} channel install, {version} (assembled from the upstream CRD files)\n"
    elif match := _GIE.search(url):
        version = match.group(1)
        files = sorted(p for p in (upstream / "gie" / version).glob("inference.networking.*.yaml"))
        extra = []
        header = f"# Gateway API Inference Extension {version} CRDs (assembled from the upstream CRD files)\n"
    else:
        raise KeyError(f"no upstream copy of {url} in {upstream}")
    if not files:
        raise KeyError(f"{upstream} holds no CRD files for {url}")
    parts = [header]
    for path in [*files, *extra]:
        parts.append(f"---\n#\n# {path.name}\n#\n" + path.read_text(encoding="utf-8").removeprefix("---\n"))
    return "".join(parts).encode()


def _at_least(version: str, minimum: tuple[int, int]) -> bool:
    major, minor = (int(x) for x in version.lstrip("v").split(".")[:2])
    return (major, minor) >= minimum


# -- charts: a chart repository and an OCI registry stand-in on 127.0.0.1 ---------------------------------


def chart_package(name: str, version: str, upstream: Path = UPSTREAM) -> Path:
    path = upstream / "charts" / f"{name}-{version}.tgz"
    if not path.is_file():
        raise KeyError(f"no package {path.name} in {upstream / 'charts'}")
    return path


def _chart_metadata(package: Path) -> dict[str, Any]:
    with tarfile.open(package) as archive:
        member = next(m for m in archive.getmembers() if m.name.count("/") == 1 and m.name.endswith("/Chart.yaml"))
        stream = archive.extractfile(member)
        assert stream is not None
        data: dict[str, Any] = yaml.safe_load(stream.read())
    return data


@dataclass
class _Blob:
    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()


class _Registry:
    """What `helm pull oci://HOST/NAME --version TAG` reads: manifests, blobs and tag lists, read-only."""

    def __init__(self) -> None:
        self.manifests: dict[tuple[str, str], _Blob] = {}
        self.blobs: dict[str, _Blob] = {}

    def add_chart(self, name: str, tag: str, package: Path) -> None:
        metadata = _chart_metadata(package)
        config = _Blob(json.dumps(metadata).encode(), OCI_CONFIG)
        layer = _Blob(package.read_bytes(), OCI_CHART)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": len(config.data)},
            "layers": [{"mediaType": OCI_CHART, "digest": layer.digest, "size": len(layer.data)}],
            "annotations": {
                "org.opencontainers.image.title": metadata["name"],
                "org.opencontainers.image.version": str(metadata["version"]),
            },
        }
        blob = _Blob(json.dumps(manifest).encode(), OCI_MANIFEST)
        self.manifests[(name, tag)] = blob
        self.blobs.update({b.digest: b for b in (config, layer, blob)})

    def lookup(self, path: str) -> tuple[int, _Blob | None, bytes | None]:
        if path in ("/v2/", "/v2"):
            return 200, None, b"{}"
        if match := re.fullmatch(r"/v2/(.+)/tags/list", path):
            tags = sorted(tag for name, tag in self.manifests if name == match.group(1))
            if not tags:
                return 404, None, None
            return 200, None, json.dumps({"name": match.group(1), "tags": tags}).encode()
        if match := re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", path):
            name, reference = match.groups()
            blob = (
                self.blobs.get(reference) if reference.startswith("sha256:") else self.manifests.get((name, reference))
            )
            return (200, blob, None) if blob is not None else (404, None, None)
        if match := re.fullmatch(r"/v2/(.+)/blobs/(sha256:[0-9a-f]{64})", path):
            blob = self.blobs.get(match.group(2))
            return (200, blob, None) if blob is not None else (404, None, None)
        return 404, None, None


@dataclass
class UpstreamStandIn:
    """CRD bundles, a chart repository and an OCI registry stand-in, served on 127.0.0.1."""

    base_url: str
    files: Path
    registry: _Registry
    repo_charts: dict[tuple[str, str], str]  # (upstream repo URL, chart) -> local repo URL

    @property
    def registry_host(self) -> str:
        return self.base_url.removeprefix("http://")

    def local_url(self, url: str) -> str:
        path = self.files / "crds" / hashlib.sha256(url.encode()).hexdigest()
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(crd_bundle(url))
        return f"{self.base_url}/crds/{path.name}"

    def chart_pull_argv(self, artifact: Artifact, destination: Path) -> list[str]:
        """The `helm pull` igwlab runs, aimed at the local stand-ins."""
        name = artifact.source.rstrip("/").split("/")[-1]
        if artifact.repo:
            local = self.repo_charts[(artifact.repo, artifact.source)]
            return [
                "helm",
                "pull",
                name,
                "--repo",
                local,
                "--version",
                artifact.version,
                "--destination",
                str(destination),
            ]
        path = artifact.source.removeprefix("oci://").split("/", 1)[1]
        return [
            "helm",
            "pull",
            f"oci://{self.registry_host}/{path}",
            "--version",
            artifact.version,
            "--destination",
            str(destination),
            "--plain-http",  # the stand-in registry serves plain HTTP on 127.0.0.1
        ]


def _handler(stand_in: UpstreamStandIn) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(stand_in.files), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def _registry(self, head: bool) -> bool:
            if not self.path.startswith("/v2"):
                return False
            status, blob, body = stand_in.registry.lookup(self.path.split("?", 1)[0])
            payload = blob.data if blob is not None else (body or b'{"errors":[{"code":"NOT_FOUND"}]}')
            self.send_response(status)
            self.send_header("Content-Type", blob.media_type if blob is not None else "application/json")
            if blob is not None:
                self.send_header("Docker-Content-Digest", blob.digest)
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if not head:
                self.wfile.write(payload)
            return True

        def do_GET(self) -> None:
            if not self._registry(head=False):
                super().do_GET()

        def do_HEAD(self) -> None:
            if not self._registry(head=True):
                super().do_HEAD()

    return Handler


@contextmanager
def upstream_stand_in(
    rendered_labs: Iterable[Rendered], root: Path, tools: ToolRunner, upstream: Path = UPSTREAM
) -> Iterator[UpstreamStandIn]:
    """Serve every chart and CRD bundle these labs need from ../shared/upstream on 127.0.0.1."""
    files = root / "served"
    (files / "charts").mkdir(parents=True, exist_ok=True)
    registry = _Registry()
    stand_in = UpstreamStandIn("", files, registry, {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(stand_in))
    stand_in.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="upstream-stand-in", daemon=True)
    thread.start()
    try:
        charts = {a.key: a for r in rendered_labs for a in lab_artifacts(r) if a.kind == "chart"}
        repo_dirs: set[Path] = set()
        for artifact in charts.values():
            name = artifact.source.rstrip("/").split("/")[-1]
            package = chart_package(name, artifact.version, upstream)
            if artifact.repo:
                slug = hashlib.sha256(artifact.repo.encode()).hexdigest()[:12]
                repo_dir = files / "charts" / slug
                repo_dir.mkdir(exist_ok=True)
                shutil.copy(package, repo_dir / package.name)
                repo_dirs.add(repo_dir)
                stand_in.repo_charts[(artifact.repo, artifact.source)] = f"{stand_in.base_url}/charts/{slug}"
            else:
                path = artifact.source.removeprefix("oci://").split("/", 1)[1]
                registry.add_chart(path, artifact.version, package)
        for repo_dir in sorted(repo_dirs):
            url = f"{stand_in.base_url}/charts/{repo_dir.name}"
            tools.run(["helm", "repo", "index", str(repo_dir), "--url", url], timeout=120)
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class LocalFetcher(Fetcher):
    """igwlab's real fetcher, its URLs and chart references aimed at the 127.0.0.1 stand-ins."""

    def __init__(self, stand_in: UpstreamStandIn, tools: ToolRunner) -> None:
        super().__init__(tools, timeout_s=300)
        self.stand_in = stand_in

    def download(self, url: str, dest: Path, on_bytes: Callable[[int, int | None], None]) -> None:
        super().download(self.stand_in.local_url(url), dest, on_bytes)

    def chart_pull_argv(self, artifact: Artifact, destination: Path) -> list[str]:
        return self.stand_in.chart_pull_argv(artifact, destination)


# -- the mirror -------------------------------------------------------------------------------------------


def helm_env(root: Path, helm: Path, extra_path: Iterable[Path] = ()) -> dict[str, str]:
    """An environment for the real helm that keeps its caches and config under `root`."""
    env = dict(os.environ)
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[name] = str(root / "helm-home" / name.split("_")[1].lower())
    env["HELM_REGISTRY_CONFIG"] = str(root / "helm-home" / "registry.json")
    env["PATH"] = os.pathsep.join([*(str(p) for p in extra_path), str(helm.parent), env.get("PATH", "")])
    return env


def _selections(selection: Selection | Iterable[Selection]) -> list[LabSelection]:
    items = [selection] if isinstance(selection, (str, LabSelection)) else list(selection)
    return [LabSelection(lab=item) if isinstance(item, str) else item for item in items]


def assemble_mirror(
    selection: Selection | Iterable[Selection],
    dest: Path,
    *,
    images: bool = False,
    upstream: Path = UPSTREAM,
    helm: Path | None = None,
) -> Path:
    """A mirror directory for these labs (preset names or LabSelections, add-ons included), written by
    igwlab's own `mirror save` with the real helm from local copies of the upstream artifacts; returns
    `dest`, ready for `igwlab up --mirror dest`. Raises KeyError when ../shared lacks an artifact."""
    return assemble_mirror_reports(selection, dest, images=images, upstream=upstream, helm=helm)[0]


def assemble_mirror_reports(
    selection: Selection | Iterable[Selection],
    dest: Path,
    *,
    images: bool = False,
    upstream: Path = UPSTREAM,
    helm: Path | None = None,
) -> tuple[Path, list[SaveReport]]:
    helm = helm or helm_binary()
    work = dest.parent / f".{dest.name}-assembly"
    work.mkdir(parents=True, exist_ok=True)
    fake_docker = FakeTools.install(work / "fake-docker", tools=("docker",)) if images else None
    env = helm_env(work, helm, [fake_docker.bin_dir] if fake_docker else [])
    tools = ToolRunner(env=env)
    rendered = [render_lab(resolve_lab(s)) for s in _selections(selection)]
    reports = []
    with upstream_stand_in(rendered, work, tools, upstream) as stand_in:
        fetcher = LocalFetcher(stand_in, tools)
        for lab in rendered:
            reports.append(save(lab, dest, images=images, fetcher=fetcher))
    shutil.rmtree(work / "served", ignore_errors=True)
    return dest, reports


def every_preset_selection() -> list[LabSelection]:
    """Every preset, and every add-on with the presets that allow it: what the real-cluster suite runs."""
    from igwlab.labs import preset_names

    selections = [LabSelection(lab=name) for name in preset_names()]
    selections.append(LabSelection(lab="agentgateway-fake-llm", addons=("observability", "litellm")))
    selections.append(LabSelection(lab="multi-model", addons=("observability",)))
    return selections


__all__ = [
    "UPSTREAM",
    "LocalFetcher",
    "UpstreamStandIn",
    "assemble_mirror",
    "chart_package",
    "crd_bundle",
    "every_preset_selection",
    "helm_binary",
    "helm_env",
    "upstream_stand_in",
]
