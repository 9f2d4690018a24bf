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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kwokcluster import PodFault
from reallab import RealLab, Result

pytestmark = pytest.mark.realcluster

SIM_LAB = "agentgateway-fake-llm"  # the cheapest preset: simulator pods, one Helm-installed provider
TIMEOUT_EXIT = 4
FAILED_EXIT = 1


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr, result.output


def wait_event(lab: RealLab, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 300) -> dict[str, Any]:
    """The first event of the running `up`'s record that matches, waiting for it to be written."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for event in lab.run_events():
            if predicate(event):
                return event
        time.sleep(0.1)
    raise AssertionError(f"no such event within {timeout_s:.0f}s: {lab.run_events()}")


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
        up = lab.igwlab("up", "--lab", SIM_LAB, "--timeout", str(timeout), timeout_s=600)
        no_traceback(up)
        assert up.returncode == exit_code, up.output
        assert "pod fakellm-" in up.stderr and f": {reason}: " in up.stderr and said in up.stderr, up.output
        assert "Deployment/igwlab/fakellm Available" in up.stderr, up.output
        failed = next(e for e in lab.run_events() if e["step"] == "workload" and e["kind"] == "failed")
        if exit_code == FAILED_EXIT:
            assert failed["duration_s"] < timeout / 2, f"waited on a certain cause: {failed}"
        else:
            assert failed["duration_s"] >= timeout and "gave up after" in up.stderr, failed


# -- a Gateway its controller never programs -------------------------------------------------------------


def test_a_gateway_never_programmed_times_out_naming_the_gateway_and_its_condition(
    real_mirror: Path, tmp_path: Path
) -> None:
    with RealLab.start(tmp_path, real_mirror, data_path=False, hold=frozenset({"Gateway"})) as lab:
        up = lab.igwlab("up", "--lab", SIM_LAB, "--timeout", "15", timeout_s=600)
        no_traceback(up)
        assert up.returncode == TIMEOUT_EXIT, up.output
        error = up.stderr[up.stderr.index("error:") :]
        assert "gave up after 15s waiting for Gateway/igwlab/inference-gateway Programmed" in error, up.output
        # The Gateway API CRD's own default status, as no controller ever touched it.
        assert 'Programmed=Unknown (Pending): "Waiting for controller"' in error, up.output


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
        no_traceback(down)
        assert down.returncode == TIMEOUT_EXIT, down.output
        error = down.json()["error"]
        assert error["message"] == "namespace igwlab is still Terminating after 15s", error
        assert f"finalizers remaining: {HOLD}" in error["why"] and "kubectl patch" in error["hint"], error
        assert lab.releases() == [], "teardown stopped before it removed the releases"

        started = time.monotonic()
        again = lab.igwlab("up", "--lab", SIM_LAB, "--timeout", "15", timeout_s=300)
        no_traceback(again)
        assert again.returncode == TIMEOUT_EXIT, again.output
        assert "namespace igwlab is still Terminating after 15s" in again.stderr, again.output
        assert HOLD in again.stderr and "then run `igwlab up` again" in again.stderr, again.output
        assert time.monotonic() - started < 120, "up waited on the Terminating namespace past its timeout"

        # Once the finalizer is gone the namespace goes, and `up` makes it anew.
        lab.cluster.kubectl("patch", "configmap", "held", "-n", "igwlab", "--type", "merge", "-p",
                            '{"metadata":{"finalizers":null}}')  # fmt: skip
        done = lab.igwlab("up", "--lab", SIM_LAB, "--timeout", "180")
        assert done.returncode == 0, done.output + lab.diagnostics()


# -- pods the scheduler cannot place -------------------------------------------------------------------


def test_a_vllm_replica_no_node_can_hold_names_the_pod_and_the_schedulers_reason(
    real_mirror: Path, tmp_path: Path
) -> None:
    # vLLM on CPU asks 12 CPUs a replica; these nodes have 4 (the EPP and the provider fit).
    with RealLab.start(tmp_path, real_mirror, data_path=False, node_cpu="4", node_memory="16Gi") as lab:
        up = lab.igwlab("up", "--lab", "agentgateway-vllm-cpu", "--timeout", "120", timeout_s=600)
        no_traceback(up)
        assert up.returncode == FAILED_EXIT, up.output
        error = up.stderr[up.stderr.index("error:") :]
        assert "Deployment/igwlab/vllm-qwen2-5-1-5b Available" in error and "cannot happen as things are" in error
        assert "pod vllm-qwen2-5-1-5b-" in error and ": Unschedulable: not scheduled: 0/2 nodes are available" in error
        assert "Insufficient cpu" in error, up.output
        assert "the pod requests cpu 12" in error and "cpu 4" in error, up.output
        failed = next(e for e in lab.run_events() if e["step"] == "workload" and e["kind"] == "failed")
        assert failed["duration_s"] < 60, f"waited on requests no node can hold: {failed}"
