"""The lifecycle commands as a user runs them, with fake tools first on PATH."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from doubles.faketools import FakeTools
from helpers import invoke, json_data
from typer.testing import CliRunner

from igwlab.errors import ExitCode


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    tools = FakeTools.install(tmp_path / "fake")
    monkeypatch.setenv("PATH", tools.env()["PATH"])
    monkeypatch.setenv("IGWLAB_STATE_DIR", str(tmp_path / "state"))
    return tools


def test_up_without_docker_exits_3_quickly_naming_docker(cli: CliRunner, fakes: FakeTools) -> None:
    fakes.configure(docker_info=None)
    start = time.monotonic()
    result = invoke(cli, "up", "--provider", "kgateway")
    assert result.exit_code == ExitCode.PREREQUISITES
    assert time.monotonic() - start < 10
    assert "Docker daemon is not reachable" in result.stderr and "start Docker" in result.stderr
    assert not [c for c in fakes.calls("k3d") if c[1:3] == ["cluster", "create"]]


@pytest.mark.usefixtures("host_ports_free")
def test_up_dry_run_prints_the_plan_and_changes_nothing(cli: CliRunner, fakes: FakeTools) -> None:
    result = invoke(cli, "up", "--dry-run", "--lab", "kv-cache-aware")
    assert result.exit_code == 0, result.stderr
    assert "Plan for lab kv-cache-aware" in result.stdout and "nothing was changed" in result.stdout
    assert not fakes.calls("helm")[1:] or all(c[1] in ("version", "list") for c in fakes.calls("helm"))
    assert not [c for c in fakes.calls("k3d") if c[1] == "cluster" and c[2] != "list"]


def test_doctor_json_is_well_formed_and_exit_code_follows_failures(
    cli: CliRunner, fakes: FakeTools, tmp_path: Path
) -> None:
    healthy = invoke(cli, "doctor", "--json")
    report = json_data(healthy, "doctor")
    assert healthy.exit_code == 0 and report["ok"] is True and report["mode"] == "k3d"
    assert {f["name"] for f in report["findings"]} >= {
        "k3d",
        "helm",
        "kubectl",
        "docker",
        "resources",
        "architecture",
        "ports",
    }
    (fakes.bin_dir / "helm").unlink()
    fakes.configure(
        docker_info={
            **json.loads((fakes.state_dir / "config.json").read_text())["docker_info"],
            "Architecture": "aarch64",
            "NCPU": 4,
        }
    )
    broken = invoke(cli, "doctor", "--json", "--workload", "vllm-cpu")
    findings = {f["name"]: f for f in json_data(broken, "doctor")["findings"]}
    assert broken.exit_code == ExitCode.PREREQUISITES
    assert findings["helm"]["status"] == "fail" and "helm.sh" in findings["helm"]["fix"]
    assert findings["architecture"]["status"] == "fail" and "--workload sim" in findings["architecture"]["fix"]
    assert findings["resources"]["status"] == "fail"


def test_doctor_flags_old_tools(cli: CliRunner, fakes: FakeTools) -> None:
    fakes.configure(k3d_version="v5.4.6")
    findings = {f["name"]: f for f in json_data(invoke(cli, "doctor", "--json"))["findings"]}
    assert findings["k3d"]["status"] == "fail" and "older than v5.7.4" in findings["k3d"]["detail"]


def test_status_without_a_lab_says_so(cli: CliRunner, fakes: FakeTools) -> None:
    result = invoke(cli, "status")
    assert result.exit_code == ExitCode.USAGE and "no lab is up" in result.stderr


def test_teardown_with_nothing_up_is_a_success_with_a_note(cli: CliRunner, fakes: FakeTools) -> None:
    """CI clean-up steps run `igwlab teardown --yes` whatever happened before: nothing up is fine."""
    result = invoke(cli, "teardown", "--yes")
    assert result.exit_code == 0 and "nothing to tear down" in result.stderr
    data = json_data(invoke(cli, "teardown", "--yes", "--json"), "teardown")
    assert data["removed"] == [] and "no lab is up" in data["note"]
    assert not fakes.calls("k3d")


def test_teardown_asks_first_and_refuses_without_a_terminal(cli: CliRunner, fakes: FakeTools, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "current.json").write_text(
        json.dumps({"lab": "kgateway-fake-llm", "cluster": "igwlab", "context": None, "kubeconfig": str(state / "kc")})
    )
    result = invoke(cli, "teardown")
    assert result.exit_code == ExitCode.USAGE and "--yes" in result.stderr
    assert not [c for c in fakes.calls("k3d") if c[1:3] == ["cluster", "delete"]]
    (fakes.state_dir / "k3d.json").write_text(json.dumps(["igwlab"]))  # the lab's k3d cluster is there
    done = invoke(cli, "teardown", "--yes")
    assert done.exit_code == 0
    assert not (state / "current.json").exists()
    assert "removed 1 thing;" in done.stdout, done.stdout


def test_counted_nouns_agree_with_their_count() -> None:
    from igwlab.wording import counted

    assert [counted(n, "thing") for n in (0, 1, 2)] == ["0 things", "1 thing", "2 things"]
    assert counted(2, "entry", "entries") == "2 entries"


def test_help_explains_context_for_existing_clusters(cli: CliRunner) -> None:
    result = invoke(cli, "up", "--help")
    assert "--context" in result.stdout and "existing" in result.stdout
