"""A broad table of bad inputs through the real CLI: every command, every kind of bad value.

For each input, with and without --json: no traceback, the documented exit code (0 ok · 1 failed ·
2 usage · 3 prerequisites · 4 timeout · 130 interrupted), a message on stderr, and with --json one
parseable envelope on stdout whose `ok` and `error.exit_code` agree with the exit code.
Placeholders such as {latin1} name files the `zoo` fixture makes; k3d, helm, docker and kubectl are
the fake executables (tests/doubles), so nothing outside the test's directories is touched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from doubles.faketools import FakeTools
from helpers import invoke, write_kubeconfig
from typer.testing import CliRunner

from igwlab.labs import load_lab

CLOSED = "http://127.0.0.1:9"  # nothing listens on the discard port

# (arguments, exit code); placeholders in braces are filled from the zoo.
CASES: list[tuple[str, int]] = [
    # lab references that are not labs
    *(
        (f"{cmd} --lab {ref}", 2)
        for cmd in ("plan", "render", "doctor", "up")
        for ref in (
            "{latin1}",
            "{binary}",
            "{empty}",
            "{list}",
            "{deep}",
            "{tags}",
            "{huge}",
            "{dir}",
            "{fifo}",
            "{loop}",
            "{long}",
            "nope",
            "{clash}",
            "{ports}",
            "{longpool}",
            "{nan}",
            "{badgie}",
            "{unicode}",
        )
    ),
    *((f"labs show {ref}", 2) for ref in ("{latin1}", "{dir}", "{long}", "nope", "{clash}")),
    ("verify --url " + CLOSED + " --lab {binary}", 2),
    ("load --url " + CLOSED + " --rps 1 --duration 1s --lab {dir}", 2),
    # flag values outside their sets
    *((f"plan --provider {value}", 2) for value in ("traefik", "KGATEWAY", "''")),
    *((f"plan --workload {value}", 2) for value in ("gpu", "''")),
    *((f"plan --with {value}", 2) for value in ("grafana", "''")),
    *((f"plan --provider kgateway --gie-version {value}", 2) for value in ("banana", "1.5", "v1.5.0", "''")),
    ("plan --provider envoy-gateway --with litellm", 2),
    *((f"up --dry-run --cluster {value}", 2) for value in ("Bad_Name", "-x", "c" * 33, "''")),
    ("up --dry-run --context ''", 2),
    ("doctor --context no-such-context", 3),
    ("up --context no-such-context", 3),
    # numbers: negative, zero, NaN, infinity, huge, not numbers
    *((f"up --dry-run --timeout {value}", 2) for value in ("-1", "0", "nan", "inf", "1e999", "abc")),
    *(
        (f"verify --url {CLOSED} --{flag} {value}", 2)
        for flag in ("requests", "concurrency", "wait", "timeout")
        for value in ("-1", "nan", "inf", "99999999999", "abc")
    ),
    *(
        (f"load --url {CLOSED} --{flag} {value} --duration 1s", 2)
        for flag in ("rps", "concurrency")
        for value in ("0", "-1", "nan", "inf", "5000")
    ),
    *(
        (f"load --url {CLOSED} --rps 1 --duration 1s --{flag} {value}", 2)
        for flag, value in (
            ("prefixes", "-1"),
            ("prefixes", "99999"),
            ("prompt-tokens", "0"),
            ("max-tokens", "0"),
            ("sheddable", "1.5"),
            ("sheddable", "nan"),
            ("timeout", "0"),
            ("model", "''"),
        )
    ),
    *((f"load --url {CLOSED} --rps 1 --duration {value}", 2) for value in ("soon", "0s", "2h", "-1s", "''")),
    (f"load --url {CLOSED} --rps 1 --concurrency 2", 2),
    (f"load --url {CLOSED}", 2),
    (f"top --once --url {CLOSED} --interval 0", 2),
    ("dashboard --port 80", 2),
    ("dashboard --port abc", 2),
    # URLs
    *(
        (f"verify --url {url}", 2)
        for url in (
            "http://127.0.0.1:99999",
            "http://127.0.0.1:http",
            "http://[::1",
            "localhost:8080",
            "ftp://h",
            "http://",
            "'http://exa mple.com'",
            "http://h/?a=1",
            "http://127.0.0.1:8000/v1",
            "http://127.0.0.1:8000/v1/",
            "https://gw.example/openai/V1",
            "''",
            "javascript:alert(1)",
        )
    ),
    (f"verify --url {CLOSED} --litellm-url http://[::1", 2),
    ("load --url http://127.0.0.1:0 --rps 1 --duration 1s", 2),
    ("load --url http://127.0.0.1:8000/v1 --rps 1 --duration 1s", 2),
    ("top --once --url pod=http://127.0.0.1:99999", 2),
    ("top --once --url pod=http://127.0.0.1:8000/v1", 2),
    (f"verify --url {CLOSED} --litellm-url http://127.0.0.1:4000/v1", 2),
    # the simulator's values (an address it cannot bind makes the valid ones stop too)
    *(
        (f"sim --host 999.1.1.1 {flag}", 2)
        for flag in (
            "--port -1",
            "--port 70000",
            "--ttft-ms nan",
            "--itl-ms -1",
            "--max-num-seqs 0",
            "--mode loud",
            "--pod-name 'Bad Name'",
            "--namespace ''",
            "--model ''",
            "--lora ''",
            "",
        )
    ),
    ("sim --host 'not a host'", 2),
    # flags that would be ignored in this combination
    ("up --context only --cluster other", 2),
    ("up --context only --set-context", 2),
    ("up --dry-run --context only --cluster other --set-context", 2),
    ("load --url " + CLOSED + " --concurrency 2 --arrival poisson --duration 1s", 2),
    ("load --url " + CLOSED + " --rps 1 --sheddable-objective batch --duration 1s", 2),
    ("load --url " + CLOSED + " --rps 1 --no-stream --usage --duration 1s", 2),
    ("load --url " + CLOSED + " --rps 1 --no-stream --no-usage --duration 1s", 2),
    (f"verify --url {CLOSED} --litellm-key sk-test", 2),
    ("top --once --interval 5 --url pod=http://127.0.0.1:9", 2),
    # places that cannot be written
    ("render --out {file}/sub", 2),
    ("render --out {file}", 2),
    ("render --out {dir}", 2),
    ("diagnose --out {file}/d.tgz", 2),
    ("diagnose --out {dir}", 0),  # the archive is written into the folder
    ("render --out {long}", 2),
    ("mirror save {file}/m --provider kgateway", 2),
    *((f"mirror check {where} --provider kgateway", 2) for where in ("{file}", "{long}", "{fifo}")),
    ("mirror check {dir} --lab {binary}", 2),
    ("up --dry-run --mirror {file}", 2),
    # commands that need a lab that is up, and nothing is up
    ("status", 2),
    ("dashboard", 2),
    ("top --once", 2),
    ("verify", 2),
    ("load --rps 1", 2),
    ("teardown --yes", 0),
    ("teardown", 0),
    # the parser itself
    ("labs shw", 2),
    ("up --nope", 2),
    ("nosuch", 2),
    ("labs show", 2),
    ("labs show a b", 2),
    ("top --url " + CLOSED, 2),  # --json without --once is refused; without --json this case is not run
]

# Damaged records of the lab that is up (state directory contents), against the commands that read them.
RECORDS = {
    "garbage": "not json {",
    "truncated": '{"lab": 5',
    "not-an-object": "[1, 2]",
    "types": json.dumps({"lab": 5, "url": ["x"], "kubeconfig": 7}),
    "status-type": json.dumps({"lab": "kgateway-fake-llm", "status": 3}),
    "deleted-lab-file": json.dumps({"lab": "x", "lab_file": "/nonexistent/gone.yaml", "cluster": "igwlab"}),
    "bad-url": json.dumps({"lab": "kgateway-fake-llm", "url": "http://[::1"}),
    "unreachable": "unreachable",  # filled in by the zoo: a kubeconfig whose API server refuses connections
}
RECORD_COMMANDS = [
    "status",
    "teardown --yes",
    "top --once",
    "verify --requests 1",
    "load --rps 1 --duration 1s",
    "dashboard",
    "up --dry-run",
]
DAMAGED = {"garbage", "truncated", "not-an-object", "types", "status-type"}  # the file is not what `up` writes
RECORD_EXIT = {  # (record, command) -> exit code; the rest are 2
    ("unreachable", "status"): 3,
    ("unreachable", "top --once"): 3,
    ("unreachable", "verify --requests 1"): 1,  # the HTTP checks fail; the cluster checks are skipped
    ("unreachable", "teardown --yes"): 0,  # a k3d lab whose cluster is gone: nothing left to delete
    ("bad-url", "status"): 3,  # the record names no kubeconfig: the default one, whose API server refuses
    ("bad-url", "top --once"): 3,
    ("bad-url", "teardown --yes"): 0,
    # up --dry-run of the default lab while another lab is recorded: refused (2), as a real run would be.
    ("unreachable", "load --rps 1 --duration 1s"): 1,  # nothing answers at the recorded URL
}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("zoo")

    def put(name: str, data: bytes | str) -> str:
        path = root / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(path)

    good = load_lab("kgateway-fake-llm").model_dump(exclude_defaults=True)

    def variant(file_name: str, **changes: object) -> str:
        data = json.loads(json.dumps(good))
        for dotted, value in changes.items():
            *path, key = dotted.split("__")
            node = data
            for part in path:
                node = node[part]
            node[key] = value
        return put(file_name, yaml.safe_dump(data, allow_unicode=True))

    huge = root / "huge.yaml"
    with huge.open("wb") as handle:
        handle.truncate(5_000_000)
    (root / "adir").mkdir()
    os.mkfifo(root / "fifo")
    os.symlink(root / "loop", root / "loop")
    kubeconfig = write_kubeconfig(root / "kubeconfig", "only")
    return {
        "latin1": put("latin1.yaml", b"name: caf\xe9\n"),
        "binary": put("binary.yaml", bytes(range(256))),
        "empty": put("empty.yaml", b""),
        "list": put("list.yaml", "- a\n"),
        "deep": put("deep.yaml", "[" * 20000),
        "tags": put("tags.yaml", "name: !!python/object/apply:os.system [echo hi]\n"),
        "huge": str(huge),
        "dir": str(root / "adir"),
        "fifo": str(root / "fifo"),
        "loop": str(root / "loop"),
        "long": "x" * 5000,
        "file": put("afile.txt", "x"),
        "clash": variant("clash.yaml", workload__name="fakellm-pool-epp"),
        "ports": variant("ports.yaml", cluster={"api_port": 8080}),
        "longpool": variant("longpool.yaml", pool__name="p" * 50),
        "nan": variant("nan.yaml", workload__replicas=float("nan")),
        "badgie": variant("badgie.yaml", gie_version="v1.5.0"),
        "unicode": variant("unicode.yaml", name="läb"),
        "kubeconfig": str(kubeconfig),
    }


@pytest.fixture
def world(zoo: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake tools first on PATH, an empty state directory, a kubeconfig whose one context refuses."""
    tools = FakeTools.install(tmp_path / "fake")
    monkeypatch.setenv("PATH", tools.env()["PATH"])
    monkeypatch.setenv("KUBECONFIG", zoo["kubeconfig"])
    state = tmp_path / "state"
    monkeypatch.setenv("IGWLAB_STATE_DIR", str(state))
    (Path(zoo["dir"]) / "precious.txt").write_text("not igwlab's")
    return state


