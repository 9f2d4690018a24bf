"""`igwlab up`, `status`, `teardown` and `diagnose` against fake executables and an in-memory cluster."""

from __future__ import annotations

import json
import os
import signal
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from doubles.faketools import HEALTHY_DOCKER
from doubles.world import lab_world

from igwlab.errors import ExitCode, PrerequisiteError
from igwlab.lifecycle import TeardownOptions, diagnose, status, teardown, up
from igwlab.state import read_current_lab


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("IGWLAB_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def _commands(world, tool: str, *prefix: str) -> list[list[str]]:  # type: ignore[no-untyped-def]
    return [call for call in world.tools.calls(tool) if call[1 : 1 + len(prefix)] == list(prefix)]


def test_up_installs_in_order_waits_and_records(tmp_path: Path) -> None:
    with lab_world(tmp_path) as world:
        result = up(world.options(), world.env)
    assert result.run.ok, result.run.error
    assert result.url == f"http://localhost:{world.port}"
    assert all(o.status == "done" for o in result.run.outcomes.values())

    create = _commands(world, "k3d", "cluster", "create")
    assert len(create) == 1 and "--disable=traefik@server:*" in create[0]
    assert f"{world.port}:8081@loadbalancer" in create[0]
    helm = [c[3] for c in _commands(world, "helm", "upgrade")]
    assert helm == ["kgateway-crds", "kgateway"]
    applied = world.cluster.applied
    first = {ref.split("/")[0]: applied.index(ref) for ref in reversed(applied)}
    assert first["CustomResourceDefinition"] < first["InferencePool"] < first["HTTPRoute"]
    assert first["Namespace"] < first["Deployment"] and first["Gateway"] < first["HTTPRoute"]

    current = read_current_lab()
    assert current is not None and current["url"] == result.url and current["status"] == "up"
    record = result.record
    assert record is not None
    assert {"plan.json", "events.jsonl", "commands.jsonl", "result.json", "doctor.json"} <= {
        p.name for p in record.iterdir()
    }
    commands = [json.loads(line) for line in (record / "commands.jsonl").read_text().splitlines()]
    assert any(row["argv"][:3] == ["k3d", "cluster", "create"] for row in commands)
    assert all(isinstance(row["argv"], list) for row in commands)
    events = [json.loads(line) for line in (record / "events.jsonl").read_text().splitlines()]
    assert {e["kind"] for e in events} >= {"start", "apply", "wait", "done"}
    kubeconfig = Path(current["kubeconfig"])
    assert kubeconfig.stat().st_mode & 0o077 == 0, "the kubeconfig must be private"


def test_independent_steps_run_concurrently(tmp_path: Path) -> None:
    with lab_world(tmp_path) as world:
        world.tools.configure(delays={"helm upgrade --install kgateway-crds": 0.6})
        result = up(world.options(), world.env)
        events = [json.loads(line) for line in (result.record / "events.jsonl").read_text().splitlines()]  # type: ignore[operator]
    started = {e["step"]: e["time"] for e in events if e["kind"] == "start"}
    finished = {e["step"]: e["time"] for e in events if e["kind"] == "done"}
    # The workload does not wait for the gateway implementation's charts.
    assert started["workload"] < finished["provider-kgateway-crds"]


def test_a_rerun_of_a_finished_lab_changes_nothing(tmp_path: Path) -> None:
    with lab_world(tmp_path) as world:
        up(world.options(), world.env)
        applied, calls = len(world.cluster.applied), len(world.tools.calls())
        again = up(world.options(), world.env)
        new_calls = world.tools.calls()[calls:]
    assert again.run.ok
    statuses = {sid: o.status for sid, o in again.run.outcomes.items()}
    assert statuses.pop("warmup") == "done"
    assert set(statuses.values()) == {"skipped"}
    assert len(world.cluster.applied) == applied
    assert not [c for c in new_calls if c[:3] in (["k3d", "cluster", "create"], ["helm", "upgrade", "--install"])]


def test_a_failed_step_stops_and_a_rerun_resumes_there(tmp_path: Path) -> None:
    with lab_world(tmp_path) as world:
        world.tools.configure(
            failures={
                "helm upgrade --install kgateway oci": {
                    "rc": 1,
                    "stderr": "Error: failed to download chart: unexpected status code 503\n",
                }
            }
        )
        first = up(world.options(), world.env)
        assert not first.run.ok and first.run.error is not None
        assert first.run.outcomes["provider-kgateway"].status == "failed"
        assert "503" in (first.run.error.why or "")
        assert first.run.outcomes["gateway"].status == "not-run"
        assert read_current_lab()["status"] == "in-progress"  # type: ignore[index]
        world.tools.configure(failures={})
        second = up(world.options(), world.env)
    assert second.run.ok
    statuses = {sid: o.status for sid, o in second.run.outcomes.items()}
    assert statuses["cluster"] == statuses["provider-kgateway-crds"] == "skipped"
    assert statuses["provider-kgateway"] == statuses["gateway"] == "done"
    assert len(_commands(world, "k3d", "cluster", "create")) == 1


def test_a_gate_that_never_holds_times_out_naming_the_object(tmp_path: Path) -> None:
    with lab_world(tmp_path, never_ready={"Deployment/igwlab/fakellm-pool-epp"}) as world:
        result = up(world.options(timeout_s=0.5), world.env)
        error = result.run.error
        assert error is not None and error.exit_code == ExitCode.TIMEOUT
        assert "Deployment/igwlab/fakellm-pool-epp" in error.what
        assert "0/1 ready" in (error.why or "") and "MinimumReplicasUnavailable" in (error.why or "")
        assert "igwlab diagnose" in (error.fix or "")
        bundle = diagnose(tmp_path / "diag.tar.gz", world.env)
    with tarfile.open(bundle) as archive:
        names = archive.getnames()
    assert any(name.endswith("commands.jsonl") for name in names)
    assert "cluster/objects/Deployment-fakellm-pool-epp.yaml" in names
    assert any(name.startswith("helm/") for name in names) and "cluster/events/igwlab.yaml" in names


def test_missing_prerequisites_exit_3_within_seconds_and_create_nothing(tmp_path: Path) -> None:
    with lab_world(tmp_path) as world:
        world.tools.configure(docker_info=None)
        start = time.monotonic()
        with pytest.raises(PrerequisiteError) as caught:
            up(world.options(), world.env)
    assert time.monotonic() - start < 5
    assert caught.value.exit_code == ExitCode.PREREQUISITES and "Docker" in caught.value.what
    assert not _commands(world, "k3d", "cluster", "create") and not _commands(world, "helm", "upgrade")
    assert read_current_lab() is None


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt even where the test runner was started with SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("ctrl_c")
def test_ctrl_c_stops_running_commands_and_a_rerun_continues(tmp_path: Path) -> None:
    with lab_world(tmp_path) as world:
        world.tools.configure(delays={"helm upgrade --install kgateway oci": 30})

        sent: list[float] = []

        def interrupt_once_the_install_runs() -> None:  # an event, not a fixed delay: the machine may be loaded
            deadline = time.monotonic() + 60
            while not _commands(world, "helm", "upgrade", "--install", "kgateway") and time.monotonic() < deadline:
                time.sleep(0.05)
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=interrupt_once_the_install_runs, daemon=True).start()
        interrupted = up(world.options(timeout_s=60), world.env)
        assert interrupted.run.interrupted and time.monotonic() - sent[0] < 15
        assert interrupted.run.outcomes["provider-kgateway"].status == "cancelled"
        world.tools.configure(delays={})
        resumed = up(world.options(), world.env)
    assert resumed.run.ok
    assert resumed.run.outcomes["cluster"].status == "skipped"


