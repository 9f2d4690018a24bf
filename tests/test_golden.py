"""Golden renders and plans: reviewed, small, regenerated with

UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import render

from igwlab.export import rendered_stream
from igwlab.plan import build_plan
from igwlab.render import to_yaml

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def _compare(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual)
    assert path.is_file(), f"missing golden file {path}; run UPDATE_GOLDEN=1 python -m pytest {__file__}"
    assert actual == path.read_text(), f"{name} changed; review the diff, then regenerate (see module docstring)"


@pytest.mark.parametrize("lab", ["kgateway-fake-llm", "kv-cache-aware"])
def test_rendered_objects_match_golden(lab: str) -> None:
    rendered = render(lab=lab)
    values = {release.name: release.values for release in rendered.releases}
    _compare(f"{lab}.objects.yaml", rendered_stream(rendered))
    _compare(f"{lab}.values.yaml", to_yaml(values))


def test_plan_matches_golden() -> None:
    plan = build_plan(render(lab="kgateway-fake-llm"))
    _compare("kgateway-fake-llm.plan.json", json.dumps(plan.as_dict(), indent=2) + "\n")
