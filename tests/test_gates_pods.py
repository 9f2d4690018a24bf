"""Gates read the pods behind a Deployment that is not Available and the controller's own words for a
Gateway that is not Programmed, name the cause, and say when it is certain so `up` stops at once.

Pod and Gateway status here have the shapes of the Kubernetes API reference (core/v1 PodStatus,
ContainerStatus, ContainerStateWaiting/Terminated, PodCondition; Gateway API GatewayStatus)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from doubles.fakecluster import FakeCluster
from doubles.faketools import HEALTHY_DOCKER, FakeTools
from doubles.world import lab_world

from igwlab import gates as g
from igwlab.catalog import load_catalog
from igwlab.doctor import run_doctor
from igwlab.errors import IgwlabError, StepTimeoutError
from igwlab.lifecycle import up
from igwlab.selection import LabSelection, resolve_lab
from igwlab.tools.proc import ToolRunner

NS = "igwlab"
EPP = "fakellm-pool-epp"


def _cluster(**kwargs: Any) -> FakeCluster:
    cluster = FakeCluster(load_catalog().stack_for("agentgateway"), never_ready={f"Deployment/{NS}/{EPP}"}, **kwargs)
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    cluster.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": EPP, "namespace": NS},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": EPP}}},
        }
    )
    return cluster


def _pod(
    container_status: dict[str, Any] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    requests: dict[str, str] | None = None,
    phase: str = "Pending",
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or [], "qosClass": "Burstable"}
    if container_status is not None:
        status["containerStatuses"] = [
            {
                "name": "epp",
                "image": "registry.k8s.io/gateway-api-inference-extension/epp:v1.5.0",
                "imageID": "",
                "ready": False,
                "started": False,
                "containerID": "containerd://3f1c0d2e",
                **container_status,
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{EPP}-7d9f8b6c5-x2x8q", "namespace": NS, "labels": {"app": EPP}},
        "spec": {
            "containers": [
                {
                    "name": "epp",
                    "image": "registry.k8s.io/gateway-api-inference-extension/epp:v1.5.0",
                    "resources": {"requests": requests or {"cpu": "100m", "memory": "256Mi"}},
                }
            ]
        },
        "status": status,
    }


def _check(cluster: FakeCluster) -> g.GateState:
    return g.DeploymentAvailable(NS, EPP).check(cluster)


CRASHED = {
    "restartCount": 3,
    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container=epp"}},
    "lastState": {
        "terminated": {
            "exitCode": 2,
            "reason": "Error",
            "message": "panic: runtime error: invalid memory address or nil pointer dereference",
            "startedAt": "2026-11-29T19:25:07Z",
            "finishedAt": "2026-11-29T19:25:08Z",
            "containerID": "containerd://3f1c0d2e",
        }
    },
}


def test_a_crash_loop_is_named_with_its_termination_message_and_is_certain() -> None:
    cluster = _cluster()
    cluster.apply(_pod(CRASHED))
    state = _check(cluster)
    assert not state.ok and state.failed
    assert "CrashLoopBackOff" in state.detail and "exit code 2" in state.detail
    assert "nil pointer dereference" in state.detail
    assert "--previous" in state.fix


def test_a_crash_without_a_termination_message_quotes_its_last_log_lines() -> None:
    crashed = {**CRASHED, "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}
    cluster = _cluster(pod_logs={f"{EPP}-7d9f8b6c5-x2x8q": "starting\nERROR setup failed to load config: bad\n"})
    cluster.apply(_pod(crashed))
    state = _check(cluster)
    assert state.failed and "failed to load config: bad" in state.detail


def test_a_first_crash_is_reported_but_waited_on() -> None:
    cluster = _cluster()
    cluster.apply(_pod({**CRASHED, "restartCount": 1}))
    state = _check(cluster)
    assert not state.ok and not state.failed and "CrashLoopBackOff" in state.detail


def test_a_pod_running_but_not_ready_is_named_with_its_failing_probe_and_waited_on() -> None:
    pod = f"{EPP}-7d9f8b6c5-x2x8q"
    unhealthy = {
        "type": "Warning",
        "reason": "Unhealthy",
        "message": "Readiness probe failed: HTTP probe failed with statuscode: 503",
        "involvedObject": {"kind": "Pod", "name": pod},
        "lastTimestamp": "2026-01-01T00:00:05Z",
    }
    older = {**unhealthy, "message": "Readiness probe failed: connection refused"}
    older["lastTimestamp"] = "2026-01-01T00:00:01Z"
    cluster = _cluster(pod_events={pod: [older, unhealthy]})
    not_ready = {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}
    cluster.apply(_pod({"restartCount": 0, "state": {"running": {}}}, conditions=[not_ready], phase="Running"))
    state = _check(cluster)
    assert not state.ok and not state.failed
    assert f"pod {pod}: Ready=False" in state.detail and "ContainersNotReady" in state.detail
    assert "Readiness probe failed: HTTP probe failed with statuscode: 503" in state.detail
    assert "readiness probe" in state.fix


def test_a_container_waiting_for_a_reason_igwlab_does_not_know_is_quoted() -> None:
    waiting = {"reason": "RunContainerError", "message": "failed to start: exec format error"}
    cluster = _cluster()
    not_ready = {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}
    cluster.apply(_pod({"restartCount": 0, "state": {"waiting": waiting}}, conditions=[not_ready]))
    state = _check(cluster)
    assert not state.failed and "RunContainerError" in state.detail and "exec format error" in state.detail


def test_an_image_that_cannot_be_pulled_names_the_image_and_the_reason() -> None:
    waiting = {
        "reason": "ImagePullBackOff",
        "message": 'Back-off pulling image "registry.k8s.io/gateway-api-inference-extension/epp:v1.5.0"',
    }
    cluster = _cluster()
    cluster.apply(_pod({"restartCount": 0, "state": {"waiting": waiting}}))
    state = _check(cluster)
    assert state.failed and "ImagePullBackOff" in state.detail
    assert "cannot pull image registry.k8s.io/gateway-api-inference-extension/epp:v1.5.0" in state.detail


@pytest.mark.parametrize(
    ("message", "certain"),
    [
        ('failed to resolve reference "registry.k8s.io/x/epp:v9": registry.k8s.io/x/epp:v9: not found', True),
        ("failed to do request: Head https://registry.k8s.io/v2/: dial tcp: i/o timeout", False),
    ],
)
def test_err_image_pull_is_certain_only_when_the_image_is_not_there(message: str, certain: bool) -> None:
    cluster = _cluster()
    cluster.apply(_pod({"restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull", "message": message}}}))
    state = _check(cluster)
    assert state.failed is certain and "ErrImagePull" in state.detail


def _unschedulable(cluster: FakeCluster, requests: dict[str, str]) -> g.GateState:
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "k3d-igwlab-server-0"},
            "status": {
                "allocatable": {"cpu": "2", "memory": "3920Mi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
    )
    scheduled = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
        "1 No preemption victims found for incoming pod.",
        "lastProbeTime": None,
        "lastTransitionTime": "2026-11-29T19:30:00Z",
    }
    cluster.apply(_pod(conditions=[scheduled], requests=requests))
    return _check(cluster)


def test_requests_no_node_can_hold_are_certain_with_requests_against_allocatable() -> None:
    state = _unschedulable(_cluster(), {"cpu": "4", "memory": "8Gi"})
    assert state.failed and "Insufficient cpu" in state.detail
    assert "requests cpu 4, memory 8.0Gi" in state.detail and "has cpu 2, memory 3.8Gi allocatable" in state.detail
    assert "pool.epp.resources" in state.fix


def test_requests_that_fit_an_empty_node_are_waited_on() -> None:
    state = _unschedulable(_cluster(), {"cpu": "500m", "memory": "256Mi"})
    assert not state.failed and "Unschedulable" in state.detail


def test_a_missing_secret_is_named() -> None:
    waiting = {"reason": "CreateContainerConfigError", "message": 'secret "hf-token" not found'}
    cluster = _cluster()
    cluster.apply(_pod({"restartCount": 0, "state": {"waiting": waiting}}))
    state = _check(cluster)
    assert state.failed and 'secret "hf-token" not found' in state.detail and "HF_TOKEN" in state.fix


class _Written:
    """Objects as a controller left them, read back through `get` (the in-memory cluster would reconcile a
    Gateway's status itself; here the status is the test's)."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))