def _split(command: str, zoo: dict[str, str]) -> list[str]:
    import shlex

    return shlex.split(command.format(**zoo))


def check(result: object, expected: int, json_mode: bool) -> None:
    from typer.testing import Result

    assert isinstance(result, Result)
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "this is a bug" not in output, output[-2000:]
    assert result.exit_code == expected, (result.exit_code, output[-2000:])
    if expected != 0:
        assert result.stderr.strip(), "a failure says why on stderr"
    if json_mode:
        envelope = json.loads(result.stdout)
        assert envelope["igwlab_result_version"] == 1
        assert envelope["ok"] is (expected == 0)
        if expected != 0:
            assert envelope["error"]["exit_code"] == expected and envelope["error"]["message"]


@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
@pytest.mark.parametrize(("command", "expected"), CASES, ids=[c[:60] for c, _ in CASES])
def test_bad_input(world: Path, zoo: dict[str, str], command: str, expected: int, json_mode: bool) -> None:
    args = _split(command, zoo)
    if args[:1] == ["top"] and "--once" not in args and not json_mode:
        pytest.skip("the live view runs until Ctrl-C")
    result = invoke(CliRunner(env={"COLUMNS": "100"}), *args, *(["--json"] if json_mode else []))
    check(result, expected, json_mode)