def test_existing_cluster_mode_uses_the_context_and_teardown_removes_only_the_lab(tmp_path: Path) -> None:
    with lab_world(tmp_path, preset="agentgateway-fake-llm", context=True) as world:
        result = up(world.options(context="ctx"), world.env)
        assert result.run.ok, result.run.error
        assert result.url == f"http://127.0.0.1:{world.port}"
        assert not world.tools.calls("k3d")
        for call in _commands(world, "helm", "upgrade"):
            assert call[-2:] == ["--kube-context", "ctx"]
        report = status(world.env)
        assert report["url"] == result.url and all(r["deployed"] for r in report["releases"])
        assert all(row["exists"] for row in report["objects"])
        removed = teardown(TeardownOptions(), world.env).removed
        remaining = world.cluster.refs()
    assert removed.index("HTTPRoute/igwlab/llm-route") < removed.index("Gateway/igwlab/inference-gateway")
    assert removed.index("helm release igwlab/fakellm-pool") < removed.index(
        "helm release agentgateway-system/agentgateway"
    )
    assert not [ref for ref in remaining if "/igwlab/" in ref]
    assert any(ref.startswith("CustomResourceDefinition/") for ref in remaining), "CRDs stay without --crds"
    assert read_current_lab() is None


def test_teardown_deletes_the_k3d_cluster_and_a_second_up_starts_clean(tmp_path: Path) -> None:
    with lab_world(tmp_path) as world:
        up(world.options(), world.env)
        teardown(TeardownOptions(), world.env)
        assert world.tools.k3d_clusters() == []
        assert read_current_lab() is None
        world.cluster.refs()  # the fake notices the deleted cluster (and frees its host port) when next read
        again = up(world.options(), world.env)
    assert again.run.ok and again.run.outcomes["cluster"].status == "done"


