"""The CLI contract (issue: no traceback, the right exit code, --json everywhere): the envelope, the guard."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import envelope, invoke, json_data
from typer.testing import CliRunner

from igwlab.errors import ExitCode


def test_bare_igwlab_prints_help_to_stdout_and_succeeds(cli: CliRunner) -> None:
    result = invoke(cli)
    assert result.exit_code == 0
    assert "Usage: igwlab" in result.stdout and "up" in result.stdout and result.stderr == ""


@pytest.mark.parametrize("args", [["-h"], ["up", "-h"], ["labs", "show", "-h"], ["verify", "-h"]])
def test_dash_h_is_help(cli: CliRunner, args: list[str]) -> None:
    result = invoke(cli, *args)
    assert result.exit_code == 0 and "Usage: igwlab" in result.stdout


@pytest.mark.parametrize(
    ("args", "command", "code"),
    [
        (["plan", "--lab", "nope", "--json"], "plan", "lab-not-found"),
        (["labs", "show", "nope", "--json"], "labs show", "lab-not-found"),
        (["plan", "--provider", "kgateway", "--gie-version", "v1.5.0", "--json"], "plan", "unsupported-combination"),
        (["plan", "--workload", "banana", "--json"], "plan", "usage"),
        (["verify", "--requests", "0", "--json"], "verify", "usage"),
        (["nosuch", "--json"], "", "usage"),
    ],
)
def test_errors_are_envelopes_with_exit_2(cli: CliRunner, args: list[str], command: str, code: str) -> None:
    result = invoke(cli, *args)
    assert result.exit_code == ExitCode.USAGE, result.stderr
    parsed = envelope(result, command)
    assert parsed["error"]["code"] == code and parsed["data"] is None
    assert "Traceback" not in result.stderr and result.stderr.strip()


def test_every_json_command_carries_the_version_field(cli: CliRunner, tmp_path: Path) -> None:
    for args, command in (
        (["labs", "--json"], "labs"),
        (["labs", "show", "kgateway-fake-llm", "--json"], "labs show"),
        (["plan", "--json"], "plan"),
        (["render", "--json"], "render"),
        (["render", "--json", "--out", str(tmp_path / "out")], "render"),
        (["teardown", "--yes", "--json"], "teardown"),
    ):
        result = invoke(cli, *args)
        assert result.exit_code == 0, (args, result.stderr)
        assert json_data(result, command) is not None


def test_render_json_holds_the_objects_and_release_values(cli: CliRunner) -> None:
    data = json_data(invoke(cli, "render", "--lab", "agentgateway-fake-llm", "--json"), "render")
    kinds = [obj["kind"] for obj in data["objects"]]
    assert kinds[0] == "Namespace" and "HTTPRoute" in kinds
    pool = next(r for r in data["releases"] if r["release"] == "fakellm-pool")
    assert pool["values"]["inferencePool"]["modelServers"]["matchLabels"] == {"app": "fakellm"}


def test_an_unexpected_exception_is_one_line_naming_the_crash_file(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fault injection: nothing real in igwlab raises here on purpose, so a core function is replaced.
    def broken() -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("igwlab.inventory.list_labs", broken)
    result = invoke(cli, "labs")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "this is a bug" in lines[0] and "ZeroDivisionError: a bug" in lines[0]
    crash_file = Path(lines[0].split("traceback is in ")[1].split(" (please")[0])
    assert crash_file.is_file() and "Traceback" in crash_file.read_text()
    assert "Traceback" not in result.stdout + result.stderr

    as_json = invoke(cli, "labs", "--json")
    parsed = envelope(as_json, "labs")
    assert parsed["error"]["code"] == "internal" and parsed["error"]["exit_code"] == 1
    assert "this is a bug" in parsed["error"]["why"]


def test_the_crash_file_never_holds_a_secret_flag_value(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    from igwlab.crashes import write_crash_file

    path = write_crash_file("verify", RuntimeError("x"), ["verify", "--litellm-key", "sk-123", "--token=abc"])
    assert path is not None
    text = path.read_text()
    assert "sk-123" not in text and "abc" not in text and "--litellm-key ***" in text


def test_the_process_exit_code_and_stdout_in_a_real_process(tmp_path: Path) -> None:
    """The console script path (not the test runner): bad flags exit 2 with a JSON envelope on stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "igwlab", "load", "--rps", "nan", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert json.loads(result.stdout)["error"]["code"] == "usage"
    assert "Traceback" not in result.stderr