@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("command", RECORD_COMMANDS)
@pytest.mark.parametrize("record", sorted(RECORDS))
def test_a_damaged_record_of_the_lab_that_is_up(
    world: Path, zoo: dict[str, str], record: str, command: str, json_mode: bool
) -> None:
    world.mkdir(parents=True, exist_ok=True)
    text = RECORDS[record]
    if record == "unreachable":
        text = json.dumps(
            {"lab": "kgateway-fake-llm", "cluster": "igwlab", "kubeconfig": zoo["kubeconfig"], "url": CLOSED}
        )
    (world / "current.json").write_text(text)
    result = invoke(CliRunner(env={"COLUMNS": "100"}), *command.split(), *(["--json"] if json_mode else []))
    check(result, RECORD_EXIT.get((record, command), 2), json_mode)
    if record in DAMAGED:  # named as damaged, with the file, never taken for "nothing is up"
        message = " ".join(result.stderr.split())
        assert "is damaged" in message and "current.json" in message, message
        assert "does not exist" not in message and "missing)" not in message, message
        assert "k3d cluster delete" in message, message
        if json_mode:
            assert json.loads(result.stdout)["error"]["code"] == "damaged-record"


@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
@pytest.mark.parametrize(
    ("env", "command", "expected"),
    [
        ({"COLUMNS": "0"}, "doctor --context no-such-context", 3),
        ({"COLUMNS": "-3"}, "plan --lab nope", 2),
        ({"COLUMNS": "abc"}, "labs show nope", 2),
        ({"NO_COLOR": "1", "COLUMNS": "20"}, "plan --lab {clash}", 2),
        ({"IGWLAB_STATE_DIR": "{file}/state"}, "up --provider kgateway", 2),
        ({"IGWLAB_STATE_DIR": "{file}/state"}, "teardown --yes", 0),
        ({"KUBECONFIG": "{binary}"}, "doctor --context only", 3),
    ],
)
def test_a_strange_environment(
    world: Path,
    zoo: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    command: str,
    expected: int,
    json_mode: bool,
) -> None:
    filled = {key: value.format(**zoo) for key, value in env.items()}
    for key, value in filled.items():
        monkeypatch.setenv(key, value)
    result = invoke(CliRunner(env=filled), *_split(command, zoo), *(["--json"] if json_mode else []))
    check(result, expected, json_mode)


