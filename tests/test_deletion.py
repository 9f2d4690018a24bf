"""Waiting for deleted namespaces and CRDs to go, when the API server's deleting controller fails a pass.

The failure these tests inject — the CRD finalizer's List answered "storage is (re)initializing", the
namespace controller's content deletion failing — comes from the real API server only by chance, under
load, when a watch cache is still starting (benchmarks/bench_crd_deletion.py provokes it on a real one and
counts it). So a scripted KubeApi plays the controller here: like the real one (crd_finalizer.go,
namespace_controller.go) it retries at once when the object is updated, and otherwise only after a backoff
far longer than the test waits.
"""

from __future__ import annotations

from typing import Any

import pytest

from igwlab import deletion
from igwlab.crds import GATEWAY_VERSION_ANNOTATION, CrdSet, fit
from igwlab.deletion import RETRY_ANNOTATION, wait_crds_gone, wait_namespaces_gone
from igwlab.errors import StepTimeoutError

CRD = "referencegrants.gateway.networking.k8s.io"
STORAGE = "could not list instances: storage is (re)initializing"


@pytest.fixture(autouse=True)
def quick_nudges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nudges 0.2 s after a failure is first seen, then 0.3 s, 0.45 s, 0.5 s... apart (2 s and 15 s in use)."""
    monkeypatch.setattr(deletion, "NUDGE_FIRST_S", 0.2)
    monkeypatch.setattr(deletion, "NUDGE_MAX_S", 0.5)


class ControllerAfterBackoff:
    """One deleted object whose controller's last pass failed with `condition`; it is gone after the
    next pass, which comes when the object is updated (an annotation) and `retry_fixes` says the cause
    cleared, never by itself within the test."""

    def __init__(self, kind: str, name: str, condition: dict[str, str], retry_fixes: bool = True) -> None:
        self.kind = kind
        self.name = name
        self.condition = {"status": "True", **condition}
        self.retry_fixes = retry_fixes
        self.annotated: list[dict[str, str]] = []
        self.gone = False

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        if self.gone or kind != self.kind or name != self.name:
            return None
        return {
            "metadata": {"name": name, "deletionTimestamp": "2026-11-30T00:00:00Z"},
            "status": {"conditions": [self.condition]},
        }

    def annotate(
        self, api_version: str, kind: str, name: str, annotations: dict[str, str], namespace: str | None = None
    ) -> bool:
        if self.gone:
            return False
        self.annotated.append(annotations)
        self.gone = self.retry_fixes
        return True


def test_a_crd_whose_finalizer_failed_a_pass_is_asked_to_retry_and_goes() -> None:
    kube = ControllerAfterBackoff(
        "CustomResourceDefinition", CRD, {"type": "Terminating", "reason": "InstanceDeletionFailed", "message": STORAGE}
    )
    said: list[str] = []
    wait_crds_gone(kube, [CRD], timeout_s=30, poll_s=0.05, say=said.append)  # type: ignore[arg-type]
    assert kube.gone
    assert kube.annotated == [{RETRY_ANNOTATION: "1"}]
    assert said == [
        f"CRD {CRD}: the API server's deletion failed ({STORAGE}); asked it to try again now",
    ]


def test_a_failure_that_does_not_clear_is_retried_with_growing_intervals_then_reported() -> None:
    kube = ControllerAfterBackoff(
        "CustomResourceDefinition",
        CRD,
        {"type": "Terminating", "reason": "InstanceDeletionFailed", "message": STORAGE},
        retry_fixes=False,
    )
    said: list[str] = []
    with pytest.raises(StepTimeoutError) as raised:
        wait_crds_gone(kube, [CRD], timeout_s=2, poll_s=0.05, say=said.append)  # type: ignore[arg-type]
    assert raised.value.why == STORAGE
    # Nudged at about 0.2, 0.4, 0.7, 1.15, 1.65 s (the poll is 0.05 s to 2 s apart): a few, each counted,
    # and told once.
    counts = [int(a[RETRY_ANNOTATION]) for a in kube.annotated]
    assert 2 <= len(counts) <= 5 and counts == list(range(1, len(counts) + 1)), counts
    assert len(said) == 1


def test_a_crd_waiting_for_finalizers_is_not_touched() -> None:
    kube = ControllerAfterBackoff(
        "CustomResourceDefinition",
        CRD,
        {
            "type": "Terminating",
            "reason": "InstanceDeletionInProgress",
            "message": "CustomResource deletion is in progress",
        },
    )
    with pytest.raises(StepTimeoutError) as raised:
        wait_crds_gone(kube, [CRD], timeout_s=1, poll_s=0.05)  # type: ignore[arg-type]
    assert kube.annotated == []
    assert "CustomResource deletion is in progress" in raised.value.why


@pytest.mark.parametrize(
    ("condition", "nudged"),
    [
        (
            {
                "type": "NamespaceDeletionContentFailure",
                "reason": "ContentDeletionFailed",
                "message": "Failed to delete all resource types, 1 remaining: storage is (re)initializing",
            },
            True,
        ),
        (
            {
                "type": "NamespaceDeletionDiscoveryFailure",
                "reason": "DiscoveryFailed",
                "message": "Discovery failed for some groups, 1 failing: unable to retrieve the complete list",
            },
            True,
        ),
        (
            {
                "type": "NamespaceFinalizersRemaining",
                "reason": "SomeFinalizersRemain",
                "message": "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource "
                "instances",
            },
            False,
        ),
    ],
)
def test_a_namespace_is_asked_to_retry_only_after_a_failed_pass(condition: dict[str, str], nudged: bool) -> None:
    kube = ControllerAfterBackoff("Namespace", "igwlab", condition)
    if nudged:
        wait_namespaces_gone(kube, ["igwlab"], timeout_s=30, poll_s=0.05)  # type: ignore[arg-type]
        assert kube.annotated == [{RETRY_ANNOTATION: "1"}]
    else:
        with pytest.raises(StepTimeoutError, match="namespace igwlab is still Terminating after 1s"):
            wait_namespaces_gone(kube, ["igwlab"], timeout_s=1, poll_s=0.05)  # type: ignore[arg-type]
        assert kube.annotated == []


# -- CRDs being deleted, as `up` reads them --------------------------------------------------------------


def _gateway_crds(version: str, deleting: set[str]) -> tuple[CrdSet, dict[str, dict[str, Any] | None]]:
    names = ("gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io")
    wanted = CrdSet(
        title="Gateway API v1.3.0 (standard)",
        names=names,
        version="v1.3.0",
        url="https://example.invalid/standard-install.yaml",
        installed_by="igwlab",
        version_annotation=GATEWAY_VERSION_ANNOTATION,
        channel="standard",
        gateway_api=True,
    )
    existing: dict[str, dict[str, Any] | None] = {}
    for name in names:
        metadata: dict[str, Any] = {"name": name, "annotations": {GATEWAY_VERSION_ANNOTATION: version}}
        if name in deleting:
            metadata["deletionTimestamp"] = "2026-11-30T00:00:00Z"
        existing[name] = {"metadata": metadata, "spec": {"versions": [{"name": "v1", "served": True}]}}
    return wanted, existing


def test_newer_crds_being_deleted_do_not_refuse_the_lab_and_count_as_missing() -> None:
    wanted, existing = _gateway_crds("v1.5.1", deleting={"gateways.gateway.networking.k8s.io"})
    verdict = fit(wanted, existing, safe_upgrades=False)
    # httproutes (not being deleted) is newer: refused for it alone.
    assert verdict.verdict == "refuse" and "httproutes" in verdict.detail and "gateways." not in verdict.detail
    wanted, existing = _gateway_crds("v1.3.0", deleting={"gateways.gateway.networking.k8s.io"})
    verdict = fit(wanted, existing, safe_upgrades=False)
    assert verdict.verdict == "upgrade" and "up adds gateways.gateway.networking.k8s.io" in verdict.detail, verdict
    wanted, existing = _gateway_crds("v1.5.1", deleting=set(wanted.names))
    assert fit(wanted, existing, safe_upgrades=False).verdict == "absent"
