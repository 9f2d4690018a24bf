from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
UPSTREAM = REPO.parent / "shared" / "upstream"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import os

    if os.environ.get("IGWLAB_CLUSTER_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="needs a real cluster; set IGWLAB_CLUSTER_TESTS=1 to run")
    for item in items:
        if "cluster" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the user's igwlab state directory, or uses the user's mirror."""
    monkeypatch.setenv("IGWLAB_STATE_DIR", str(tmp_path_factory.mktemp("igwlab-state")))
    monkeypatch.delenv("IGWLAB_MIRROR", raising=False)


@pytest.fixture(scope="session")
def upstream() -> Path:
    if not UPSTREAM.is_dir():
        pytest.skip(f"upstream CRD schemas not found at {UPSTREAM} (clone outside the igwlab workspace)")
    return UPSTREAM


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner(env={"COLUMNS": "200"})


@pytest.fixture
def host_ports_free(monkeypatch: pytest.MonkeyPatch) -> None:
    """For `up --dry-run` of a preset under fake tools: the preset's host ports (8080, 6550) belong to
    whatever else runs on this shared machine, and a dry run reports busy ports as not ok (exit 3).
    The port check itself is tested on its own; here the fake Docker owns the host's ports."""
    monkeypatch.setattr("igwlab.doctor.port_in_use", lambda port: False)
