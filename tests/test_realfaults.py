"""Faults on a real API server (kwok cluster built by tests/testbin), and what a user sees of them.

Each test breaks one thing the way it breaks on a real cluster and asserts what `igwlab` says: the
exit code the error hierarchy documents, a message that names the object and the cause, no traceback,
no hang. The faults are real where the cluster can make them: a killed API server, pods that kwok
Stages hold in the state a kubelet reports (kwokcluster.PodFault), nodes too small for a vLLM replica,
another field manager, a finalizer nobody removes. Stood in (see standin.py): the gateway controller,
which `hold` keeps from ever programming the Gateway.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kwokcluster import ClusterError, PodFault
from reallab import RealLab, Result

pytestmark = pytest.mark.realcluster

SIM_LAB = "agentgateway-fake-llm"  # the cheapest preset: simulator pods, one Helm-installed provider
PREREQUISITES_EXIT = 3
TIMEOUT_EXIT = 4
FAILED_EXIT = 1


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr, result.output


def failure(result: Result, exit_code: int) -> dict[str, Any]:
    """The `error` of a command's --json envelope, after checking the exit code and that no traceback
    reached the user; `text` joins message, why and hint (what the terminal shows, unwrapped)."""
    no_traceback(result)
    assert result.returncode == exit_code, result.output
    error = dict(result.json()["error"])
    assert error["exit_code"] == exit_code, error
    error["text"] = " ".join(str(error[key] or "") for key in ("message", "why", "hint"))
    return error


def step_event(lab: RealLab, step: str, kind: str, command: str = "up") -> dict[str, Any]:
    return next(e for e in lab.run_events(command) if e["step"] == step and e["kind"] == kind)


def wait_event(lab: RealLab, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 300) -> dict[str, Any]:
    """The first event of the running `up`'s record that matches, waiting for it to be written."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for event in lab.run_events():
            if predicate(event):
                return event
        time.sleep(0.1)
    raise AssertionError(f"no such event within {timeout_s:.0f}s: {lab.run_events()}")


# -- the API server going away mid-`up` -------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["stopped", "paused"])
def test_the_api_server_going_away_mid_up_ends_it_clearly_and_a_rerun_resumes(
    fault: str, real_mirror: Path, tmp_path: Path
) -> None:
    """`stopped`: the API server is killed (connections refused); `paused`: SIGSTOP, so it keeps its
    connections and answers nothing, as a hung or cut-off API server does."""
    # The stand-in holds the HTTPRoute un-reconciled, so `up` is sure to be waiting in the route step
    # (every Helm release installed, the pods up) when the API server goes.
    with RealLab.start(tmp_path, real_mirror, hold=frozenset({"HTTPRoute"})) as lab:
        running = lab.spawn("up", "--lab", SIM_LAB, "--timeout", "300", "--json")
        try:
            wait_event(lab, lambda e: e["step"] == "route" and e["kind"] == "wait")
            if fault == "stopped":
                lab.cluster.stop_component("kube-apiserver")
            else:
                lab.cluster.pause_component("kube-apiserver")
            gone = time.monotonic()
            up = running.finish(timeout_s=300)
            took = time.monotonic() - gone
        finally:
            running.stop()
            lab.cluster.resume_component("kube-apiserver")
        # A cluster that does not answer is a prerequisite missing (exit 3), mid-command as before it.
        error = failure(up, PREREQUISITES_EXIT)
        assert error["code"] == "cluster-unreachable", error
        server = f"the API server of context {lab.cluster.context} (127.0.0.1:"
        if fault == "stopped":
            assert error["message"].startswith(f"nothing accepts connections at {server}"), error
        else:
            assert error["message"].startswith(server) and error["message"].endswith("did not answer within 30s")
        assert "`igwlab up` continues where it stopped" in error["hint"], error
        assert took < 120, f"up took {took:.0f}s to notice the API server was gone"

        if fault == "stopped":
            lab.cluster.start()
        assert lab.standin is not None
        lab.standin.hold = frozenset()
        again = lab.igwlab("up", "--lab", SIM_LAB, "--timeout", "180", "--json")
        assert again.returncode == 0, again.output + lab.diagnostics()
        steps = {step["step"]: step["status"] for step in again.json()["data"]["steps"]}
        assert steps["workload"] == steps["pool"] == steps["gateway"] == "skipped", steps
        # The route is done by whichever comes first: the stand-in let go, or this run's wait.
        assert steps["route"] in ("done", "skipped") and steps["warmup"] == "done", steps


