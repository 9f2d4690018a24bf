"""Offline mirrors: everything `up` fetches, saved once into a directory and used from there.

A mirror directory holds the CRD bundles (as their release URLs serve them), the Helm chart
packages (as `helm pull` writes them) and, when asked, container images (as `docker save` writes
them), plus an index `mirror.yaml` that says for each file what it is, where it came from, its
version and its sha256. Several labs may share one directory: `save` merges into the index.

    mirror.yaml
    crds/<host>/<path of the URL>                      e.g. crds/github.com/.../v1.5.1/standard-install.yaml
    charts/<registry or repo host>/<path>/<chart>-<version>.tgz
    images/<registry>/<repository>/<tag>.tar

`up --mirror DIR` takes CRDs and charts only from DIR, each verified against its sha256 before
use, and on k3d imports the mirrored images (`k3d image import`) so no pod pulls. Nothing here
imports Typer; `igwlab/cli/mirror_cmd.py` is the command line.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from igwlab.errors import CannotWriteError, IgwlabError, PrerequisiteError, UsageError
from igwlab.render import HelmRelease, Rendered, to_yaml
from igwlab.selection import LabSelection
from igwlab.tools.proc import ToolRunner
from igwlab.wording import counted

INDEX_NAME = "mirror.yaml"
CHART_IMAGES_CACHE = ".chart-images.json"  # a cache of `helm template` findings; safe to delete
INDEX_VERSION: Literal[1] = 1
# `helm template` renders charts for this Kubernetes version when it looks for images; the images a
# chart names do not depend on it, but charts with a `kubeVersion` constraint refuse helm's old default.
TEMPLATE_KUBE_VERSION = "v1.33.0"
Kind = Literal["crds", "chart", "image"]
State = Literal["present", "missing", "corrupt"]
_KIND_ORDER = {"crds": 0, "chart": 1, "image": 2}
_SAFE_SEGMENT = re.compile(r"[^A-Za-z0-9._-]")


class MirrorError(PrerequisiteError):
    """The mirror lacks an item the lab needs, or holds a corrupt one (exit 3). `items` are the bad
    ones; `data` (the JSON envelope's) holds them with the mirror and the command that fetches them."""

    code = "mirror-incomplete"

    def __init__(
        self,
        what: str,
        *,
        items: Sequence[ItemStatus] = (),
        why: str | None = None,
        fix: str | None = None,
        data: Any = None,
    ) -> None:
        super().__init__(what, why=why, fix=fix, data=data)
        self.items = list(items)


class FetchError(IgwlabError):
    """`mirror save` could not fetch an item from its source, or got something else than it (exit 1)."""

    code = "fetch-failed"


# -- what a lab needs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    """One thing `up` fetches: a CRD bundle (source = URL), a Helm chart (source = `oci://` reference,
    or chart name with `repo`), or a container image (source = image reference)."""

    kind: Kind
    source: str
    version: str
    what: str
    repo: str | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.kind, self.source, self.repo or "", self.version)

    @property
    def location(self) -> str:
        """Where it comes from without a mirror, the way a user would type it."""
        if self.kind == "chart":
            return f"{self.repo} {self.source} {self.version}" if self.repo else f"{self.source} {self.version}"
        return self.source

    def relpath(self) -> str:
        """The file's place in a mirror directory, derived from the source so different sources never collide."""
        if self.kind == "crds":
            scheme_less = self.source.split("://", 1)[-1]
            return _safe_path("crds", *scheme_less.split("/"))
        if self.kind == "chart":
            base = (self.repo or self.source).split("://", 1)[-1].rstrip("/")
            parts = base.split("/")
            name = self.source.rstrip("/").split("/")[-1]
            if not self.repo:
                parts = parts[:-1]
            return _safe_path("charts", *parts, f"{name}-{self.version}.tgz")
        repository = image_repository(self.source)
        return _safe_path("images", *repository.split("/"), f"{self.version.replace(':', '-')}.tar")

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "what": self.what, "source": self.source, "version": self.version}
        if self.repo:
            data["repo"] = self.repo
        return data


def _safe_path(*segments: str) -> str:
    cleaned = [_SAFE_SEGMENT.sub("_", s) for s in segments if s]
    return "/".join("_" if s in (".", "..") else s for s in cleaned)


def crds_artifacts(rendered: Rendered) -> list[Artifact]:
    """The lab's CRD bundles (Gateway API when igwlab installs it, then GIE), by their release URLs."""
    return [Artifact("crds", b.url, b.version, f"{b.title} CRDs") for b in rendered.crd_bundles]


