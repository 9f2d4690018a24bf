"""Write a rendered lab to disk (`igwlab render --out DIR`) or as one YAML stream."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from igwlab import yamlio
from igwlab.errors import CannotWriteError, UsageError
from igwlab.render import Rendered, to_multi_document_yaml, to_yaml

if TYPE_CHECKING:  # `render` to stdout needs no plan (nor the mirror module the plan loads)
    from igwlab.plan import Plan

MARKER = ".igwlab-render"  # YAML: lab, stack, files (what this render wrote, relative to the directory)
# What renders before the marker listed its files wrote: removed whole on a refresh.
_LEGACY_WRITTEN = ("manifests", "helm", "helm-releases.yaml")


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
    _prepare(out_dir)
    step_numbers = {step.id: index for index, step in enumerate(plan.steps, start=1)}
    manifest_files: list[Path] = []
    for obj in rendered.objects:
        folder = out_dir / "manifests" / f"{step_numbers[obj.step]:02d}-{obj.step}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{obj.kind.lower()}-{obj.name}.yaml"
        path.write_text(to_yaml(obj.manifest), encoding="utf-8")
        manifest_files.append(path)

    helm_dir = out_dir / "helm"
    helm_dir.mkdir(parents=True, exist_ok=True)
    values_files: list[Path] = []
    for release in rendered.releases:
        path = helm_dir / release.values_file
        path.write_text(to_yaml(release.values) if release.values else "{}\n", encoding="utf-8")
        values_files.append(path)
    releases_file = out_dir / "helm-releases.yaml"
    ordered = sorted(rendered.releases, key=lambda release: step_numbers[release.step])
    releases_file.write_text(to_yaml({"releases": [r.summary() for r in ordered]}), encoding="utf-8")
    written = [*manifest_files, *values_files, releases_file]
    marker = {"lab": plan.lab, "stack": plan.stack, "files": [path.relative_to(out_dir).as_posix() for path in written]}
    (out_dir / MARKER).write_text(to_yaml(marker), encoding="utf-8")
    return ExportResult(out_dir, tuple(manifest_files), tuple(values_files), releases_file)


def _prepare(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file", fix="name a directory (it is created if missing)")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / MARKER).is_file():
            raise UsageError(
                f"--out {out_dir} is not empty and holds no earlier igwlab render",
                why="igwlab replaces what it wrote before, and will not mix its files into other content",
                fix="name an empty or new directory",
            )
        removed: list[Path] = []
        for path in _written_before(out_dir):
            if path.is_dir():
                removed += _remove_yaml_under(path)
            elif path.is_file():
                path.unlink()
                removed.append(path)
        _prune_emptied(out_dir, removed)
    out_dir.mkdir(parents=True, exist_ok=True)


def _written_before(out_dir: Path) -> list[Path]:
    """The files (or, from a render before the marker listed them, the folders) the last render wrote,
    inside `out_dir` only: a marker edited to name `../x` or an absolute path removes nothing outside."""
    try:
        marker = yamlio.load((out_dir / MARKER).read_text(encoding="utf-8"))
    except (OSError, yamlio.YAMLError):
        marker = None
    listed = marker.get("files") if isinstance(marker, dict) else None
    names = [str(name) for name in listed] if isinstance(listed, list) else list(_LEGACY_WRITTEN)
    root = out_dir.resolve()
    paths = [(out_dir / name) for name in names]
    return [path for path in paths if path.resolve().is_relative_to(root) and path.resolve() != root]


def _remove_yaml_under(folder: Path) -> list[Path]:
    """An older render's manifests/ or helm/: its YAML files (igwlab wrote only those)."""
    removed = sorted(folder.rglob("*.yaml"))
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _prune_emptied(out_dir: Path, removed: list[Path]) -> None:
    """Remove the folders the refresh emptied (the removed files' folders, up to `out_dir`), deepest
    first; a folder that holds anything else stays."""
    folders = {parent for path in removed for parent in path.parents if out_dir in parent.parents}
    for folder in sorted(folders, key=lambda d: len(d.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