# -- a kubeconfig that does not fit the API server ------------------------------------------------------


def test_a_kubeconfig_that_does_not_fit_the_api_server_is_named_for_what_it_is(
    real_binaries: None, tmp_path: Path
) -> None:
    """The real client against a real API server (and a plain HTTP server) on loopback: a certificate
    the kubeconfig's authority does not vouch for, an address that does not speak TLS, and a port nobody
    listens on, http:// where the API server speaks TLS and a credential plugin that fails are each named
    as such (exit 3) with a fix that fits, said once, not as "does not answer"."""
    import http.server
    import socket
    import sys
    import threading
    import uuid

    from kwokcluster import KwokCluster

    cluster = KwokCluster.create(f"igwlab-tls-{uuid.uuid4().hex[:6]}", tmp_path / "kwok", nodes=0)
    plain = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    try:
        config = yaml.safe_load(cluster.kubeconfig.read_text(encoding="utf-8"))
        entry = next(c for c in config["clusters"] if c["name"] == next(
            x["context"]["cluster"] for x in config["contexts"] if x["name"] == cluster.context))  # fmt: skip
        entry["cluster"].pop("certificate-authority", None)
        entry["cluster"].pop("certificate-authority-data", None)
        cases = {  # what the message says, what the fix says
            "untrusted": (
                entry["cluster"]["server"],
                "certificate is not one the kubeconfig's certificate authority",
                "fetch its kubeconfig again",
            ),
            "plain-http": (
                f"https://127.0.0.1:{plain.server_address[1]}",
                "does not speak TLS",
                "check the server address in the kubeconfig",
            ),
            "closed": (
                f"https://127.0.0.1:{closed_port}",
                "nothing accepts connections at the API server",
                "is the cluster up?",
            ),
            "http-scheme": (
                entry["cluster"]["server"].replace("https://", "http://"),
                "speaks TLS, and the kubeconfig's server address is http://",
                "with https://",
            ),
        }
        for name, (server, said, fix) in cases.items():
            entry["cluster"]["server"] = server
            kubeconfig = tmp_path / f"kubeconfig-{name}"
            kubeconfig.write_text(yaml.safe_dump(config), encoding="utf-8")
            env = {**cluster.env, "KUBECONFIG": str(kubeconfig), "IGWLAB_STATE_DIR": str(tmp_path / "state")}
            for command in (["doctor", "--context", cluster.context], ["up", "--context", cluster.context]):
                done = subprocess.run(
                    [sys.executable, "-m", "igwlab", *command, "--json"],
                    env=env, capture_output=True, text=True, timeout=300, check=False,
                )  # fmt: skip
                result = Result(["igwlab", *command], done.returncode, done.stdout, done.stderr)
                error = failure(result, PREREQUISITES_EXIT)
                assert said in error["message"] and fix in error["hint"], (name, error)
                assert "does not answer" not in error["text"] and "Error:" not in error["text"], (name, error)

        # A credential plugin that fails: the client goes on without credentials, and the API server refuses.
        config = yaml.safe_load(cluster.kubeconfig.read_text(encoding="utf-8"))
        user = next(x["context"]["user"] for x in config["contexts"] if x["name"] == cluster.context)
        entry = next(u for u in config["users"] if u["name"] == user)
        entry["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "false"}}
        kubeconfig = tmp_path / "kubeconfig-plugin"
        kubeconfig.write_text(yaml.safe_dump(config), encoding="utf-8")
        env = {**cluster.env, "KUBECONFIG": str(kubeconfig), "IGWLAB_STATE_DIR": str(tmp_path / "state")}
        done = subprocess.run(
            [sys.executable, "-m", "igwlab", "doctor", "--context", cluster.context, "--json"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        error = failure(Result(["igwlab", "doctor"], done.returncode, done.stdout, done.stderr), PREREQUISITES_EXIT)
        assert "the kubeconfig's credential plugin failed (exec: process returned 1)" in error["message"], error
        assert "ERROR:root" not in done.stderr, done.stderr
    finally:
        plain.shutdown()
        cluster.delete()


# -- pods that never get Ready -------------------------------------------------------------------------


# A kubelet's reason that waiting cannot clear stops `up` at once (exit 1, "cannot happen as things are");
# a pod whose readiness probe fails may still come up, so `up` waits until --timeout (exit 4).
@pytest.mark.parametrize(
    ("state", "said", "reason", "exit_code"),
    [
        ("CrashLoopBackOff", "flag provided but not defined: -bogus", "CrashLoopBackOff", FAILED_EXIT),
        ("ImagePullBackOff", "failed to resolve reference: not found", "ImagePullBackOff", FAILED_EXIT),
        ("CreateContainerConfigError", 'secret "hf-token" not found', "CreateContainerConfigError", FAILED_EXIT),
        ("NotReady", "HTTP probe failed with statuscode: 503", "Ready=False", TIMEOUT_EXIT),
    ],
    ids=["crash-loop", "image-pull", "config-error", "not-ready"],
)
def test_pods_that_never_get_ready_are_named_with_their_reason(
    state: str, said: str, reason: str, exit_code: int, real_mirror: Path, tmp_path: Path
) -> None:
    fault = PodFault(state, ("app", "fakellm"), said)  # type: ignore[arg-type]
    timeout = 60 if exit_code == FAILED_EXIT else 15
    with RealLab.start(tmp_path, real_mirror, data_path=False, stages=[fault]) as lab:
        up = lab.igwlab("up", "--lab", SIM_LAB, "--timeout", str(timeout), "--json", timeout_s=600)
        error = failure(up, exit_code)
        assert "Deployment/igwlab/fakellm Available" in error["message"], error
        assert "pod fakellm-" in error["why"] and f": {reason}: " in error["why"] and said in error["why"], error
        failed = step_event(lab, "workload", "failed")
        if exit_code == FAILED_EXIT:
            assert "cannot happen as things are" in error["message"], error
            assert failed["duration_s"] < timeout / 2, f"waited on a certain cause: {failed}"
        else:
            assert f"gave up after {timeout}s" in error["message"] and failed["duration_s"] >= timeout, failed
            assert "readiness probe" in error["hint"], error


# -- a Gateway its controller never programs -------------------------------------------------------------


def test_a_gateway_never_programmed_times_out_naming_the_gateway_and_its_condition(
    real_mirror: Path, tmp_path: Path
) -> None:
    with RealLab.start(tmp_path, real_mirror, data_path=False, hold=frozenset({"Gateway"})) as lab:
        up = lab.igwlab("up", "--lab", SIM_LAB, "--timeout", "15", "--json", timeout_s=600)
        error = failure(up, TIMEOUT_EXIT)
        assert "gave up after 15s waiting for Gateway/igwlab/inference-gateway Programmed" in error["message"], error
        # The Gateway API CRD's own default status, as no controller ever touched it.
        assert 'Programmed=Unknown (Pending): "Waiting for controller"' in error["why"], error


# -- a namespace stuck Terminating -----------------------------------------------------------------------

HOLD = "igwlab.test/hold"


def test_a_namespace_stuck_terminating_is_named_by_teardown_and_by_up_and_clears_once_freed(
    real_mirror: Path, tmp_path: Path
) -> None:
    with RealLab.start(tmp_path, real_mirror) as lab:
        up = lab.igwlab("up", "--lab", SIM_LAB, "--timeout", "180")
        assert up.returncode == 0, up.output + lab.diagnostics()
        # Something the lab did not make, with a finalizer whose controller is gone.
        holder = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "held", "namespace": "igwlab", "finalizers": [HOLD]},
        }
        lab.cluster.kubectl("apply", "-f", "-", stdin=json.dumps(holder))

        down = lab.run("teardown", "--yes", "--timeout", "15", "--json", timeout_s=300)
        error = failure(down, TIMEOUT_EXIT)
        assert error["message"] == "namespace igwlab is still Terminating after 15s", error
        assert f"finalizers remaining: {HOLD}" in error["why"] and "kubectl patch" in error["hint"], error
        assert lab.releases() == [], "teardown stopped before it removed the releases"

        started = time.monotonic()
        again = lab.igwlab("up", "--lab", SIM_LAB, "--timeout", "15", "--json", timeout_s=300)
        error = failure(again, TIMEOUT_EXIT)
        assert error["message"] == "namespace igwlab is still Terminating after 15s", error
        assert HOLD in error["why"] and "then run `igwlab up` again" in error["hint"], error
        assert time.monotonic() - started < 120, "up waited on the Terminating namespace past its timeout"

        # Once the finalizer is gone the namespace goes, and `up` makes it anew.
        lab.cluster.kubectl("patch", "configmap", "held", "-n", "igwlab", "--type", "merge", "-p",
                            '{"metadata":{"finalizers":null}}')  # fmt: skip
        done = lab.igwlab("up", "--lab", SIM_LAB, "--timeout", "180")
        assert done.returncode == 0, done.output + lab.diagnostics()


def test_a_crd_still_terminating_is_named_by_teardown_and_waited_for_by_up_then_made_anew(
    real_mirror: Path, tmp_path: Path
) -> None:
    """A ReferenceGrant the lab did not make, held by a finalizer nobody removes, keeps its CRD
    Terminating after `teardown --crds`. A later `up` must not take the doomed CRD for installed (it is
    still Established): it waits for it to go, and once the finalizer is removed makes it anew, with the
    API server's CRD finalizer asked to retry rather than left to its backoff."""
    crd = "referencegrants.gateway.networking.k8s.io"
    with RealLab.start(tmp_path, real_mirror) as lab:
        up = lab.igwlab("up", "--lab", SIM_LAB, "--timeout", "180")
        assert up.returncode == 0, up.output + lab.diagnostics()
        holder = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "ReferenceGrant",
            "metadata": {"name": "held", "namespace": "default", "finalizers": [HOLD]},
            "spec": {
                "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "igwlab"}],
                "to": [{"group": "", "kind": "Service"}],
            },
        }
        lab.cluster.kubectl("apply", "-f", "-", stdin=json.dumps(holder))

        down = lab.run("teardown", "--yes", "--crds", "--timeout", "40", "--json", timeout_s=300)
        error = failure(down, TIMEOUT_EXIT)
        assert error["message"] == f"CRD {crd} is still terminating after 40s", error
        assert f"held by ReferenceGrant default/held (finalizers: {HOLD})" in error["why"], error
        assert "approved" not in error["why"] and "accepted" not in error["why"], error  # only what holds it
        assert "then run `igwlab teardown --crds` again" in error["hint"], error
        assert lab.releases() == [], "teardown stopped before it removed the releases"
        shown = lab.run("status")  # the record says the teardown did not finish, not that the lab is up
        assert "a teardown began and did not finish" in shown.stdout, shown.output
        assert lab.run("status", "--json").json()["data"]["status"] == "tearing-down"

        running = lab.spawn("up", "--lab", SIM_LAB, "--timeout", "180", "--json")
        try:
            wait_event(lab, lambda e: e["step"] == "gateway-api-crds" and e["kind"] == "apply")
            live = json.loads(lab.cluster.kubectl("get", "crd", crd, "-o", "json"))
            assert live["metadata"].get("deletionTimestamp"), "the CRD went before the test let it"
            lab.cluster.kubectl("patch", "referencegrant", "held", "-n", "default", "--type", "merge", "-p",
                                '{"metadata":{"finalizers":null}}')  # fmt: skip
            again = running.finish(timeout_s=300)
        finally:
            running.stop()
        assert again.returncode == 0, again.output + lab.diagnostics()
        steps = {step["step"]: step["status"] for step in again.json()["data"]["steps"]}
        assert steps["gateway-api-crds"] == "done", steps
        made = json.loads(lab.cluster.kubectl("get", "crd", crd, "-o", "json"))
        assert made["metadata"]["uid"] != live["metadata"]["uid"], "up applied to the CRD being deleted"
        assert not made["metadata"].get("deletionTimestamp"), made["metadata"]
        lab.cluster.kubectl("get", "httproute", "-n", "igwlab", "llm-route")