def chart_artifact(release: HelmRelease) -> Artifact:
    """The chart of a Helm release: an `oci://` reference, or a chart name with its repository URL."""
    name = release.chart.rstrip("/").split("/")[-1]
    return Artifact("chart", release.chart, release.version, f"Helm chart {name} {release.version}", release.repo)


def lab_artifacts(rendered: Rendered) -> list[Artifact]:
    """The CRD bundles and Helm charts `up` fetches for a lab, each once, in plan order: every
    provider release, every pool's inferencepool chart, body-based routing and the add-ons."""
    found = crds_artifacts(rendered) + [chart_artifact(release) for release in rendered.releases]
    return list({artifact.key: artifact for artifact in found}.values())


def image_artifact(ref: str) -> Artifact:
    """An image by its reference as the objects name it; version = its tag (or digest)."""
    return Artifact("image", ref, image_tag(ref), f"image {ref}")


def manifest_images(documents: Iterable[Any]) -> list[str]:
    """Every container image in these Kubernetes objects, in order, once: containers, init and ephemeral
    containers of any pod template (Deployments, StatefulSets, DaemonSets, Jobs, CronJobs, Pods), and
    structured image specs `image: {registry, repository, tag}` in any object (a provider's proxy
    parameters, such as NGINX Gateway Fabric's NginxProxy, name the data-plane image this way)."""
    found: dict[str, None] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers", "ephemeralContainers") and isinstance(value, list):
                    for container in value:
                        if isinstance(container, dict) and isinstance(container.get("image"), str):
                            found[container["image"]] = None
                if key == "image" and isinstance(value, dict) and (ref := _structured_image(value)):
                    found[ref] = None
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for document in documents:
        walk(document)
    return list(found)


def _structured_image(spec: dict[str, Any]) -> str | None:
    repository, tag, registry = spec.get("repository"), spec.get("tag"), spec.get("registry")
    if not isinstance(repository, str) or not repository or not isinstance(tag, (str, int, float)) or tag == "":
        return None
    name = f"{registry.rstrip('/')}/{repository}" if isinstance(registry, str) and registry else repository
    return f"{name}@{tag}" if str(tag).startswith("sha256:") else f"{name}:{tag}"


def object_images(rendered: Rendered) -> list[str]:
    """Images of the objects igwlab itself applies (model servers, a v1alpha2 EPP, LiteLLM)."""
    return manifest_images(obj.manifest for obj in rendered.objects)


def image_repository(ref: str) -> str:
    """`ghcr.io/llm-d/sim:v1` -> `ghcr.io/llm-d/sim`; Docker Hub names get their implicit registry."""
    name = ref.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    first, _, rest = name.partition("/")
    if not rest:
        return f"docker.io/library/{name}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{name}"
    return name


def image_tag(ref: str) -> str:
    """The tag of an image reference (`latest` when none), or its `sha256:` digest."""
    if "@" in ref:
        return ref.split("@", 1)[1]
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def normalize_image(ref: str) -> str:
    """The full form a container runtime reports: `docker.io/library/busybox:latest`."""
    tag = image_tag(ref)
    return f"{image_repository(ref)}{'@' if tag.startswith('sha256:') else ':'}{tag}"


# -- the index -----------------------------------------------------------------------------------


