"""Write a rendered lab to disk (`igwlab render --out DIR`) or as one YAML stream."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from igwlab.errors import CannotWriteError, UsageError
from igwlab.render import Rendered, to_multi_document_yaml, to_yaml

if TYPE_CHECKING:  # `render` to stdout needs no plan (nor the mirror module the plan loads)
    from igwlab.plan import Plan

MARKER = ".igwlab-render"


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

    A directory igwlab rendered before is refreshed (no stale files survive); any other
    non-empty directory is refused, so a typo cannot scatter files into someone's project.
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
    (out_dir / MARKER).write_text(f"lab: {plan.lab}\nstack: {plan.stack}\n", encoding="utf-8")
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
        for stale in ("manifests", "helm"):
            shutil.rmtree(out_dir / stale, ignore_errors=True)
        (out_dir / "helm-releases.yaml").unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