# -- pods the scheduler cannot place -------------------------------------------------------------------


def test_a_vllm_replica_no_node_can_hold_names_the_pod_and_the_schedulers_reason(
    real_mirror: Path, tmp_path: Path
) -> None:
    # vLLM on CPU asks 12 CPUs a replica; these nodes have 4 (the EPP and the provider fit).
    with RealLab.start(tmp_path, real_mirror, data_path=False, node_cpu="4", node_memory="16Gi") as lab:
        up = lab.igwlab("up", "--lab", "agentgateway-vllm-cpu", "--timeout", "120", "--json", timeout_s=600)
        error = failure(up, FAILED_EXIT)
        assert "Deployment/igwlab/vllm-qwen2-5-1-5b Available" in error["message"], error
        assert "cannot happen as things are" in error["message"], error
        assert "pod vllm-qwen2-5-1-5b-" in error["why"] and ": Unschedulable: not scheduled: 0/2 nodes" in error["why"]
        assert "Insufficient cpu" in error["why"], error
        assert "the pod requests cpu 12" in error["why"] and "cpu 4," in error["why"], error
        failed = step_event(lab, "workload", "failed")
        assert failed["duration_s"] < 60, f"waited on requests no node can hold: {failed}"


# -- diagnose on the real cluster ---------------------------------------------------------------------