def test_no_shell_strings_anywhere() -> None:
    source = Path(__file__).resolve().parent.parent / "igwlab"
    for path in source.rglob("*.py"):
        text = path.read_text()
        assert "shell=True" not in text and "os.system(" not in text and "os.popen(" not in text, path
    from igwlab.tools.proc import ToolRunner

    with pytest.raises(TypeError):
        ToolRunner().run("k3d cluster list", timeout=5)  # type: ignore[arg-type]


def test_verify_reads_route_pool_and_epp_status_from_the_lab_that_is_up(tmp_path: Path) -> None:
    from igwlab.verify.run import VerifyOptions, verify

    with lab_world(tmp_path, never_ready={"Deployment/igwlab/fakellm-pool-epp"}) as world:
        up(world.options(timeout_s=0.3), world.env)  # stops at the EPP, which never becomes ready
        world.cluster.never_ready.clear()
        done = up(world.options(), world.env)
        assert done.run.ok
        world.cluster.never_ready.add("Deployment/igwlab/fakellm-pool-epp")
        report = verify(VerifyOptions(requests=20), world.env)
    checks = {check.name: check for check in report.checks}
    assert checks["route-accepted"].status == "pass" and "Accepted=True" in checks["route-accepted"].detail
    assert checks["pool-accepted"].status == "pass"
    assert checks["epp-ready"].status == "fail" and "4 CPU / 8Gi" in checks["epp-ready"].hint
    assert report.url == f"http://localhost:{world.port}"


def test_an_hf_token_goes_into_a_secret_and_nowhere_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = "hf_test_" + "x" * 24
    monkeypatch.setenv("HF_TOKEN", token)
    with lab_world(tmp_path) as world:
        world.tools.configure(docker_info={**HEALTHY_DOCKER, "NCPU": 16, "MemTotal": 32 * 1024**3})
        result = up(world.options(workload="vllm-cpu"), world.env)
        secret = world.cluster.get("v1", "Secret", "hf-token", "igwlab")
    assert result.run.ok, result.run.error
    assert secret is not None and secret["stringData"]["token"] == token
    for path in [*(tmp_path / "state").rglob("*"), *tmp_path.rglob("*.yaml")]:
        if path.is_file():
            assert token not in path.read_text(errors="replace"), path