@pytest.mark.parametrize("command", ["verify", "load --rps 1 --duration 1s"])
def test_a_url_ending_in_v1_is_refused_naming_the_base_url(world: Path, command: str) -> None:
    result = invoke(CliRunner(env={"COLUMNS": "200"}), *command.split(), "--url", "http://127.0.0.1:8000/v1/")
    check(result, 2, False)
    message = " ".join(result.stderr.split())
    assert "ends in /v1" in message and "without the trailing /v1: http://127.0.0.1:8000" in message, message


@pytest.mark.parametrize("command", ["verify --requests 1", "load --rps 1 --duration 1s"])
def test_a_lab_recorded_but_not_up_yet_is_named_with_its_status(world: Path, command: str) -> None:
    """`up` records the lab (status in-progress, no URL) before it starts: the reason is that it has not
    finished, never that nothing is recorded."""
    world.mkdir(parents=True, exist_ok=True)
    (world / "current.json").write_text(
        json.dumps({"lab": "kgateway-fake-llm", "cluster": "igwlab", "url": None, "status": "in-progress"})
    )
    result = invoke(CliRunner(env={"COLUMNS": "100"}), *command.split())
    check(result, 2, False)
    message = " ".join(result.stderr.split())
    assert "lab kgateway-fake-llm is recorded (status in-progress) but has no gateway URL yet" in message, message
    assert "is missing" not in message and "finish `igwlab up`" in message and "--url" in message, message
