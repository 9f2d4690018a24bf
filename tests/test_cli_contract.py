"""The CLI contract (issue: no traceback, the right exit code, --json everywhere): the envelope, the guard."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from helpers import envelope, invoke, json_data, write_kubeconfig
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


# -- URLs are checked up front -------------------------------------------------------------------

BAD_URLS = [
    ("http://127.0.0.1:99999", "port that is not a number from 1 to 65535"),
    ("http://127.0.0.1:http", "port that is not a number"),
    ("http://127.0.0.1:0", "port 0"),
    ("http://[::1", "not a valid URL"),
    ("http://[::zz]:80", "not a valid URL"),
    ("localhost:8080", "is not an http(s) URL"),
    ("ftp://host", "is not an http(s) URL"),
    ("http://", "has no host"),
    ("http://exa mple.com", "spaces or control characters"),
    ("http://host/?a=1", "query or fragment"),
    ("", "is empty"),
]


@pytest.mark.parametrize(("url", "expected"), BAD_URLS)
@pytest.mark.parametrize(
    "command",
    [
        ["verify", "--url"],
        ["verify", "--url", "http://127.0.0.1:9", "--litellm-url"],
        ["load", "--rps", "1", "--duration", "1s", "--url"],
        ["top", "--once", "--url"],
    ],
)
def test_a_url_igwlab_cannot_use_is_refused_up_front(
    cli: CliRunner, command: list[str], url: str, expected: str
) -> None:
    result = invoke(cli, *command, url, "--json")
    assert result.exit_code == ExitCode.USAGE, (command, url, result.stdout, result.stderr)
    parsed = envelope(result, command[0])
    assert expected in parsed["error"]["message"] or expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_top_url_names_are_checked_too(cli: CliRunner) -> None:
    result = invoke(cli, "top", "--once", "--url", "pod-a=http://127.0.0.1:99999")
    assert result.exit_code == ExitCode.USAGE and "pod-a" in result.stderr


def test_load_without_a_url_talks_about_load(cli: CliRunner) -> None:
    result = invoke(cli, "load", "--rps", "1")
    assert result.exit_code == ExitCode.USAGE
    assert "no gateway URL for load" in result.stderr and "verify" not in result.stderr.split("next:")[0]


def test_a_broken_url_recorded_by_up_is_named_as_such(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IGWLAB_STATE_DIR", str(tmp_path))
    (tmp_path / "current.json").write_text(json.dumps({"lab": "kgateway-fake-llm", "url": "http://[::1"}))
    result = invoke(cli, "verify")
    assert result.exit_code == ExitCode.USAGE and "the URL `up` recorded" in result.stderr


# -- places that cannot be written -----------------------------------------------------------------


def test_render_and_diagnose_into_a_place_that_cannot_be_written(cli: CliRunner, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for args in (["render", "--out", str(blocker / "out")], ["diagnose", "--out", str(blocker / "d.tar.gz")]):
        result = invoke(cli, *args, "--json")
        assert result.exit_code == ExitCode.USAGE, (args, result.stderr)
        parsed = envelope(result, args[0])
        assert parsed["error"]["code"] == "cannot-write" and "cannot write" in result.stderr


def test_an_unwritable_state_directory_stops_up_before_anything_happens(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from doubles.faketools import FakeTools

    tools = FakeTools.install(tmp_path / "fake")
    monkeypatch.setenv("PATH", tools.env()["PATH"])
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("IGWLAB_STATE_DIR", str(blocker / "state"))
    result = invoke(cli, "up", "--provider", "kgateway")
    assert result.exit_code == ExitCode.USAGE and "cannot write $IGWLAB_STATE_DIR" in result.stderr
    assert not [c for c in tools.calls("k3d") if c[1:3] == ["cluster", "create"]]


# -- exit codes that mean what they say ------------------------------------------------------------


def test_load_exits_1_when_nothing_answers_or_no_request_succeeded(cli: CliRunner) -> None:
    from fakegw import GatewayBehaviour, running_gateway

    from igwlab.sim.process import running_sim

    with running_sim() as sim:
        closed = sim.url
    args = ("load", "--lab", "kgateway-fake-llm", "--rps", "5", "--duration", "0.5s", "--json")
    nothing = invoke(cli, *args, "--url", closed)
    assert nothing.exit_code == ExitCode.FAILED, nothing.stderr
    error = envelope(nothing, "load")["error"]
    assert error["code"] == "checks-failed" and f"nothing answers at {closed}" in error["message"]

    with running_sim() as sim, running_gateway(GatewayBehaviour(backends=[sim.url], fail_status=503)) as gateway:
        refused = invoke(cli, *args, "--url", gateway.url)
    assert refused.exit_code == ExitCode.FAILED, refused.stderr
    parsed = envelope(refused, "load")
    assert parsed["error"]["code"] == "checks-failed" and "no request succeeded" in parsed["error"]["message"]
    assert parsed["data"]["succeeded"] == 0 and parsed["data"]["requests"] > 0


def test_top_once_exits_1_when_every_target_failed(cli: CliRunner) -> None:
    from igwlab.sim.process import running_sim

    with running_sim() as sim:
        closed = sim.url
    result = invoke(cli, "top", "--once", "--json", "--url", f"a={closed}", "--url", f"b={closed}")
    assert result.exit_code == ExitCode.FAILED
    parsed = envelope(result, "top")
    assert {pod["pod"] for pod in parsed["data"]["pods"]} == {"a", "b"}


def test_up_dry_run_reports_missing_prerequisites_as_not_ok(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from doubles.faketools import FakeTools

    tools = FakeTools.install(tmp_path / "fake")
    monkeypatch.setenv("PATH", tools.env()["PATH"])
    tools.configure(docker_info=None)
    result = invoke(cli, "up", "--dry-run", "--json")
    assert result.exit_code == ExitCode.PREREQUISITES
    parsed = envelope(result, "up")
    assert parsed["error"]["code"] == "prerequisites" and "Docker" in parsed["error"]["message"]
    assert parsed["data"]["dry_run"] is True
    human = invoke(cli, "up", "--dry-run")
    assert human.exit_code == ExitCode.PREREQUISITES and "nothing was changed" in human.stdout


def test_up_json_without_docker_prints_the_envelope_with_exit_3(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from doubles.faketools import FakeTools

    tools = FakeTools.install(tmp_path / "fake")
    monkeypatch.setenv("PATH", tools.env()["PATH"])
    tools.configure(docker_info=None)
    result = invoke(cli, "up", "--provider", "kgateway", "--json")
    assert result.exit_code == ExitCode.PREREQUISITES
    assert envelope(result, "up")["error"]["code"] == "prerequisites"


def test_doctor_shows_every_check_and_why_one_was_skipped(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from doubles.faketools import FakeTools

    tools = FakeTools.install(tmp_path / "fake")
    monkeypatch.setenv("PATH", tools.env()["PATH"])
    tools.configure(docker_info=None)
    result = invoke(cli, "doctor", "--json")
    findings = {f["name"]: f for f in envelope(result, "doctor")["data"]["findings"]}
    assert set(findings) == {
        *("k3d", "k3s-image", "helm", "kubectl", "docker", "resources", "architecture", "cluster", "ports"),
        *("kubernetes", "gateway-api-crds", "inference-crds"),
    }
    assert findings["resources"]["status"] == "skip" and "Docker" in findings["resources"]["detail"]


def test_a_missing_context_is_named_with_the_contexts_there_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from igwlab.lifecycle import Environment, context_problem

    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "lab-a")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    missing = context_problem(Environment(), "lab-b")
    assert missing is not None and missing[0] == "no context lab-b in your kubeconfig; contexts: lab-a"
    assert "kubectl config get-contexts" in (missing[1] or ""), missing
    refused = context_problem(Environment(), "lab-a")
    assert refused is not None and "nothing accepts connections" in refused[0] and "127.0.0.1:9" in refused[0]


def test_the_kube_error_names_a_host_that_does_not_resolve() -> None:
    from igwlab.tools.kube import explain_kube_error

    error = RuntimeError(
        "HTTPSConnectionPool(host='api.nowhere.invalid', port=6443): Max retries exceeded "
        "(Caused by NameResolutionError(\"Failed to resolve 'api.nowhere.invalid' "
        '([Errno -2] Name or service not known)"))'
    )
    text = explain_kube_error(error, "prod")
    assert "does not resolve" in text and "api.nowhere.invalid:6443" in text and "accepts connections" not in text


# -- help that teaches -----------------------------------------------------------------------------


def _commands() -> list[list[str]]:
    """Every leaf command's path, e.g. ["labs", "show"] (Typer's click: found by shape, not class)."""
    import typer.main

    from igwlab.cli.app import app

    found: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, [*path, name])
        if path:
            found.append(path)

    walk(typer.main.get_command(app), [])
    return found


def test_every_command_has_help_with_metavars_and_examples_that_parse(cli: CliRunner) -> None:
    import typer.main
    from test_docs import _parse_error

    from igwlab.cli.app import app

    root = typer.main.get_command(app)
    for path in _commands():
        result = invoke(cli, *path, "-h")
        assert result.exit_code == 0, path
        text = result.stdout
        # Typer prints an argument's type after its name (`LAB <str>`) whatever its metavar: options only.
        text = re.sub(r"Arguments:.*?(?=Options:)", "", text, flags=re.S)
        vague = re.findall(r"<str>|<int|<float|<list\[|<path>|\b(?:TEXT|INTEGER|FLOAT|PATH)\b", text)
        assert vague == [], (path, vague)
        if getattr(root, "commands", None) and len(path) == 1 and getattr(root.commands[path[0]], "commands", None):
            continue  # a group: its subcommands carry the examples
        examples = [line.strip() for line in text.splitlines() if line.strip().startswith("igwlab ")]
        assert "Examples:" in text and examples, path
        for example in examples:
            assert _parse_error(root, shlex.split(example)[1:]) is None, example


def test_fixed_choices_and_limits_are_in_the_help(cli: CliRunner) -> None:
    up = invoke(cli, "up", "-h").stdout
    assert "<agentgateway|envoy-gateway|istio|kgateway|nginx>" in up
    assert "<sim|vllm-cpu>" in up and "<observability|litellm>" in up
    assert "<random|echo>" in invoke(cli, "sim", "-h").stdout
    load = " ".join(invoke(cli, "load", "-h").stdout.split())
    assert "at most 1000" in load and "(1 to 256)" in load
    verify = " ".join(invoke(cli, "verify", "-h").stdout.split())
    assert "traffic-split sends N per split model" in verify


def test_the_cli_limits_match_the_load_engine() -> None:
    from igwlab.cli import observe_cmds
    from igwlab.observe import load

    assert (observe_cmds.MAX_RPS, observe_cmds.MAX_CONCURRENCY) == (load.MAX_RPS, load.MAX_CONCURRENCY)


def test_the_provider_choices_are_the_catalogs() -> None:
    from igwlab.catalog import load_catalog
    from igwlab.cli.options import Provider

    assert sorted(p.value for p in Provider) == sorted(load_catalog().providers)


def test_help_never_breaks_a_hyphenated_name(cli: CliRunner) -> None:
    text = CliRunner(env={"COLUMNS": "60"}).invoke(app_for_tests(), ["verify", "-h"]).stdout
    assert "agentgateway-fake-llm" in text and "model-routing" in text


def app_for_tests() -> object:
    from igwlab.cli.app import app

    return app


def test_no_color_removes_every_style_even_on_a_terminal() -> None:
    env = {**os.environ, "FORCE_COLOR": "1", "COLUMNS": "120"}
    styled = subprocess.run(
        [sys.executable, "-m", "igwlab", "labs"], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    assert "\x1b[" in styled.stdout, "the control case: a forced terminal is styled"
    plain = subprocess.run(
        [sys.executable, "-m", "igwlab", "labs"],
        capture_output=True,
        text=True,
        env={**env, "NO_COLOR": "1"},
        timeout=60,
        check=True,
    )
    assert "\x1b[" not in plain.stdout and "kgateway-fake-llm" in plain.stdout


@pytest.mark.parametrize("columns", ["40", "60", "80", "200"])
def test_tables_never_split_a_name_at_any_width(columns: str) -> None:
    from igwlab.labs import preset_names

    runner = CliRunner(env={"COLUMNS": columns})
    text = runner.invoke(app_for_tests(), ["labs"]).stdout
    for name in preset_names():
        assert name in text, (columns, name)
    lab = runner.invoke(app_for_tests(), ["labs", "show", "envoy-gateway-vllm-cpu"]).stdout
    assert "tweet-summary-0" in lab and "http://localhost:8080" in lab


def test_markup_in_lab_files_prints_as_itself(cli: CliRunner, tmp_path: Path) -> None:
    from igwlab.labs import load_lab

    data = load_lab("agentgateway-fake-llm").model_dump(exclude_defaults=True)
    data["title"] = "[/bold] closing tag [red]and colour"
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(data))
    result = invoke(cli, "labs", "show", str(path))
    assert result.exit_code == 0, result.stderr
    assert "[/bold] closing tag [red]and colour" in result.stdout


def test_a_bare_command_group_prints_its_help(cli: CliRunner) -> None:
    for group in (["labs", "-h"], ["mirror"]):
        result = invoke(cli, *group)
        assert result.exit_code == 0 and "Usage: igwlab" in result.stdout, group


def test_shell_completion_completes_commands_and_choices() -> None:
    def complete(words: str, index: int) -> list[str]:
        env = {**os.environ, "_IGWLAB_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(index)}
        # The console script: shells complete the `igwlab` command, whose name sets _IGWLAB_COMPLETE.
        script = Path(sys.executable).parent / "igwlab"
        result = subprocess.run([str(script)], capture_output=True, text=True, env=env, timeout=60, check=False)
        return result.stdout.split()

    assert "plan" in complete("igwlab pl", 1)
    assert complete("igwlab up --provider ", 3) == ["agentgateway", "envoy-gateway", "istio", "kgateway", "nginx"]


# -- servers that misbehave, clients that leave ------------------------------------------------------


def test_the_simulator_shrugs_off_clients_that_leave_mid_request() -> None:
    import socket

    process = subprocess.Popen(
        [sys.executable, "-m", "igwlab", "sim", "--port", "0", "--ttft-ms", "200", "--itl-ms", "50", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        while not lines or lines[-1] != "}\n":  # the envelope, printed once the simulator listens
            line = process.stdout.readline()
            assert line, "igwlab sim exited before it listened"
            lines.append(line)
        port = json.loads("".join(lines))["data"]["port"]
        for stream in (True, False):
            body = json.dumps({"model": "fake-llm", "prompt": "hi", "max_tokens": 20, "stream": stream}).encode()
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(
                    b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                sock.recv(1)  # the answer started: leave in the middle of it
        with socket.create_connection(("127.0.0.1", port)) as sock:  # a body that never arrives
            sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        import httpx

        after = httpx.post(f"http://127.0.0.1:{port}/v1/completions", json={"model": "fake-llm", "prompt": "x"})
        assert after.status_code == 200, "still serving"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "Traceback" not in stderr and "Error handling request" not in stderr, stderr


def test_server_bytes_are_escaped_and_hints_name_the_labs_objects(cli: CliRunner) -> None:
    """A gateway answering 500 with terminal escapes and rich markup in its body (a fault no real
    component produces on purpose, so a tiny server stands in for it)."""
    import http.server
    import threading

    class Hostile(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b"\x1b[31m[/bold]boom\x07\n"
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        human = invoke(cli, "verify", "--lab", "kgateway-fake-llm", "--url", url, "--requests", "20")
        data = json_data(invoke(cli, "verify", "--lab", "kgateway-fake-llm", "--url", url, "--json"), "verify")
    finally:
        server.shutdown()
    assert human.exit_code == 1 and "\x1b" not in human.stdout and "[/bold]boom" in human.stdout
    reachable = next(check for check in data["checks"] if check["name"] == "gateway-reachable")
    assert "\\x1b[31m[/bold]boom\\x07" in reachable["detail"], reachable
    assert "`kubectl logs deploy/fakellm-pool-epp -n igwlab`" in reachable["hint"], reachable


def test_labs_and_labs_show_load_neither_templates_nor_the_mirror_module() -> None:
    """Lazy imports keep the light commands light (benchmarks/bench_cli.py measures them)."""
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from igwlab.cli.app import app\n"
        "for args in (['labs'], ['labs', 'show', 'kgateway-fake-llm'], ['render']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0, args\n"
        "    if args[0] == 'labs':\n"
        "        print(args, sorted(m for m in ('jinja2', 'igwlab.mirror', 'igwlab.plan') if m in sys.modules))\n"
        "print('render', 'igwlab.mirror' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["['labs'] []", "['labs', 'show', 'kgateway-fake-llm'] []", "render False"]


def test_a_busy_host_port_fails_doctor_and_the_dry_run(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real port check, against a port this test really holds."""
    import socket

    from doubles.faketools import FakeTools

    from igwlab.labs import load_lab

    tools = FakeTools.install(tmp_path / "fake")
    monkeypatch.setenv("PATH", tools.env()["PATH"])
    with socket.socket() as held, socket.socket() as spare:
        held.bind(("0.0.0.0", 0))
        held.listen()
        spare.bind(("127.0.0.1", 0))
        busy, free = held.getsockname()[1], spare.getsockname()[1]
        spare.close()
        data = load_lab("agentgateway-fake-llm").model_dump(exclude_defaults=True)
        data["cluster"] = {"api_port": free}
        data["gateway"] = {"listeners": [{"name": "http", "port": 80, "host_port": busy}]}
        lab = tmp_path / "lab.yaml"
        lab.write_text(yaml.safe_dump(data))
        doctor = invoke(cli, "doctor", "--lab", str(lab), "--json")
        dry_run = invoke(cli, "up", "--dry-run", "--lab", str(lab), "--json")
    findings = {f["name"]: f for f in envelope(doctor, "doctor")["data"]["findings"]}
    assert doctor.exit_code == ExitCode.PREREQUISITES and str(busy) in findings["ports"]["detail"]
    assert dry_run.exit_code == ExitCode.PREREQUISITES and f"host ports in use: {busy}" in dry_run.stderr