def test_up_with_observability_installs_the_add_on_and_teardown_removes_it(tmp_path: Path) -> None:
    from igwlab.selection import LabSelection

    with lab_world(tmp_path, preset="kv-cache-aware", context=True) as world:
        options = world.options(context="ctx")
        options = type(options)(
            **{**vars(options), "selection": LabSelection(lab=str(world.lab_file), addons=("observability",))}
        )
        result = up(options, world.env)
        assert result.run.ok, result.run.error
        assert result.run.outcomes["addon-grafana"].status == "done"
        installs = {c[3]: c for c in _commands(world, "helm", "upgrade")}
        assert "--repo" in installs["igwlab-prometheus"] and "27.45.0" in installs["igwlab-prometheus"]
        removed = teardown(TeardownOptions(), world.env).removed
    assert "helm release igwlab/igwlab-grafana" in removed and "helm release igwlab/igwlab-prometheus" in removed


def test_up_with_litellm_makes_one_master_key_and_keeps_it(tmp_path: Path) -> None:
    from igwlab.selection import LabSelection, resolve_lab
    from igwlab.verify.run import _litellm_key_from, cluster_access

    with lab_world(tmp_path) as world:
        options = world.options()
        options = type(options)(
            **{**vars(options), "selection": LabSelection(lab=str(world.lab_file), addons=("litellm",))}
        )
        assert up(options, world.env).run.ok
        key = world.cluster.get("v1", "Secret", "igwlab-litellm", "igwlab")["stringData"]["master-key"]  # type: ignore[index]
        again = up(options, world.env)
        assert again.run.outcomes["addon-litellm"].status == "skipped"
        assert world.cluster.get("v1", "Secret", "igwlab-litellm", "igwlab")["stringData"]["master-key"] == key  # type: ignore[index]
        lab = resolve_lab(LabSelection(lab=str(world.lab_file))).lab
        access, _ = cluster_access(lab, world.env)
        assert _litellm_key_from(access, lab) == key, "verify finds the key in the lab's Secret"
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            assert key not in path.read_text(errors="replace"), path


def test_an_unreachable_gateway_address_gets_a_managed_port_forward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an existing cluster whose Gateway address the host cannot reach, `up` forwards a local port
    to the gateway's Service, records it, verify uses it, and teardown stops it."""
    from igwlab.tools import portforward
    from igwlab.tools.portforward import alive
    from igwlab.verify.run import VerifyOptions, verify

    # 127.0.0.2 stands for a LoadBalancer IP the host has no route to. A connection refused means the host
    # answered (the proxy may be starting) and `up` keeps the address, so the missing route, which no
    # address on this machine can produce, is injected by making `routable` report it.
    monkeypatch.setattr(portforward, "routable", lambda host, port, timeout_s=3.0: host != "127.0.0.2")
    with lab_world(tmp_path, preset="agentgateway-fake-llm", context=True, gateway_address="127.0.0.2") as world:
        world.tools.configure(port_forward_target=f"127.0.0.1:{world.port}")
        result = up(world.options(context="ctx"), world.env)
        assert result.run.ok, result.run.error
        forward = read_current_lab()["port_forward"]  # type: ignore[index]
        assert result.url == f"http://127.0.0.1:{forward['local_port']}"
        call = next(c for c in world.tools.calls("kubectl") if c[1] == "port-forward")
        assert call[2:5] == ["--namespace", "igwlab", "svc/inference-gateway"] and call[-2:] == ["--context", "ctx"]
        again = up(world.options(context="ctx"), world.env)
        assert (
            again.url == result.url and len([c for c in world.tools.calls("kubectl") if c[1] == "port-forward"]) == 1
        ), "a re-run reuses it"
        report = verify(VerifyOptions(requests=20), world.env)
        assert {c.name: c.status for c in report.checks}["completion"] == "pass"
        removed = teardown(TeardownOptions(), world.env).removed
    assert "port-forward to the gateway" in removed and not alive(int(forward["pid"]))


