"""Objects being deleted: waiting for them to go, and naming what keeps one from going.

A deleted namespace stays `Terminating` (`metadata.deletionTimestamp` set, `status.phase` Terminating)
until the API server's namespace controller has removed everything in it; objects whose finalizers no
controller removes keep it there for good. The controller says why in the namespace's conditions
(core/v1 NamespaceCondition: `NamespaceContentRemaining`, `NamespaceFinalizersRemaining`,
`NamespaceDeletionContentFailure`...), e.g. "Some content in the namespace has finalizers remaining:
example.com/hold in 1 resource instances". A deleted CRD goes the same way, once every custom resource
of it is gone (its `Terminating` condition and the like say what is left).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from igwlab.crds import CRD_API
from igwlab.errors import StepTimeoutError
from igwlab.tools.kube import KubeApi, Manifest

_FINALIZERS_NULL = '\'{"metadata":{"finalizers":null}}\''


def is_terminating(namespace: Manifest | None) -> bool:
    """The namespace exists and is being deleted."""
    if namespace is None:
        return False
    phase = (namespace.get("status") or {}).get("phase")
    return phase == "Terminating" or bool((namespace.get("metadata") or {}).get("deletionTimestamp"))


def blocking_causes(obj: Manifest | None) -> list[str]:
    """What the API server says keeps a deleted object from going (its True conditions' messages)."""
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return [str(c["message"]) for c in conditions if c.get("status") == "True" and c.get("message")]


def wait_namespaces_gone(
    kube: KubeApi,
    names: list[str],
    timeout_s: float,
    poll_s: float = 0.25,
    cancelled: Callable[[], None] | None = None,
    retry: str = "igwlab teardown",
) -> None:
    """Return once every namespace in `names` is gone; a namespace the API server cannot finish deleting
    within `timeout_s` (seconds) raises StepTimeoutError (exit 4) naming it and what holds it.
    `cancelled` is called at each check and may raise to stop the wait; `retry`: the command to run again
    once the namespace is free."""

    def stuck(name: str, causes: str) -> StepTimeoutError:
        return StepTimeoutError(
            f"namespace {name} is still Terminating after {timeout_s:.0f}s",
            why=causes or "the API server has not finished deleting what is in it",
            fix=f"`kubectl get all,events -n {name}` shows what is left; objects whose finalizers no controller "
            f"removes any more keep it: remove those finalizers (kubectl patch KIND NAME -n {name} --type merge "
            f"-p {_FINALIZERS_NULL}), then run `{retry}` again",
        )

    wait_gone(kube, "v1", "Namespace", names, timeout_s, poll_s, stuck, cancelled)


def wait_crds_gone(kube: KubeApi, names: list[str], timeout_s: float, poll_s: float = 0.25) -> None:
    """Return once every CRD in `names` is gone: the API server deletes a CRD asynchronously, after it has
    removed every custom resource of it, and an `up` meanwhile could not re-create it. One it cannot finish
    (a resource whose finalizer nobody removes) raises StepTimeoutError naming what holds it."""

    def stuck(name: str, causes: str) -> StepTimeoutError:
        return StepTimeoutError(
            f"CRD {name} is still terminating after {timeout_s:.0f}s",
            why=causes or "the API server has not finished deleting its custom resources",
            fix=f"`kubectl get {name} -A` shows what is left; resources whose finalizers no controller removes "
            f"any more keep it: remove those finalizers (kubectl patch {name} NAME -n NAMESPACE --type merge -p "
            f"{_FINALIZERS_NULL}), then run `igwlab teardown --crds` again",
        )

    wait_gone(kube, CRD_API, "CustomResourceDefinition", names, timeout_s, poll_s, stuck)


def wait_gone(
    kube: KubeApi,
    api_version: str,
    kind: str,
    names: list[str],
    timeout_s: float,
    poll_s: float,
    stuck: Callable[[str, str], StepTimeoutError],
    cancelled: Callable[[], None] | None = None,
) -> None:
    """Poll (backing off to 2 s) until none of `names` exists; at the deadline raise `stuck(name, causes)`,
    causes being the messages of the first one's true status conditions."""
    pending = list(names)
    deadline = time.monotonic() + timeout_s
    delay = poll_s
    while True:
        if cancelled is not None:
            cancelled()
        live = {name: kube.get(api_version, kind, name) for name in pending}
        pending = [name for name, obj in live.items() if obj is not None]
        if not pending:
            return
        if time.monotonic() >= deadline:
            name = pending[0]
            raise stuck(name, "; ".join(blocking_causes(live[name])))
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 2.0)