@pytest.mark.parametrize("lab", ["kgateway-fake-llm", "agentgateway-fake-llm", "multi-model"])
def test_applying_a_render_by_hand_in_the_readmes_order_works(cli: CliRunner, tmp_path: Path, lab: str) -> None:
    """The README's order: CRDs, then manifests/*-namespace/, then helm-releases.yaml top to bottom, then the
    rest of manifests/. Every release into the lab's namespace must come after that namespace exists, and the
    releases file must follow the plan's steps."""
    out = tmp_path / "out"
    assert invoke(cli, "render", "--lab", lab, "--out", str(out)).exit_code == 0
    plan = json_data(invoke(cli, "plan", "--lab", lab, "--json"), "plan")
    order = [step["id"] for step in plan["steps"]]
    namespace_dirs = sorted(p.name for p in (out / "manifests").iterdir() if p.name.endswith("-namespace"))
    assert namespace_dirs, "the lab's namespace has its own directory, applied in step 2"
    namespace = yaml.safe_load(next((out / "manifests" / namespace_dirs[0]).glob("*.yaml")).read_text())
    releases = yaml.safe_load((out / "helm-releases.yaml").read_text())["releases"]
    steps_of = {r["release"]: s["id"] for s in plan["steps"] for r in s.get("releases", [])}
    positions = [order.index(steps_of[r["release"]]) for r in releases]
    assert positions == sorted(positions), "helm-releases.yaml lists the releases in step order"
    for release in releases:
        assert (out / release["values_file"]).is_file()
        if release["namespace"] == namespace["metadata"]["name"]:
            assert order.index("namespace") < order.index(steps_of[release["release"]])