class Entry(BaseModel):
    """One file of the mirror, as `mirror.yaml` records it."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    what: str
    source: str
    version: str
    repo: str | None = None
    file: str
    sha256: str
    size: int
    saved: str
    # Charts only: the images their templates name when rendered with igwlab's values.
    images: list[str] | None = None

    @field_validator("file")
    @classmethod
    def _relative_inside(cls, value: str) -> str:
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts or not path.parts or "\\" in value:
            raise ValueError(f"{value!r} must be a relative path inside the mirror directory")
        return value

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("must be 64 lowercase hex digits")
        return value

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.kind, self.source, self.repo or "", self.version)


class Index(BaseModel):
    """`mirror.yaml`: the format version and one entry per file, sorted by kind, source and version."""

    model_config = ConfigDict(extra="forbid")

    igwlab_mirror_version: Literal[1] = INDEX_VERSION
    artifacts: list[Entry] = []


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks (image archives are GiBs)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Mirror:
    """A mirror directory and its index (empty when the directory or its `mirror.yaml` does not exist)."""

    root: Path
    index: Index
    has_index: bool

    @classmethod
    def open(cls, root: Path) -> Mirror:
        """Read `root/mirror.yaml`; UsageError (exit 2) when it exists but is not a valid index."""
        root = Path(root).expanduser()
        path = root / INDEX_NAME
        try:
            not_a_dir = root.exists() and not root.is_dir()
            indexed = path.is_file()
        except OSError as error:  # a name too long, a symlink loop
            raise UsageError(
                f"cannot use mirror {str(root)[:200]}: {error.strerror or error}",
                fix="pass the directory `igwlab mirror save` wrote",
            ) from None
        if not_a_dir:
            raise UsageError(f"mirror {root} is not a directory", fix="pass the directory `igwlab mirror save` wrote")
        if not indexed:
            return cls(root, Index(), False)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            index = Index.model_validate(raw if raw is not None else {})
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise UsageError(f"cannot read {path}: {error}", fix="restore it, or save the mirror again") from error
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in problem['loc']) or 'top level'}: "
                + str(problem["msg"]).removeprefix("Value error, ")
                for problem in error.errors()
            )
            raise UsageError(
                f"{path} is not a valid igwlab mirror index: {problems}",
                why="igwlab reads only the index format `igwlab mirror save` writes (igwlab_mirror_version 1)",
                fix="restore the file, or move it away and run `igwlab mirror save` again",
            ) from None
        return cls(root, index, True)

    def find(self, artifact: Artifact) -> Entry | None:
        """The index entry of an artifact (same kind, source, repo and version), if any."""
        return next((entry for entry in self.index.artifacts if entry.key == artifact.key), None)

    def path(self, entry: Entry) -> Path:
        """The entry's file, resolved; MirrorError when a link leads out of the mirror directory."""
        path = (self.root / entry.file).resolve()
        if not path.is_relative_to(self.root.resolve()):  # a symlink pointing out of the mirror
            raise MirrorError(
                f"mirror entry {entry.file} points outside {self.root}",
                fix="save the mirror again into a fresh directory",
            )
        return path

    def has_images(self) -> bool:
        return any(entry.kind == "image" for entry in self.index.artifacts)

    def chart_images(self, rendered: Rendered) -> list[str]:
        """The images recorded for the lab's charts when they were saved."""
        found: dict[str, None] = {}
        for artifact in lab_artifacts(rendered):
            entry = self.find(artifact)
            if artifact.kind == "chart" and entry is not None:
                found.update(dict.fromkeys(entry.images or []))
        return list(found)

    def lab_images(self, rendered: Rendered) -> list[str]:
        return list(dict.fromkeys([*object_images(rendered), *self.chart_images(rendered)]))

    def origin(self, artifact: Artifact) -> Origin:
        entry = self.find(artifact)
        if entry is None:
            return Origin(artifact, mirror=self.root)
        return Origin(artifact, mirror=self.root, entry=entry, file=self.root / entry.file)

    def status(self, artifact: Artifact, verify: bool = True) -> ItemStatus:
        """Is the artifact indexed, its file there, and (with `verify`) of the recorded size and sha256?"""
        origin = self.origin(artifact)
        entry = origin.entry
        if entry is None:
            if not self.has_index and not self.root.exists():
                return ItemStatus(origin, "missing", f"{self.root} does not exist")
            where = INDEX_NAME if self.has_index else f"{self.root} (it holds no {INDEX_NAME})"
            return ItemStatus(origin, "missing", f"not listed in {where}")
        path = self.path(entry)
        if not path.is_file():
            return ItemStatus(origin, "missing", f"{INDEX_NAME} lists {entry.file}, but the file is gone")
        if verify:
            try:
                size = path.stat().st_size
                actual = sha256_file(path) if size == entry.size else ""
            except OSError as error:
                return ItemStatus(origin, "corrupt", f"cannot read {entry.file}: {error.strerror or error}")
            if size != entry.size:
                return ItemStatus(origin, "corrupt", f"{entry.file} has {size} bytes, {INDEX_NAME} says {entry.size}")
            if actual != entry.sha256:
                return ItemStatus(
                    origin, "corrupt", f"{entry.file} has sha256 {actual[:16]}…, {INDEX_NAME} says {entry.sha256[:16]}…"
                )
        return ItemStatus(origin, "present", entry.file)

    def read_verified(self, artifact: Artifact, fix: str) -> bytes:
        """The bytes of a mirrored item, checked against its sha256 as read (no window to swap the file)."""
        entry = self.find(artifact)
        if entry is None:
            raise MirrorError(f"{artifact.what} is not in the mirror {self.root}", fix=fix)
        try:
            data = self.path(entry).read_bytes()
        except OSError as error:
            raise MirrorError(f"cannot read {entry.file} from the mirror {self.root}: {error}", fix=fix) from error
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise MirrorError(
                f"{entry.file} in the mirror {self.root} does not match its sha256",
                why="the file changed after `igwlab mirror save` wrote it (corrupt or replaced)",
                fix=fix,
            )
        return data

    def verified_path(self, artifact: Artifact, fix: str) -> Path:
        status = self.status(artifact)
        if status.state != "present" or status.origin.entry is None:
            raise MirrorError(f"{artifact.what}: {status.state} in the mirror {self.root} ({status.detail})", fix=fix)
        return self.path(status.origin.entry)

    # -- writing -------------------------------------------------------------------------------

    def put(self, entry: Entry) -> None:
        kept = [e for e in self.index.artifacts if e.key != entry.key]
        kept.append(entry)
        kept.sort(key=lambda e: (_KIND_ORDER[e.kind], e.source, e.repo or "", e.version))
        self.index = Index(artifacts=kept)

    def write_index(self) -> Path:
        """Atomically: a reader never sees half an index."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / INDEX_NAME
        header = (
            "# igwlab mirror index, written by `igwlab mirror save`; `igwlab mirror check` verifies it.\n"
            "# Each artifact: what it is, where it came from, its version, its file here and that file's sha256.\n"
        )
        body = yaml.safe_dump(self.index.model_dump(mode="json", exclude_none=True), sort_keys=False, width=120)
        temporary = path.with_name(f".{INDEX_NAME}.{os.getpid()}.tmp")
        temporary.write_text(header + body, encoding="utf-8")
        os.replace(temporary, path)
        self.has_index = True
        return path


# -- where each artifact comes from (plan, up) ------------------------------------------------------


@dataclass(frozen=True)
class Origin:
    """Where `up` takes an artifact from: its source over the network, or a file of the mirror."""

    artifact: Artifact
    mirror: Path | None = None
    entry: Entry | None = None
    file: Path | None = None

    @property
    def from_mirror(self) -> bool:
        return self.mirror is not None

    @property
    def missing(self) -> bool:
        return self.mirror is not None and self.entry is None

    def describe(self) -> str:
        if self.mirror is None:
            return self.artifact.location
        if self.entry is None or self.file is None:
            return f"MISSING from mirror {self.mirror}"
        return f"mirror file {self.file} (sha256 {self.entry.sha256[:12]}…)"

    def short(self) -> str:
        """For tables: the mirror file relative to the mirror directory."""
        if self.mirror is None:
            return f"from {self.artifact.location}"
        return f"from mirror: {self.entry.file}" if self.entry is not None else "MISSING from the mirror"

    def as_dict(self) -> dict[str, Any]:
        data = self.artifact.as_dict()
        data["from"] = "mirror" if self.mirror is not None else "network"
        if self.mirror is not None:
            data["file"] = str(self.file) if self.file else None
            data["sha256"] = self.entry.sha256 if self.entry else None
            data["indexed"] = self.entry is not None
        return data


@dataclass(frozen=True)
class ItemStatus:
    """One artifact's state in a mirror: `present` (sha256 verified), `missing` or `corrupt`, and why."""

    origin: Origin
    state: State
    detail: str

    @property
    def artifact(self) -> Artifact:
        return self.origin.artifact

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.artifact.as_dict(),
            "state": self.state,
            "file": self.origin.entry.file if self.origin.entry else None,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Sources:
    """Where every artifact of one lab's `up` comes from. Without a mirror: the network, as before."""

    origins: tuple[Origin, ...]
    images: tuple[Origin, ...] = ()
    mirror: Mirror | None = None
    fetch_command: str = ""

    def find(self, kind: Kind, source: str, repo: str | None = None) -> Origin | None:
        return next(
            (
                o
                for o in self.origins
                if o.artifact.kind == kind and o.artifact.source == source and (o.artifact.repo or None) == repo
            ),
            None,
        )

    def crds_text(self, url: str) -> str | None:
        """The verified bundle from the mirror, or None when `up` fetches it from its URL."""
        origin = self.find("crds", url)
        if self.mirror is None or origin is None:
            return None
        return self.mirror.read_verified(origin.artifact, fix=self.fix()).decode("utf-8")

    def chart_args(self, release: HelmRelease) -> list[str]:
        """The chart arguments of `helm upgrade --install`: the verified package file from the mirror,
        or the chart reference with `--version` (and `--repo`)."""
        origin = self.find("chart", release.chart, release.repo)
        if self.mirror is not None and origin is not None:
            return [str(self.mirror.verified_path(origin.artifact, fix=self.fix()))]
        argv = [release.chart, "--version", release.version]
        return argv + (["--repo", release.repo] if release.repo else [])

    def fix(self) -> str:
        return f"fetch it again: {self.fetch_command}" if self.fetch_command else "save the mirror again"

    def check(self, verify: bool = True) -> list[ItemStatus]:
        """Each artifact's state in the mirror (sha256 checked when `verify`); empty without a mirror."""
        if self.mirror is None:
            return []
        return [self.mirror.status(origin.artifact, verify) for origin in (*self.origins, *self.images)]

    def require(self) -> None:
        """Stop, naming every missing or corrupt item and the command that fetches it, before anything changes."""
        if self.mirror is None:
            return
        bad = [item for item in self.check() if item.state != "present"]
        if bad:
            raise mirror_problems(self.mirror.root, bad, self.fetch_command)