def test_a_refused_connection_means_the_gateway_address_is_routable() -> None:
    """A Gateway address whose proxy is still starting refuses connections: the host answered, so `up`
    keeps the address (and its warm-up waits) instead of forwarding a port to a proxy that is not there."""
    import socket

    from igwlab.tools import portforward

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        assert portforward.routable("127.0.0.1", port) and not portforward.reachable("127.0.0.1", port)


def test_every_pool_running_vllm_gets_the_hf_token_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Secret is the lab's, whichever pool runs vLLM (here only the second one does)."""
    import yaml

    token = "hf_test_" + "y" * 24
    monkeypatch.setenv("HF_TOKEN", token)
    with lab_world(tmp_path, preset="multi-model") as world:
        data = yaml.safe_load(world.lab_file.read_text())
        data["extra_pools"][0]["workload"].update(kind="vllm-cpu", replicas=1)
        world.lab_file.write_text(yaml.safe_dump(data))
        world.tools.configure(docker_info={**HEALTHY_DOCKER, "NCPU": 16, "MemTotal": 32 * 1024**3})
        result = up(world.options(), world.env)
        secret = world.cluster.get("v1", "Secret", "hf-token", "igwlab")
    assert result.run.ok, result.run.error
    assert secret is not None and secret["stringData"]["token"] == token


