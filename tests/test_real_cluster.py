"""The real thing, opt-in: needs Docker, k3d and helm, and the network for images and charts.

    IGWLAB_CLUSTER_TESTS=1 python -m pytest tests/test_real_cluster.py

Skipped otherwise (and in CI here, which has no Docker engine).
"""

from __future__ import annotations

import pytest
from helpers import invoke
from typer.testing import CliRunner


@pytest.mark.cluster
@pytest.mark.parametrize("provider", ["agentgateway", "kgateway"])
def test_up_verify_teardown_on_k3d(cli: CliRunner, provider: str) -> None:
    try:
        up = invoke(cli, "up", "--provider", provider, "--timeout", "900")
        assert up.exit_code == 0, up.stderr
        verify = invoke(cli, "verify", "--wait", "120")
        assert verify.exit_code == 0, verify.stdout
        again = invoke(cli, "up", "--provider", provider)
        assert again.exit_code == 0 and "skipped" in again.stdout
    finally:
        invoke(cli, "teardown", "--yes")