def mirror_problems(root: Path, bad: Sequence[ItemStatus], command: str) -> MirrorError:
    """The exit-3 error naming each missing or corrupt item and the command that fetches them."""
    lines = "\n".join(
        f"  - {item.state}: {item.artifact.what} ({item.artifact.location}): {item.detail}" for item in bad
    )
    return MirrorError(
        f"the mirror {root} lacks {counted(len(bad), 'item')} this lab needs:\n{lines}",
        items=bad,
        why="with --mirror igwlab takes these only from the mirror, verified by sha256, and changed nothing",
        fix=f"fetch them (what is already there is kept): {command}",
        data={"mirror": str(root), "items": [item.as_dict() for item in bad], "fetch_with": command},
    )


def resolve_sources(
    rendered: Rendered,
    mirror_dir: Path | None,
    *,
    selection: LabSelection | None = None,
    import_images: bool = False,
) -> Sources:
    """Where `up` takes each artifact from. With a mirror, CRDs and charts come only from it; images
    too when `import_images` (k3d) and the mirror was saved with --images."""
    artifacts = lab_artifacts(rendered)
    if mirror_dir is None:
        return Sources(tuple(Origin(artifact) for artifact in artifacts))
    mirror = Mirror.open(mirror_dir)
    images: tuple[Origin, ...] = ()
    wants_images = import_images and mirror.has_images()
    if wants_images:
        images = tuple(mirror.origin(image_artifact(ref)) for ref in mirror.lab_images(rendered))
    command = save_command(selection or LabSelection(lab=rendered.resolved.lab.name), mirror.root, wants_images)
    return Sources(tuple(mirror.origin(artifact) for artifact in artifacts), images, mirror, command)


