"""An installed igwlab works outside the repository: labs/ and manifests/ ship in the wheel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO


def test_wheel_ships_labs_and_manifests_and_works_outside_the_repo(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    wheel = next(tmp_path.glob("igwlab-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "igwlab/_data/labs/kgateway-fake-llm.yaml" in names
    assert "igwlab/_data/manifests/gateway/httproute.yaml.j2" in names
    assert "igwlab/catalog.yaml" in names
    # Test doubles (fake tools, the in-memory cluster) and the test harness stay out of the wheel.
    doubles = [
        n for n in names if n.startswith(("igwlab/testing/", "tests/")) or "fakecluster" in n or "faketools" in n
    ]
    assert not doubles, doubles

    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import igwlab, sys; print(igwlab.__file__, file=sys.stderr); "
            "from igwlab.cli.app import main; sys.argv=['igwlab','labs','--json']; main()",
        ],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert str(target) in result.stderr, "the test ran the source tree, not the wheel"
    assert len(json.loads(result.stdout)["data"]) >= 8