def test_a_host_that_does_not_resolve_is_named_as_such(cli: CliRunner) -> None:
    """Not "nothing accepts connections": the name never became an address (.invalid never resolves, RFC 6761)."""
    url = "http://no-such-host.invalid:8080"
    verify = json_data(invoke(cli, "verify", "--lab", "kgateway-fake-llm", "--url", url, "--json"), "verify")
    reachable = next(check for check in verify["checks"] if check["name"] == "gateway-reachable")
    assert "does not resolve" in reachable["hint"] and "Nothing accepts connections" not in reachable["hint"]
    load = invoke(cli, "load", "--lab", "kgateway-fake-llm", "--url", url, "--rps", "1", "--duration", "1s")
    assert load.exit_code == ExitCode.FAILED and "no-such-host.invalid of" in load.stderr
    assert "does not resolve" in load.stderr and "nothing answers" not in load.stderr


@pytest.mark.parametrize(
    "command", ["plan", "up --dry-run", "labs show kv-cache-aware", "plan --json", "render --lab kgateway-fake-llm"]
)
def test_a_reader_that_leaves_early_is_no_failure(command: str, tmp_path: Path) -> None:
    """`igwlab plan | head -1`: the reader closes the pipe; igwlab stops quietly with exit 0."""
    env = {**os.environ, "IGWLAB_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "100"}
    args = command.split() + (["--out", str(tmp_path / "out")] if command.startswith("render") else [])
    process = subprocess.Popen(
        [sys.executable, "-m", "igwlab", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before igwlab writes its first line
    errors = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0, errors
    assert "Traceback" not in errors and "error" not in errors, errors


@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
@pytest.mark.parametrize(
    "command",
    [
        "verify --requests 1 --url http://alice:s3cret-pw@127.0.0.1:9",
        "load --rps 1 --duration 1s --url http://alice:s3cret-pw@127.0.0.1:9",
        "top --once --url http://alice:s3cret-pw@127.0.0.1:9",
        "verify --url http://alice:s3cret-pw@127.0.0.1:9/v1",
        "verify --url http://127.0.0.1:9 --litellm-url http://alice:s3cret-pw@127.0.0.1:9",
    ],
)
def test_a_password_in_a_url_is_never_printed(cli: CliRunner, command: str, json_mode: bool, tmp_path: Path) -> None:
    result = invoke(cli, *command.split(), *(["--json"] if json_mode else []))
    output = result.stdout + result.stderr
    assert result.exit_code != 0 and "127.0.0.1:9" in output, output
    assert "s3cret-pw" not in output and "alice" not in output, output


def test_redacting_userinfo_keeps_the_rest_of_the_url() -> None:
    from igwlab.urls import redact_userinfo

    assert redact_userinfo("at http://u:p@gw:80/x and https://tok@h/") == "at http://***@gw:80/x and https://***@h/"
    assert redact_userinfo("mail a@b.c, see http://gw:80/a@b") == "mail a@b.c, see http://gw:80/a@b"


def test_diagnose_into_a_folder_names_the_archive_inside_and_leaves_no_half_archive(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IGWLAB_STATE_DIR", str(tmp_path / "state"))
    folder = tmp_path / "bundles"
    folder.mkdir()
    result = invoke(cli, "diagnose", "--out", str(folder), "--json")
    assert result.exit_code == 0, result.stderr
    archive = Path(envelope(result, "diagnose")["data"]["path"])
    assert archive.parent == folder and archive.name.startswith("igwlab-diagnose-"), archive
    with tarfile.open(archive) as bundle:
        assert "NOTES.txt" in bundle.getnames()
    # A folder that does not exist yet, written with a trailing slash: made, the archive inside it.
    fresh = invoke(cli, "diagnose", "--out", f"{folder / 'new' / 'sub'}/", "--json")
    assert fresh.exit_code == 0, fresh.stderr
    made = Path(envelope(fresh, "diagnose")["data"]["path"])
    assert made.parent == folder / "new" / "sub" and made.name.startswith("igwlab-diagnose-"), made
    made.unlink()
    (folder / "new" / "sub").rmdir()
    (folder / "new").rmdir()

    # A diagnose stopped half-way (Ctrl-C) leaves the earlier archive of that name as it was, and no
    # partial file beside it. Injected: a real interrupt cannot be timed to land mid-archive.
    target = folder / "lab.tar.gz"
    target.write_bytes(b"earlier")

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("igwlab.lifecycle._add_text", interrupted)
    stopped = invoke(cli, "diagnose", "--out", str(target))
    assert stopped.exit_code != 0
    assert target.read_bytes() == b"earlier"
    assert sorted(p.name for p in folder.iterdir()) == sorted([archive.name, "lab.tar.gz"])


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("not: [yaml\n", "is not YAML"),
        ("", "cannot be used: Invalid kube-config"),
        (None, "cannot read the kubeconfig"),  # a directory
        ("missing", "does not exist"),
    ],
    ids=["not-yaml", "empty", "directory", "missing"],
)
def test_a_kubeconfig_that_cannot_be_read_is_named_as_such(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None, said: str
) -> None:
    # The real Kubernetes client reading a real file: no cluster is reached, none is needed.
    kubeconfig = tmp_path / "kubeconfig"
    if content is None:
        kubeconfig.mkdir()
    elif content != "missing":
        kubeconfig.write_text(content)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("IGWLAB_STATE_DIR", str(tmp_path / "state"))
    result = invoke(cli, "doctor", "--context", "x", "--json")
    assert result.exit_code == ExitCode.PREREQUISITES, result.stderr
    cluster = next(f for f in envelope(result, "doctor")["data"]["findings"] if f["name"] == "cluster")
    assert said in cluster["detail"] and str(kubeconfig) in cluster["detail"], cluster
    assert "does not answer" not in cluster["detail"], cluster


def test_sigterm_stops_igwlab_as_ctrl_c_does(tmp_path: Path) -> None:
    """`kill`, `timeout` or a CI job ending sends SIGTERM: igwlab takes it as Ctrl-C (its clean-up runs,
    and `sim` says it stopped) instead of dying on the spot."""
    import signal

    process = subprocess.Popen(
        [sys.executable, "-m", "igwlab", "sim", "--host", "127.0.0.1", "--port", "0"],
        env={**os.environ, "IGWLAB_STATE_DIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert "127.0.0.1" in process.stdout.readline()  # serving: the line it prints once ready
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=90) == 0  # a bound, not a wait: it ends at once when not loaded
        assert process.stderr is not None
        assert "igwlab sim: stopped" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()


def test_a_teardown_stopped_before_it_removed_anything_leaves_the_record_as_it_was(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real client against a port nobody listens on: teardown cannot start, and says so.
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", "lab-a")))
    monkeypatch.setenv("IGWLAB_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state").mkdir()
    record = {"lab": "kgateway-fake-llm", "context": "lab-a", "status": "in-progress", "url": None}
    (tmp_path / "state" / "current.json").write_text(json.dumps(record))
    result = invoke(cli, "teardown", "--yes", "--json")
    assert result.exit_code == ExitCode.PREREQUISITES, result.stderr
    assert json.loads((tmp_path / "state" / "current.json").read_text())["status"] == "in-progress"