def save_command(selection: LabSelection, root: Path, images: bool) -> str:
    """The exact `igwlab mirror save` command that fetches what this lab selection needs."""
    argv = ["igwlab", "mirror", "save"]
    if selection.lab:
        argv += ["--lab", selection.lab]
    if selection.provider:
        argv += ["--provider", selection.provider]
    if selection.workload:
        argv += ["--workload", selection.workload]
    if selection.gie_version:
        argv += ["--gie-version", selection.gie_version]
    for addon in selection.addons:
        argv += ["--with", addon]
    if images:
        argv.append("--images")
    argv.append(str(root))
    return shlex.join(argv)


# -- check ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckReport:
    """What `mirror check` found: each item's state, and the `mirror save` command for the rest."""

    mirror: Path
    lab: str
    items: tuple[ItemStatus, ...]
    fetch_command: str
    images_checked: bool

    @property
    def ok(self) -> bool:
        return all(item.state == "present" for item in self.items)

    def counts(self) -> dict[str, int]:
        return {state: sum(item.state == state for item in self.items) for state in ("present", "missing", "corrupt")}

    def as_dict(self) -> dict[str, Any]:
        return {
            "mirror": str(self.mirror),
            "lab": self.lab,
            "ok": self.ok,
            "images_checked": self.images_checked,
            "counts": self.counts(),
            "items": [item.as_dict() for item in self.items],
            "fetch_with": None if self.ok else self.fetch_command,
        }


def check(rendered: Rendered, mirror_dir: Path, *, selection: LabSelection, images: bool = False) -> CheckReport:
    """What the mirror holds of what this lab needs: each item present (sha256 verified), missing or
    corrupt. Images are checked with `images`, or whenever the mirror was saved with images."""
    mirror = Mirror.open(mirror_dir)
    with_images = images or mirror.has_images()
    artifacts = lab_artifacts(rendered)
    if with_images:
        artifacts += [image_artifact(ref) for ref in mirror.lab_images(rendered)]
    items = tuple(mirror.status(artifact) for artifact in artifacts)
    command = save_command(selection, mirror.root, with_images)
    return CheckReport(mirror.root, rendered.resolved.lab.name, items, command, with_images)


