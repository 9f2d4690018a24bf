from __future__ import annotations

import contextlib
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


@pytest.fixture(scope="session")
def real_binaries(request: pytest.FixtureRequest) -> None:
    """The real binaries of the `realcluster`/`realpicker` tests, built into the testbin cache when absent
    (about 25 minutes cold on 2 cores; `.ci/run` builds them before the tests). Skips only without Go."""
    import shutil

    import testbin

    missing = [tool for tool in testbin.TOOLS.values() if testbin.cached(tool) is None]
    if not missing:
        return
    if shutil.which("go") is None:
        pytest.skip(f"needs Go to build {', '.join(t.key for t in missing)} (python tests/testbin build)")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        for tool in missing:
            testbin.ensure(tool)


@pytest.fixture(scope="session")
def real_mirror(real_binaries: None, upstream: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One offline mirror (every preset, every add-on) for every real-cluster test, assembled from
    ../shared/upstream by igwlab's own `mirror save` and the real helm."""
    from mirror_support import assemble_mirror, every_preset_selection

    return assemble_mirror(every_preset_selection(), tmp_path_factory.mktemp("real-mirror") / "mirror")