def _gateway(conditions: list[dict[str, Any]], listeners: list[dict[str, Any]] | None = None) -> Any:
    return _Written(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "inference-gateway", "namespace": NS},
            "spec": {"gatewayClassName": "kgateway", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
            "status": {"conditions": conditions, "listeners": listeners or [], "addresses": []},
        }
    )


def test_a_rejected_gateway_quotes_its_controller_and_stops_the_wait() -> None:
    message = "Listener http: protocol HTTPS requires a certificateRef"
    cluster = _gateway(
        [
            {"type": "Accepted", "status": "False", "reason": "ListenersNotValid", "message": message},
            {"type": "Programmed", "status": "False", "reason": "Invalid", "message": "the Gateway is not valid"},
        ],
        [
            {
                "name": "http",
                "attachedRoutes": 0,
                "supportedKinds": [],
                "conditions": [
                    {"type": "ResolvedRefs", "status": "False", "reason": "InvalidCertificateRef", "message": "no tls"}
                ],
            }
        ],
    )
    state = g.GatewayProgrammed(NS, "inference-gateway").check(cluster)
    assert state.failed
    assert f'Accepted=False (ListenersNotValid): "{message}"' in state.detail
    assert 'listener http: ResolvedRefs=False (InvalidCertificateRef): "no tls"' in state.detail