# -- save -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SaveEvent:
    """Progress of `mirror save`: `start` and `done` per artifact, `bytes` while a download runs."""

    kind: Literal["start", "bytes", "done"]
    artifact: Artifact
    done_bytes: int = 0
    total_bytes: int | None = None
    action: str = ""  # done: saved | kept | refreshed
    seconds: float = 0.0


SaveSink = Callable[[SaveEvent], None]


@dataclass(frozen=True)
class SavedItem:
    """One artifact `save` handled: `saved` (new), `refreshed` (fetched again) or `kept` (verified)."""

    artifact: Artifact
    entry: Entry
    action: Literal["saved", "kept", "refreshed"]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.artifact.as_dict(),
            "file": self.entry.file,
            "sha256": self.entry.sha256,
            "size": self.entry.size,
            "action": self.action,
            "seconds": round(self.seconds, 2),
        }


@dataclass(frozen=True)
class SaveReport:
    """What one `save` of a lab did; `as_dict` is `mirror save --json`'s data."""

    mirror: Path
    lab: str
    items: tuple[SavedItem, ...]
    index: Path

    def as_dict(self) -> dict[str, Any]:
        return {
            "mirror": str(self.mirror),
            "lab": self.lab,
            "index": str(self.index),
            "artifacts": [item.as_dict() for item in self.items],
            "saved": sum(item.action != "kept" for item in self.items),
            "kept": sum(item.action == "kept" for item in self.items),
            "bytes": sum(item.entry.size for item in self.items),
        }


