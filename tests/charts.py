"""The real `helm` against the real upstream charts in ../shared/upstream/charts (packaged at the pinned
versions): `helm template` and `helm lint` with the values igwlab renders."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import testbin
import yaml

from igwlab.render import HelmRelease, to_yaml

CHARTS = Path(__file__).resolve().parent.parent.parent / "shared" / "upstream" / "charts"


def helm() -> Path:
    """The real helm from the test-binary cache (built from the Go module proxy when absent)."""
    try:
        return testbin.binary("helm")
    except testbin.BuildError as error:  # no Go toolchain here: nothing can build it
        pytest.skip(f"the real helm cannot be built: {error}")


def chart_file(release: HelmRelease) -> Path:
    """The packaged chart of a release: `<chart name>-<version>.tgz`."""
    name = release.chart.rstrip("/").rsplit("/", 1)[-1]
    path = CHARTS / f"{name}-{release.version}.tgz"
    if not CHARTS.is_dir():
        pytest.skip(f"upstream charts not found at {CHARTS} (clone outside the igwlab workspace)")
    assert path.is_file(), f"no packaged chart {path.name} for release {release.name}"
    return path


def _values_file(release: HelmRelease, tmp_path: Path) -> Path:
    path = tmp_path / f"{release.name}.values.yaml"
    path.write_text(to_yaml(release.values) if release.values else "{}\n")
    return path


def run_helm(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm()), *args], capture_output=True, text=True, timeout=120, check=False)


def template(
    release: HelmRelease, tmp_path: Path, kube_version: str | None = None, extra: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """`helm template` of the release's chart with igwlab's values; the rendered objects."""
    args = ["template", release.name, str(chart_file(release)), "--namespace", release.namespace]
    args += ["--values", str(_values_file(release, tmp_path)), *extra]
    if kube_version:
        args += ["--kube-version", kube_version]
    result = run_helm(args)
    assert result.returncode == 0, f"helm template {release.name}: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def template_error(release: HelmRelease, tmp_path: Path, kube_version: str) -> str:
    """The error `helm template` gives for this Kubernetes version ('' when it renders)."""
    args = ["template", release.name, str(chart_file(release)), "--namespace", release.namespace]
    args += ["--values", str(_values_file(release, tmp_path)), "--kube-version", kube_version]
    result = run_helm(args)
    return "" if result.returncode == 0 else result.stderr


def lint(release: HelmRelease, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    args = ["lint", str(chart_file(release)), "--namespace", release.namespace]
    return run_helm([*args, "--values", str(_values_file(release, tmp_path))])


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)]


def container(objects: list[dict[str, Any]], deployment: str, name: str) -> dict[str, Any]:
    spec = find(objects, "Deployment", deployment)[0]["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == name)
