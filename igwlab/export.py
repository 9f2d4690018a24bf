"""Write a rendered lab to disk (`igwlab render --out DIR`) or as one YAML stream."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from igwlab import yamlio
from igwlab.errors import CannotWriteError, UsageError
from igwlab.render import Rendered, to_multi_document_yaml, to_yaml

if TYPE_CHECKING:  # `render` to stdout needs no plan (nor the mirror module the plan loads)
    from igwlab.plan import Plan

MARKER = ".igwlab-render"  # YAML: lab, stack, files (what this render wrote, relative to the directory)


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    manifest_files: tuple[Path, ...]
    values_files: tuple[Path, ...]
    releases_file: Path


def rendered_stream(rendered: Rendered) -> str:
    """Every object igwlab applies, in apply order, as one multi-document YAML stream."""
    return to_multi_document_yaml([obj.manifest for obj in rendered.objects])


def write_rendered(rendered: Rendered, plan: Plan, out_dir: Path) -> ExportResult:
    """Write objects under manifests/NN-step/, values under helm/, and helm-releases.yaml.

    A directory igwlab rendered before is refreshed: the files the last render wrote (listed in its
    marker) are removed, so no stale one survives, and whatever else is there (a kustomization.yaml of
    the user's beside the manifests) stays. Any other non-empty directory is refused, so a typo cannot
    scatter files into someone's project.
    """
    try:
        return _write(rendered, plan, out_dir)
    except OSError as error:
        where = error.filename or out_dir
        raise CannotWriteError(
            f"cannot write {where}: {error.strerror or error}",
            fix="pass --out with a directory you can write (it is created if missing)",
        ) from None


def _write(rendered: Rendered, plan: Plan, out_dir: Path) -> ExportResult:
    step_numbers = {step.id: index for index, step in enumerate(plan.steps, start=1)}
    manifests: dict[Path, str] = {}
    for obj in rendered.objects:
        folder = Path("manifests") / f"{step_numbers[obj.step]:02d}-{obj.step}"
        manifests[folder / f"{obj.kind.lower()}-{obj.name}.yaml"] = to_yaml(obj.manifest)
    values = {
        Path("helm") / release.values_file: to_yaml(release.values) if release.values else "{}\n"
        for release in rendered.releases
    }
    ordered = sorted(rendered.releases, key=lambda release: step_numbers[release.step])
    releases = {Path("helm-releases.yaml"): to_yaml({"releases": [r.summary() for r in ordered]})}
    files = {**manifests, **values, **releases}

    _prepare(out_dir, list(files))  # every check first: nothing is removed or written when one fails
    for relative, text in files.items():
        (out_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / relative).write_text(text, encoding="utf-8")
    # Each file with the sha256 of what was written: a refresh removes a file only while it still holds that.
    marker = {
        "lab": plan.lab,
        "stack": plan.stack,
        "files": {path.as_posix(): _sha256(text) for path, text in files.items()},
    }
    (out_dir / MARKER).write_text(to_yaml(marker), encoding="utf-8")
    return ExportResult(
        out_dir,
        tuple(out_dir / path for path in manifests),
        tuple(out_dir / path for path in values),
        out_dir / "helm-releases.yaml",
    )


# The paths a render writes, relative to its directory: only these are ever removed on a refresh, whatever
# a marker lists.
_RENDERED = re.compile(
    r"manifests/\d\d-[a-z0-9-]+/[a-z0-9-]+-[a-z0-9.-]+\.yaml"
    r"|helm/[A-Za-z0-9._-]+\.values\.yaml"
    r"|helm-releases\.yaml"
)


def _prepare(out_dir: Path, planned: list[Path]) -> None:
    """Check `out_dir` can take the render and remove what the last render wrote there.

    Refused (UsageError, exit 2) before anything changes: a file as `out_dir`; a non-empty folder with
    no marker of an earlier render, or with one that cannot be read; a symbolic link on the way to a
    file the render writes (it would write outside the folder); a file at a path the render writes that
    the last render did not write (the user's, which it would overwrite)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file", fix="name a directory (it is created if missing)")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        _refuse_links(out_dir, planned)
        return
    marker_path = out_dir / MARKER
    if not marker_path.is_file():
        raise UsageError(
            f"--out {out_dir} is not empty and holds no earlier igwlab render",
            why="igwlab replaces what it wrote before, and will not mix its files into other content",
            fix="name an empty or new directory",
        )
    written = _written_before(out_dir, marker_path)
    _refuse_links(out_dir, planned)
    theirs = [path for path in planned if (out_dir / path).is_symlink() or (
        (out_dir / path).exists() and path.as_posix() not in written)]  # fmt: skip
    if theirs:
        raise UsageError(
            f"--out {out_dir} holds {out_dir / theirs[0]}, which the last render did not write or which was "
            "changed since",
            why="this render writes a file there, and igwlab does not overwrite files that are not its own",
            fix="move that file away (keep your changes elsewhere), or name an empty or new directory",
        )
    removed: list[Path] = []
    for name in sorted(written):
        path = out_dir / name
        if _within(out_dir, Path(name)) and path.is_file():
            path.unlink()
            removed.append(path)
    _prune_emptied(out_dir, removed)


def _within(out_dir: Path, relative: Path) -> bool:
    """No symbolic link on the way from `out_dir` to `relative` (the file itself included): what is
    reached through one is outside the folder, and never igwlab's to remove."""
    return not any((out_dir / part).is_symlink() for part in (relative, *relative.parents) if part != Path("."))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _unchanged(path: Path, digest: str) -> bool:
    """The file still holds what the render wrote (`digest`: its sha256)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == digest
    except OSError:
        return False


def _refuse_links(out_dir: Path, planned: list[Path]) -> None:
    """A symbolic link among the folders the render writes into (or as `out_dir`'s own subfolders)
    would carry the files outside the folder: refused."""
    folders = {parent for path in planned for parent in path.parents if parent != Path(".")}
    for folder in sorted(folders):
        if (out_dir / folder).is_symlink():
            raise UsageError(
                f"--out {out_dir}: {out_dir / folder} is a symbolic link",
                why="the render would write through it, outside the folder",
                fix="remove the link, or name an empty or new directory",
            )


def _written_before(out_dir: Path, marker_path: Path) -> set[str]:
    """The files the last render wrote and nobody changed since, as its marker lists them (path: sha256),
    keeping only paths a render writes: an edited marker can name nothing else, and a file edited since
    is the user's. A marker that cannot be read, or one from before igwlab recorded its files: refused."""
    try:
        marker = yamlio.load(marker_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yamlio.YAMLError):
        marker = None
    if not isinstance(marker, dict) or not isinstance(marker.get("lab"), str):
        raise UsageError(
            f"--out {out_dir}: its marker of an earlier render ({marker_path.name}) cannot be read",
            why="igwlab removes only the files the marker lists, and cannot tell which they are",
            fix=f"if {out_dir} holds nothing of yours, remove it (or its {marker_path.name}); else name an empty "
            "or new directory",
        )
    listed = marker.get("files")
    if not isinstance(listed, dict):  # a marker of an igwlab before it recorded each file and its sha256
        raise UsageError(
            f"--out {out_dir} holds a render of an older igwlab, whose marker does not say which files it wrote",
            why="igwlab removes only its own unchanged files, and cannot tell them from yours there",
            fix=f"if nothing under {out_dir} is yours, remove it and render again; else name an empty or new directory",
        )
    return {
        name
        for name, digest in ((str(n), str(d)) for n, d in listed.items())
        if _RENDERED.fullmatch(name) and _unchanged(out_dir / name, digest)
    }


def _prune_emptied(out_dir: Path, removed: list[Path]) -> None:
    """Remove the folders the refresh emptied (the removed files' folders, up to `out_dir`), deepest
    first; a folder that holds anything else stays."""
    folders = {parent for path in removed for parent in path.parents if out_dir in parent.parents}
    for folder in sorted(folders, key=lambda d: len(d.parts), reverse=True):
        if not folder.is_symlink() and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