class Fetcher:
    """How `mirror save` reaches each source: HTTP for CRD bundles, `helm pull` and `helm template` for
    charts, `docker pull` and `docker save` for images. Every command goes through the argv-only runner
    with a timeout."""

    def __init__(self, tools: ToolRunner | None = None, timeout_s: float = 600.0, image_timeout_s: float = 3600.0):
        self.tools = tools or ToolRunner()
        self.timeout_s = timeout_s
        self.image_timeout_s = image_timeout_s
        # Images found per chart package, release and values (a digest of the three): several labs share
        # charts, and `save` keeps this beside the index (CHART_IMAGES_CACHE) so a re-run renders nothing.
        self.rendered_images: dict[str, list[str]] = {}

    def download(self, url: str, dest: Path, on_bytes: Callable[[int, int | None], None]) -> None:
        """Stream `url` into `dest`, reporting bytes done and the total (None when not announced)."""
        import httpx

        try:
            with httpx.stream("GET", url, follow_redirects=True, timeout=60) as response:
                response.raise_for_status()
                total = int(response.headers.get("content-length") or 0) or None
                done = 0
                with dest.open("wb") as out:
                    for chunk in response.iter_bytes(1 << 16):
                        out.write(chunk)
                        done += len(chunk)
                        on_bytes(done, total)
        except httpx.HTTPError as error:
            raise FetchError(
                f"could not download {url}: {error}",
                fix="check the network (a proxy?) and run the same `igwlab mirror save` again; what it saved is kept",
            ) from error

    def chart_pull_argv(self, artifact: Artifact, destination: Path) -> list[str]:
        argv = ["helm", "pull", artifact.source, "--version", artifact.version, "--destination", str(destination)]
        return argv + (["--repo", artifact.repo] if artifact.repo else [])

    def pull_chart(self, artifact: Artifact, destination: Path) -> Path:
        """`helm pull` the chart into `destination`; returns the package file helm wrote."""
        self.tools.run(
            self.chart_pull_argv(artifact, destination),
            timeout=self.timeout_s,
            fix=f"check that {artifact.location} exists and is reachable (a registry login?), then save again",
        )
        packages = sorted(destination.glob("*.tgz"))
        if len(packages) != 1:
            raise FetchError(
                f"`helm pull` of {artifact.location} left {len(packages)} packages instead of one",
                fix="run the same `igwlab mirror save` again",
            )
        return packages[0]

    def chart_images(self, package: Path, release: HelmRelease, workdir: Path) -> list[str]:
        """The images a chart's templates name when rendered with igwlab's values for this release
        (remembered per package, release and values: several labs share charts)."""
        text = to_yaml(release.values) if release.values else "{}\n"
        key = hashlib.sha256(
            "\0".join([sha256_file(package), release.name, release.namespace, text, TEMPLATE_KUBE_VERSION]).encode()
        ).hexdigest()
        if key in self.rendered_images:
            return list(self.rendered_images[key])
        values = workdir / f"{release.name}.values.yaml"
        values.write_text(text, encoding="utf-8")
        result = self.tools.run(
            [
                "helm",
                "template",
                release.name,
                str(package),
                "--namespace",
                release.namespace,
                "--values",
                str(values),
                "--kube-version",
                TEMPLATE_KUBE_VERSION,
            ],
            timeout=self.timeout_s,
            fix=f"`helm template` of {package.name} with igwlab's values failed; report it with the message above",
        )
        try:
            found = manifest_images(yaml.safe_load_all(result.stdout))
        except yaml.YAMLError as error:
            raise FetchError(f"`helm template` of {package.name} printed invalid YAML: {error}") from error
        self.rendered_images[key] = found
        return found

    def save_image(self, ref: str, destination: Path) -> None:
        """`docker pull` the image (for this machine's platform), then `docker save` it to `destination`."""
        fix = "check that Docker runs (`docker info`) and can reach the registry (a login?), then save again"
        self.tools.run(["docker", "pull", ref], timeout=self.image_timeout_s, fix=fix)
        self.tools.run(["docker", "save", "--output", str(destination), ref], timeout=self.image_timeout_s, fix=fix)


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One `mirror save` at a time per directory: each merges into the same index."""
    root.mkdir(parents=True, exist_ok=True)
    lock = root / ".mirror.lock"
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform: saves must not overlap
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)
        return
    while True:
        handle = lock.open("a")
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:  # the save before this one removes the file it locked: lock the one that is there now
            if os.fstat(handle.fileno()).st_ino == lock.stat().st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)  # removed while still held, so a waiting save locks a fresh file
        handle.close()


def _validate_crds(path: Path, artifact: Artifact) -> None:
    """A CRD bundle must be YAML holding CustomResourceDefinitions, not an error page served with 200."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise FetchError(
            f"{artifact.source} did not serve YAML: {error}", fix="check the URL and the network"
        ) from None
    if not any(isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition" for d in documents):
        raise FetchError(
            f"{artifact.source} served no CustomResourceDefinition",
            why=f"got {counted(len(documents), 'YAML document')} of other kinds",
            fix="check the URL (a proxy or login page?) and save again",
        )


@dataclass
class _Saver:
    mirror: Mirror
    fetcher: Fetcher
    refresh: bool
    on_event: SaveSink
    workdir: Path
    items: list[SavedItem] = field(default_factory=list)

    def ensure(self, artifact: Artifact, produce: Callable[[Path], Path], compare: bool = True) -> Entry:
        """Keep a present, verified file; else fetch it into a temporary place, hash it, move it in and
        record it. A refetch whose bytes differ from the recorded sha256 is refused (`compare`)."""
        started = time.perf_counter()
        self.on_event(SaveEvent("start", artifact))
        existing = self.mirror.find(artifact)
        if existing is not None and not self.refresh and self.mirror.status(artifact).state == "present":
            self._done(artifact, existing, "kept", started)
            return existing
        scratch = Path(tempfile.mkdtemp(prefix="fetch-", dir=self.workdir))
        try:
            produced = produce(scratch)
            digest = sha256_file(produced)
            if compare and existing is not None and not self.refresh and existing.sha256 != digest:
                raise FetchError(
                    f"{artifact.location} now has sha256 {digest[:16]}…, but {INDEX_NAME} recorded "
                    f"{existing.sha256[:16]}… when it was first saved",
                    why="the mirrored file was lost or damaged, and the source no longer serves the same bytes",
                    fix="if the change is expected, accept it with `igwlab mirror save --refresh ...`",
                )
            target = self.mirror.root / artifact.relpath()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(produced), target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        entry = Entry(
            kind=artifact.kind,
            what=artifact.what,
            source=artifact.source,
            version=artifact.version,
            repo=artifact.repo,
            file=artifact.relpath(),
            sha256=digest,
            size=target.stat().st_size,
            saved=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            images=existing.images if existing is not None else None,
        )
        self.mirror.put(entry)
        self.mirror.write_index()
        self._done(artifact, entry, "refreshed" if existing is not None else "saved", started)
        return entry

    def _done(
        self, artifact: Artifact, entry: Entry, action: Literal["saved", "kept", "refreshed"], start: float
    ) -> None:
        seconds = time.perf_counter() - start
        self.items.append(SavedItem(artifact, entry, action, seconds))
        self.on_event(SaveEvent("done", artifact, entry.size, entry.size, action, seconds))

    def crds(self, artifact: Artifact) -> None:
        def produce(scratch: Path) -> Path:
            path = scratch / "bundle.yaml"
            self.fetcher.download(
                artifact.source, path, lambda done, total: self.on_event(SaveEvent("bytes", artifact, done, total))
            )
            _validate_crds(path, artifact)
            return path

        self.ensure(artifact, produce)

    def chart(self, artifact: Artifact, releases: Sequence[HelmRelease]) -> list[str]:
        """Pull the chart (or keep it) and record the images its templates name with each release's values;
        a chart shared by several labs records the union."""
        entry = self.ensure(artifact, lambda scratch: self.fetcher.pull_chart(artifact, scratch))
        package = self.mirror.path(entry)
        named = [ref for release in releases for ref in self.fetcher.chart_images(package, release, self.workdir)]
        recorded = list(dict.fromkeys([*(entry.images or []), *named]))
        if recorded != entry.images:
            updated = entry.model_copy(update={"images": recorded})
            self.mirror.put(updated)
            self.mirror.write_index()
            last = self.items[-1]
            self.items[-1] = SavedItem(last.artifact, updated, last.action, last.seconds)
        return list(dict.fromkeys(named))

    def image(self, ref: str) -> None:
        artifact = image_artifact(ref)

        def produce(scratch: Path) -> Path:
            path = scratch / "image.tar"
            self.fetcher.save_image(ref, path)
            if not path.is_file():
                raise FetchError(f"`docker save` of {ref} wrote no archive", fix="run the same command again")
            return path

        # `docker save` archives are not byte-identical across saves of one image: no sha256 comparison.
        self.ensure(artifact, produce, compare=False)


def save(
    rendered: Rendered,
    mirror_dir: Path,
    *,
    images: bool = False,
    refresh: bool = False,
    fetcher: Fetcher | None = None,
    on_event: SaveSink | None = None,
) -> SaveReport:
    """Fetch everything `up` of this lab would fetch into `mirror_dir` and record it in its index:
    the CRD bundles by their URLs, every Helm chart of every release (provider, pools, body-based
    routing, add-ons), and with `images` every image the rendered objects and the charts' templates
    name. Files already present and verified are kept (`refresh` fetches them again). The index is
    rewritten after each item, so an interrupted save leaves a consistent mirror to continue from."""
    fetcher = fetcher or Fetcher()
    mirror_dir = Path(mirror_dir).expanduser()
    Mirror.open(mirror_dir)  # refuse an unreadable index before fetching anything
    try:
        return _save(rendered, mirror_dir, images, refresh, fetcher, on_event or (lambda _: None))
    except OSError as error:  # like `render --out` and `diagnose --out`: exit 2, "cannot write"
        raise CannotWriteError(
            f"cannot write the mirror {mirror_dir}: {error.strerror or error}",
            why=f"{error.filename}" if error.filename else None,
            fix="pick a directory you can write to with room for the files; what was saved is kept",
        ) from error


def _save(
    rendered: Rendered, mirror_dir: Path, images: bool, refresh: bool, fetcher: Fetcher, on_event: SaveSink
) -> SaveReport:
    with _locked(mirror_dir):
        mirror = Mirror.open(mirror_dir)
        workdir = Path(tempfile.mkdtemp(prefix=".partial-", dir=mirror_dir))
        cache = mirror_dir / CHART_IMAGES_CACHE
        fetcher.rendered_images.update(_read_cache(cache))
        try:
            saver = _Saver(mirror, fetcher, refresh, on_event, workdir)
            for artifact in crds_artifacts(rendered):
                saver.crds(artifact)
            chart_images: list[str] = []
            for artifact in lab_artifacts(rendered):
                if artifact.kind == "chart":
                    users = [r for r in rendered.releases if chart_artifact(r).key == artifact.key]
                    chart_images += saver.chart(artifact, users)
            if images:
                for ref in dict.fromkeys([*object_images(rendered), *chart_images]):
                    saver.image(ref)
            index = mirror.write_index()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            _write_cache(cache, fetcher.rendered_images)
    return SaveReport(mirror.root, rendered.resolved.lab.name, tuple(saver.items), index)


def _read_cache(path: Path) -> dict[str, list[str]]:
    """What earlier saves found in charts; an unreadable cache is only slower, never wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: [str(i) for i in v] for k, v in data.items() if isinstance(k, str) and isinstance(v, list)}


def _write_cache(path: Path, found: dict[str, list[str]]) -> None:
    if not found:
        return
    with suppress(OSError):
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(found, sort_keys=True), encoding="utf-8")
        os.replace(temporary, path)


def import_images_argv(cluster: str, files: Sequence[Path]) -> list[str]:
    """`k3d image import` of mirrored `docker save` archives into every node of the lab's cluster."""
    return ["k3d", "image", "import", *(str(f) for f in files), "--cluster", cluster]