def test_diagnose_bundles_real_events_and_dumps_of_the_pods_in_a_fault_state(real_mirror: Path, tmp_path: Path) -> None:
    said = "flag provided but not defined: -bogus"
    fault = PodFault("CrashLoopBackOff", ("app", "fakellm"), said)
    with RealLab.start(tmp_path, real_mirror, data_path=False, stages=[fault]) as lab:
        up = lab.igwlab("up", "--lab", SIM_LAB, "--timeout", "60", "--json", timeout_s=600)
        failure(up, FAILED_EXIT)
        bundle = tmp_path / "diagnose.tar.gz"
        diagnosed = lab.run("diagnose", "--out", str(bundle), "--json")
        no_traceback(diagnosed)
        assert diagnosed.returncode == 0 and diagnosed.json()["data"]["path"] == str(bundle), diagnosed.output
        with tarfile.open(bundle) as archive:
            files = {
                member.name: archive.extractfile(member).read().decode()  # type: ignore[union-attr]
                for member in archive.getmembers()
                if member.isfile()
            }
    assert "cluster not reachable" not in files["NOTES.txt"], files["NOTES.txt"]
    # Events the real scheduler and the (kwok) kubelet wrote about the lab's pods.
    events = yaml.safe_load(files["cluster/events/igwlab.yaml"])
    about = {
        (e.get("reportingComponent") or e["source"].get("component"), e["reason"], e["involvedObject"]["name"])
        for e in events
    }
    dumped = [yaml.safe_load(text) for name, text in files.items() if name.startswith("cluster/pods/igwlab/")]
    pods = [pod for pod in dumped if pod["metadata"]["labels"].get("app") == "fakellm"]
    names = {pod["metadata"]["name"] for pod in pods}
    assert len(names) == 3, sorted(files)
    scheduled = {name for component, reason, name in about if (component, reason) == ("default-scheduler", "Scheduled")}
    assert names <= scheduled, sorted(about, key=str)
    assert any(e["reason"] == "BackOff" and e["type"] == "Warning" for e in events), events
    # The Deployment as the API server has it, and every pod with the state it is stuck in.
    deployment = yaml.safe_load(files["cluster/objects/Deployment-fakellm.yaml"])
    assert deployment["status"]["unavailableReplicas"] == 3, deployment["status"]
    for pod in pods:
        container = pod["status"]["containerStatuses"][0]
        assert container["state"]["waiting"]["reason"] == "CrashLoopBackOff", container
        assert container["lastState"]["terminated"]["message"] == said, container
    # Every pod of the lab's namespaces has a log entry: the log, or why the cluster gave none.
    logs = [
        name for name in files if name.startswith("cluster/logs/igwlab/") and name.split("/")[3].split(".")[0] in names
    ]
    assert len(logs) == 3 + 3, sorted(files)  # and of the last run of each restarted container
    # kwok keeps no container logs, as a kubelet keeps none of a container that never started: the
    # API server's refusal stands in the log's place, and the bundle goes on.
    for name in logs:
        pod = name.split("/")[3].split(".")[0]
        assert files[name].startswith("not available: HTTP 400 ") and f'pod "igwlab/{pod}"' in files[name], files[name]
        assert f"{name}: {files[name].strip()}" in files["NOTES.txt"], files["NOTES.txt"]
    assert "lab agentgateway-fake-llm; namespaces agentgateway-system, igwlab" in files["NOTES.txt"]
    # Helm's word on each release of the lab (up may have stopped before it installed them).
    assert {"helm/fakellm-pool.txt", "helm/agentgateway.txt"} <= set(files), sorted(files)