def test_a_gateway_waiting_for_an_address_is_quoted_but_waited_on() -> None:
    cluster = _gateway(
        [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "message": ""},
            {
                "type": "Programmed",
                "status": "False",
                "reason": "AddressNotAssigned",
                "message": "No addresses have been assigned to the Gateway",
            },
        ]
    )
    state = g.GatewayProgrammed(NS, "inference-gateway").check(cluster)
    assert not state.ok and not state.failed
    assert 'Programmed=False (AddressNotAssigned): "No addresses have been assigned to the Gateway"' in state.detail


def test_up_stops_as_soon_as_the_cause_is_certain(tmp_path: Path) -> None:
    with lab_world(tmp_path, context=True, never_ready={f"Deployment/{NS}/{EPP}"}) as world:
        world.cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        world.cluster.apply(_pod(CRASHED))
        started = time.monotonic()
        result = up(world.options(context="ctx", timeout_s=120), world.env)
    elapsed = time.monotonic() - started
    error = result.run.error
    assert error is not None and not isinstance(error, StepTimeoutError) and isinstance(error, IgwlabError)
    assert elapsed < 60, "the cause was certain: no waiting for the timeout"
    assert EPP in error.what and "CrashLoopBackOff" in (error.why or "") and "nil pointer" in (error.why or "")
    assert "--previous" in (error.fix or "")


def _doctor_resources(tmp_path: Path, **changes: Any) -> Any:
    data = yaml.safe_load((Path(__file__).parent.parent / "labs" / "agentgateway-fake-llm.yaml").read_text())
    for path, value in changes.items():
        node = data
        keys = path.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump(data))
    tools = ToolRunner(env=FakeTools.install(tmp_path / "fake", docker_info=HEALTHY_DOCKER).env())
    report = run_doctor(resolve_lab(LabSelection(lab=str(lab))), tools)
    return next(f for f in report.findings if f.name == "resources")


def test_doctor_adds_up_the_labs_own_requests_and_replicas(tmp_path: Path) -> None:
    big = _doctor_resources(tmp_path, **{"workload.resources": {"cpu": "4", "memory": "2Gi"}})
    assert big.status == "fail", big  # 3 replicas x 4 CPUs on a Docker with 8
    assert "12.1 CPUs" in big.detail and "3 x 4 CPU" in big.detail


def test_doctor_counts_the_epp_overrides(tmp_path: Path) -> None:
    epp = _doctor_resources(tmp_path, **{"pool.epp": {"resources": {"cpu": "10", "memory": "1Gi"}}})
    assert epp.status == "fail" and "10 CPU" in epp.detail


def test_doctor_is_content_with_a_lab_that_fits(tmp_path: Path) -> None:
    assert _doctor_resources(tmp_path).status == "ok"


def test_a_workload_scaled_below_the_labs_count_is_not_done_so_up_applies_it_again() -> None:
    cluster = FakeCluster(load_catalog().stack_for("agentgateway"))
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "fakellm", "namespace": NS},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "fakellm"}}},
    }
    cluster.apply(deployment)
    state = g.DeploymentAvailable(NS, "fakellm", 3).check(cluster)
    assert not state.ok and "spec.replicas is 1, the lab asks for 3" in state.detail
    assert g.DeploymentAvailable(NS, "fakellm").check(cluster).ok  # no count of its own: the spec's
    cluster.apply({**deployment, "spec": {**deployment["spec"], "replicas": 5}})
    assert g.DeploymentAvailable(NS, "fakellm", 3).check(cluster).ok  # scaled up by hand: more than asked is fine