@pytest.mark.parametrize("token", [None, "hf_set"])
def test_doctor_warns_when_vllm_downloads_from_hugging_face_without_a_token(
    token: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from doubles.faketools import FakeTools

    from igwlab.doctor import run_doctor
    from igwlab.selection import LabSelection, resolve_lab
    from igwlab.tools.proc import ToolRunner

    if token is None:
        monkeypatch.delenv("HF_TOKEN", raising=False)
    else:
        monkeypatch.setenv("HF_TOKEN", token)
    tools = ToolRunner(env=FakeTools.install(tmp_path / "fake").env())
    vllm = run_doctor(resolve_lab(LabSelection(lab="agentgateway-vllm-cpu")), tools)
    finding = next(f for f in vllm.findings if f.name == "hf-token")
    assert finding.status == ("warn" if token is None else "ok")
    assert "Qwen/Qwen2.5-1.5B-Instruct" in finding.detail
    if token is None:
        assert "export HF_TOKEN" in finding.fix
    sim = run_doctor(resolve_lab(LabSelection(lab="agentgateway-fake-llm")), tools)
    assert not [f for f in sim.findings if f.name == "hf-token"], "the simulator downloads nothing"


def _kubeconfig(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "kubeconfig"
    cluster = {"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}
    context = {"name": "ctx", "context": {"cluster": "c", "user": "u"}}
    config = {"apiVersion": "v1", "kind": "Config", "clusters": [cluster], "contexts": [context]}
    path.write_text(json.dumps({**config, "users": [{"name": "u", "user": {}}], "current-context": "ctx"}))
    return path


def test_an_api_server_that_refuses_or_hangs_is_named_not_waited_on_for_ever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real socket that refuses, then one that accepts and never answers (a hung or SIGSTOPped API
    server): ClusterUnreachableError naming the server, within the request timeout, not a hang."""
    import socket

    from igwlab.errors import ClusterUnreachableError
    from igwlab.tools import kube as kube_module

    monkeypatch.setattr(kube_module, "REQUEST_TIMEOUT", (1.0, 1.0))
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        refused = free.getsockname()[1]
    with pytest.raises(ClusterUnreachableError) as caught:
        kube_module.KubernetesApi(str(_kubeconfig(tmp_path, refused)), "ctx").list_objects("v1", "Namespace")
    assert caught.value.what == f"nothing accepts connections at the API server of context ctx (127.0.0.1:{refused})"
    assert caught.value.exit_code == ExitCode.PREREQUISITES and "continues where it stopped" in str(caught.value.fix)

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ClusterUnreachableError) as caught:
            kube_module.KubernetesApi(str(_kubeconfig(tmp_path, port)), "ctx").get("v1", "Namespace", "igwlab")
        assert time.monotonic() - started < 15
    assert caught.value.what == f"the API server of context ctx (127.0.0.1:{port}) did not answer within 1s"


def test_verify_load_and_top_take_the_lab_from_the_file_that_is_up(tmp_path: Path) -> None:
    """`up --lab ./my-lab.yaml` with a name that is no preset: verify and load must read the lab from the
    file `up` recorded, not look for a preset of that name; `top --lab` accepts the file's path."""
    import yaml
    from helpers import invoke, json_data
    from typer.testing import CliRunner

    from igwlab.lifecycle import current_lab
    from igwlab.verify.run import VerifyOptions, verify

    with lab_world(tmp_path) as world:
        data = yaml.safe_load(world.lab_file.read_text())
        data["name"] = "my-picker-lab"
        lab_file = tmp_path / "my-picker-lab.yaml"
        lab_file.write_text(yaml.safe_dump(data))
        options = world.options()
        options = type(options)(**{**vars(options), "selection": type(options.selection)(lab=str(lab_file))})
        assert up(options, world.env).run.ok
        report = verify(VerifyOptions(requests=10), world.env)
        load = invoke(CliRunner(), "load", "--rps", "5", "--duration", "1s", "--json")
        current = current_lab()
    reachable = next(check for check in report.checks if check.name == "gateway-reachable")
    assert reachable.status == "pass", reachable
    assert load.exit_code == 0, load.stdout
    assert json_data(load, "load")["stages"][0]["succeeded"] == 5
    assert current.is_lab("my-picker-lab") and current.is_lab(str(lab_file))
    assert not current.is_lab("kgateway-fake-llm") and not current.is_lab(str(tmp_path / "other.yaml"))


def test_a_record_from_before_ownership_tears_down_as_it_always_did(tmp_path: Path, state: Path) -> None:
    """A record without `ownership` (written by an igwlab that did not keep it) stays readable: a re-run of
    its lab keeps it so, and teardown removes the lab's namespace and every release as before."""
    with lab_world(tmp_path, preset="agentgateway-fake-llm", context=True) as world:
        assert up(world.options(context="ctx"), world.env).run.ok
        record = json.loads((state / "current.json").read_text())
        assert record["ownership"]["created"] and "Namespace/igwlab" in record["ownership"]["created"]
        del record["ownership"]
        (state / "current.json").write_text(json.dumps(record))
        assert up(world.options(context="ctx"), world.env).run.ok
        assert "ownership" not in json.loads((state / "current.json").read_text())
        result = teardown(TeardownOptions(), world.env)
    assert (
        "Namespace/igwlab" in result.removed and "helm release agentgateway-system/agentgateway-crds" in result.removed
    )
    assert result.kept == []


def test_a_k3d_cluster_that_was_there_before_up_stays_and_only_the_lab_goes(tmp_path: Path, state: Path) -> None:
    """A k3d cluster of the lab's name that `up` found (made from another state directory, whose record
    is not this one) is reused and kept at teardown, which then removes only the lab from it."""
    with lab_world(tmp_path) as world:
        assert up(world.options(), world.env).run.ok
        (state / "current.json").unlink()  # the cluster's maker is recorded elsewhere
        again = up(world.options(), world.env)
        assert again.run.ok and again.run.outcomes["cluster"].status == "skipped"
        result = teardown(TeardownOptions(), world.env)
        deletes = _commands(world, "k3d", "cluster", "delete")
    assert not deletes, "teardown deleted a k3d cluster up found already there"
    assert result.kept[0] == "k3d cluster igwlab-test", result.kept
    assert "HTTPRoute/igwlab/llm-route" in result.removed and read_current_lab() is None