# -- a field another manager owns --------------------------------------------------------------------

OTHER_MANAGER = "ops-team"


def managers_of(obj: dict[str, Any], *path: str) -> set[str]:
    """The field managers whose managedFields (fieldsV1) hold `path`, e.g. ("f:spec", "f:replicas")."""
    found = set()
    for entry in obj["metadata"].get("managedFields") or []:
        node = entry.get("fieldsV1") or {}
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            found.add(entry["manager"])
    return found


def test_a_field_another_manager_took_is_taken_back_by_up_and_the_rest_left_alone(
    real_mirror: Path, tmp_path: Path
) -> None:
    with RealLab.start(tmp_path, real_mirror) as lab:
        up = lab.igwlab("up", "--lab", SIM_LAB, "--timeout", "180")
        assert up.returncode == 0, up.output + lab.diagnostics()

        def deployment() -> dict[str, Any]:
            return dict(
                json.loads(
                    lab.cluster.kubectl(
                        "get", "deployment", "fakellm", "-n", "igwlab", "-o", "json", "--show-managed-fields"
                    )
                )
            )

        # Another manager scales the lab's workload down and notes itself on it (server-side apply, forced,
        # as an operator's script or an autoscaler would).
        theirs = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "fakellm", "namespace": "igwlab", "annotations": {"ops.example/owner": "ops"}},
            "spec": {"replicas": 1},
        }
        lab.cluster.kubectl("apply", "--server-side", "--force-conflicts", f"--field-manager={OTHER_MANAGER}",
                            "-f", "-", stdin=json.dumps(theirs))  # fmt: skip
        assert managers_of(deployment(), "f:spec", "f:replicas") == {OTHER_MANAGER}
        # The field is really theirs now: igwlab's apply of it without force is a conflict.
        ours = {**theirs, "metadata": {"name": "fakellm", "namespace": "igwlab"}, "spec": {"replicas": 3}}
        with pytest.raises(ClusterError, match=f'conflict with "{OTHER_MANAGER}".*\\.spec\\.replicas'):
            lab.cluster.kubectl("apply", "--server-side", "--dry-run=server", "--field-manager=igwlab",
                                "-f", "-", stdin=json.dumps(ours))  # fmt: skip

        again = lab.igwlab("up", "--lab", SIM_LAB, "--timeout", "180", "--json")
        assert again.returncode == 0, again.output + lab.diagnostics()
        steps = {step["step"]: step["status"] for step in again.json()["data"]["steps"]}
        assert steps["workload"] == "done", f"the lab's 3 replicas were not restored: {steps}"
        after = deployment()
        assert after["spec"]["replicas"] == 3 and after["status"]["readyReplicas"] == 3, after["status"]
        assert managers_of(after, "f:spec", "f:replicas") == {"igwlab"}, after["metadata"]["managedFields"]
        # What igwlab does not write stays as the other manager set it, and theirs.
        assert after["metadata"]["annotations"]["ops.example/owner"] == "ops"
        assert managers_of(after, "f:metadata", "f:annotations", "f:ops.example/owner") == {OTHER_MANAGER}
