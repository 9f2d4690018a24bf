"""The commands as a user runs them: output, exit codes, messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import invoke, json_data
from typer.testing import CliRunner

from igwlab.errors import ExitCode


def test_labs_json_lists_every_preset_with_the_promised_fields(cli: CliRunner) -> None:
    result = invoke(cli, "labs", "--json")
    assert result.exit_code == 0
    labs = json_data(result, "labs")
    assert {"kgateway-fake-llm", "kv-cache-aware"} <= {lab["name"] for lab in labs}
    for lab in labs:
        assert {"name", "title", "provider", "workload", "gie_version"} <= set(lab)
    kgateway = next(lab for lab in labs if lab["name"] == "kgateway-fake-llm")
    assert (kgateway["provider"], kgateway["workload"], kgateway["gie_version"]) == ("kgateway", "sim", "v0.5.1")


def test_labs_table_and_show(cli: CliRunner) -> None:
    table = invoke(cli, "labs")
    assert table.exit_code == 0 and "kv-cache-aware" in table.stdout
    shown = invoke(cli, "labs", "show", "kgateway-fake-llm")
    assert shown.exit_code == 0
    assert "fake-llm-lora-a (70)" in shown.stdout and "v1alpha2" in shown.stdout


def test_labs_show_json_has_stack_and_models(cli: CliRunner) -> None:
    details = json_data(invoke(cli, "labs", "show", "envoy-gateway-vllm-cpu", "--json"), "labs show")
    assert details["stack"]["provider_version"] == "v1.8.1"
    assert details["models"][0]["targets"][0]["name"] == "tweet-summary-0"
    assert details["workload"]["kind"] == "vllm-cpu"


def test_plan_json_orders_steps_and_marks_concurrency(cli: CliRunner) -> None:
    result = invoke(cli, "plan", "--provider", "kgateway", "--json")
    assert result.exit_code == 0
    plan = json_data(result, "plan")
    ids = [step["id"] for step in plan["steps"]]
    for before, after in [
        ("cluster", "gateway-api-crds"),
        ("inference-crds", "provider-kgateway"),
        ("provider-kgateway", "gateway"),
        ("gateway", "route"),
        ("pool", "models"),
        ("route", "warmup"),
    ]:
        assert ids.index(before) < ids.index(after), (before, after)
    steps = {step["id"]: step for step in plan["steps"]}
    assert steps["gateway-api-crds"]["urls"] == [
        "https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.3.0/standard-install.yaml"
    ]
    assert steps["provider-kgateway"]["releases"][0]["version"] == "v2.0.4"
    assert "--disable=traefik@server:*" in steps["cluster"]["command"]
    # The workload does not wait for the gateway implementation: they share a wave.
    wave_of = {step["id"]: step["wave"] for step in plan["steps"]}
    assert wave_of["workload"] == wave_of["provider-kgateway-crds"]
    assert any(len(wave) > 1 for wave in plan["concurrency"])
    assert plan["url"] == "http://localhost:8081"


def test_plan_table_names_versions_and_waits(cli: CliRunner) -> None:
    result = invoke(cli, "plan", "--lab", "kv-cache-aware")
    assert result.exit_code == 0
    assert "GIE v1.5.0" in result.stdout and "Programmed" in result.stdout


def test_render_prints_multi_document_yaml(cli: CliRunner) -> None:
    result = invoke(cli, "render", "--lab", "kgateway-fake-llm")
    assert result.exit_code == 0
    kinds = [doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc]
    assert kinds[0] == "Namespace" and "InferenceModel" in kinds and kinds[-1] == "HTTPRoute"


def test_render_out_writes_objects_values_and_release_index(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(cli, "render", "--lab", "agentgateway-fake-llm", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    releases = yaml.safe_load((out / "helm-releases.yaml").read_text())["releases"]
    assert {r["release"] for r in releases} == {"agentgateway-crds", "agentgateway", "fakellm-pool"}
    for release in releases:
        assert (out / release["values_file"]).is_file()
    pool_values = yaml.safe_load((out / "helm" / "fakellm-pool.values.yaml").read_text())
    assert pool_values["inferencePool"]["modelServers"]["matchLabels"] == {"app": "fakellm"}
    assert pool_values["inferenceExtension"]["resources"]["requests"]["cpu"] == "100m"
    manifests = sorted(p.relative_to(out).as_posix() for p in (out / "manifests").rglob("*.yaml"))
    assert any(m.endswith("httproute-llm-route.yaml") for m in manifests)
    # Re-rendering into the same directory refreshes it and leaves nothing stale behind.
    again = invoke(cli, "render", "--lab", "kgateway-fake-llm", "--out", str(out))
    assert again.exit_code == 0
    assert not (out / "helm" / "fakellm-pool.values.yaml").exists()


def test_render_out_refresh_removes_only_what_the_last_render_wrote(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert invoke(cli, "render", "--lab", "agentgateway-fake-llm", "--out", str(out)).exit_code == 0
    # The user's own files beside and among the rendered ones (a kustomization, notes, an empty folder).
    (out / "kustomization.yaml").write_text("resources: []\n")
    (out / "manifests" / "zz-mine").mkdir()
    (out / "manifests" / "zz-mine" / "extra.yaml").write_text("kind: ConfigMap\n")
    (out / "helm" / "NOTES.md").write_text("mine")
    outside = tmp_path / "outside.yaml"
    outside.write_text("keep")
    marker = yaml.safe_load((out / ".igwlab-render").read_text())
    assert "helm/fakellm-pool.values.yaml" in marker["files"], marker
    marker["files"].update({"../outside.yaml": None, str(outside): None, ".": None})  # removes nothing outside
    (out / ".igwlab-render").write_text(yaml.safe_dump(marker))

    again = invoke(cli, "render", "--lab", "kgateway-fake-llm", "--out", str(out))
    assert again.exit_code == 0, again.stderr
    assert not (out / "helm" / "fakellm-pool.values.yaml").exists()  # the last render's, now stale
    assert (out / "helm" / "kgateway.values.yaml").is_file()
    assert (out / "kustomization.yaml").read_text() == "resources: []\n"
    assert (out / "manifests" / "zz-mine" / "extra.yaml").read_text() == "kind: ConfigMap\n"
    assert (out / "helm" / "NOTES.md").read_text() == "mine"
    assert outside.read_text() == "keep"
    # Folders only the stale files were in are gone too.
    steps = sorted(d.name for d in (out / "manifests").iterdir())
    assert all(any(f.suffix == ".yaml" for f in (out / "manifests" / d).iterdir()) for d in steps), steps


@pytest.mark.parametrize(
    "case",
    [
        "garbage-marker",
        "empty-marker",
        "older-marker",
        "file-link",
        "folder-link",
        "old-folder-link",
        "theirs-at-our-path",
        "marker-lists-theirs",
    ],
)
def test_render_out_refresh_touches_nothing_it_did_not_write(cli: CliRunner, tmp_path: Path, case: str) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    assert invoke(cli, "render", "--lab", "kgateway-fake-llm", "--out", str(out)).exit_code == 0
    outside.mkdir()
    (outside / "precious.yaml").write_text("keep")
    mine = out / "manifests" / "99-mine" / "my-own.yaml"
    mine.parent.mkdir()
    mine.write_text("keep")
    marker = out / ".igwlab-render"
    values = out / "helm" / "kgateway.values.yaml"
    expected_exit = ExitCode.USAGE
    if case == "garbage-marker":
        marker.write_text("}{ not yaml")
    elif case == "empty-marker":
        marker.write_text("")
    elif case == "older-marker":  # an igwlab before markers recorded files: cannot tell its files from yours
        marker.write_text("lab: kgateway-fake-llm\nstack: kgateway-v2.0.4\n")
    elif case == "old-folder-link":  # a folder only the last render wrote, now a link to elsewhere
        pool = out / "manifests" / "07-pool"
        for path in pool.iterdir():
            path.rename(outside / path.name)
        pool.rmdir()
        pool.symlink_to(outside)
        expected_exit = ExitCode.OK
    elif case == "file-link":  # the user's link in place of a rendered file: refused, its target untouched
        values.unlink()
        values.symlink_to(outside / "precious.yaml")
    elif case == "folder-link":
        folder = next((out / "manifests").iterdir())
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
        folder.symlink_to(outside)
    elif case == "theirs-at-our-path":  # a rendered file the user changed since: now theirs
        values.write_text("mine now")
    else:  # an edited marker names the user's files: a refresh removes only paths a render writes
        data = yaml.safe_load(marker.read_text())
        data["files"].update({"manifests/99-mine/my-own.yaml": "0" * 64, "notes.txt": None, "manifests": None})
        marker.write_text(yaml.safe_dump(data))
        (out / "notes.txt").write_text("keep")
        expected_exit = ExitCode.OK
    lab = "kgateway-fake-llm" if case in ("file-link", "theirs-at-our-path") else "agentgateway-fake-llm"
    again = invoke(cli, "render", "--lab", lab, "--out", str(out))
    assert again.exit_code == expected_exit, (case, again.stderr)
    assert "Traceback" not in again.stderr
    assert (outside / "precious.yaml").read_text() == "keep"
    if case == "old-folder-link":  # what was moved there stays: reached through a link, it is not igwlab's
        assert len(list(outside.iterdir())) > 1
    else:
        assert sorted(p.name for p in outside.iterdir()) == ["precious.yaml"], "wrote outside the folder"
    assert mine.read_text() == "keep"
    if case == "theirs-at-our-path":
        assert values.read_text() == "mine now" and "last render did not write" in again.stderr
    if case == "marker-lists-theirs":
        assert (out / "notes.txt").read_text() == "keep"
        assert (out / "helm" / "agentgateway.values.yaml").is_file()


def test_render_out_refuses_a_foreign_non_empty_directory(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    result = invoke(cli, "render", "--out", str(tmp_path))
    assert result.exit_code == ExitCode.USAGE
    assert "not empty" in result.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_bad_input_exits_2_with_a_message_and_no_traceback(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nprovider: kgateway\n")
    for args in (
        ["plan", "--lab", str(bad)],
        ["plan", "--provider", "traefik"],
        ["render", "--lab", "nope"],
        ["plan", "--provider", "kgateway", "--gie-version", "v1.5.0"],
        ["labs", "show", "nope"],
    ):
        result = invoke(cli, *args)
        assert result.exit_code == ExitCode.USAGE, args
        assert "error:" in result.stderr and "Traceback" not in result.stderr
        assert "next:" in result.stderr
    missing = invoke(cli, "plan", "--lab", str(bad))
    assert "title: required field is missing" in missing.stderr


def test_python_dash_m_and_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "igwlab", "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and result.stdout.startswith("igwlab ")


def test_help_and_core_commands_do_not_import_heavy_modules() -> None:
    """`--help` stays fast: no pydantic or jinja2 for help, never kubernetes/httpx/pyhelm3."""
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from igwlab.cli.app import app\n"
        "runner = CliRunner()\n"
        "assert runner.invoke(app, ['--help']).exit_code == 0\n"
        "light = not any(m in sys.modules for m in ('pydantic', 'jinja2', 'yaml'))\n"
        "for args in (['labs'], ['plan'], ['render'], ['labs', 'show', 'kv-cache-aware']):\n"
        "    assert runner.invoke(app, args).exit_code == 0, args\n"
        "heavy = sorted(m for m in ('kubernetes', 'httpx', 'pyhelm3') if m in sys.modules)\n"
        "print(light, heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True []"
