"""Shared test helpers: run the real CLI in-process, render presets."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner, Result

from igwlab.cli.app import app
from igwlab.render import Rendered, render_lab
from igwlab.selection import LabSelection, resolve_lab


def invoke(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(app, list(args), catch_exceptions=False)


def render(**selection: Any) -> Rendered:
    return render_lab(resolve_lab(LabSelection(**selection)))


def find(rendered: Rendered, kind: str) -> list[dict[str, Any]]:
    return [obj.manifest for obj in rendered.objects if obj.kind == kind]
