"""Lint and type checks run with the tests, so the README's one test command covers them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "igwlab", "tests", "benchmarks", "scripts"],
        ["ruff", "format", "--check", "igwlab", "scripts"],
        ["mypy"],
    ],
    ids=["ruff", "ruff-format", "mypy"],
)
def test_code_quality(command: list[str]) -> None:
    # Prefer the tool installed beside this interpreter (the test venv), then PATH.
    executable = shutil.which(command[0], path=str(Path(sys.executable).parent)) or shutil.which(command[0])
    assert executable, f"{command[0]} is not installed; install the test extra: pip install -e '.[test]'"
    result = subprocess.run(
        [executable, *command[1:]], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
