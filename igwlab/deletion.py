"""Objects being deleted: waiting for them to go, and naming what keeps one from going.

A deleted namespace stays `Terminating` (`metadata.deletionTimestamp` set, `status.phase` Terminating)
until the API server's namespace controller has removed everything in it; objects whose finalizers no
controller removes keep it there for good. The controller says why in the namespace's conditions
(core/v1 NamespaceCondition: `NamespaceContentRemaining`, `NamespaceFinalizersRemaining`,
`NamespaceDeletionContentFailure`...), e.g. "Some content in the namespace has finalizers remaining:
example.com/hold in 1 resource instances". A deleted CRD goes the same way, once every custom resource
of it is gone (its `Terminating` condition and the like say what is left).

Both controllers retry a failed pass with exponential backoff: the CRD finalizer from 5 ms up to 1000 s
(client-go's DefaultControllerRateLimiter), the namespace controller up to 60 s. A failure that clears by
itself can therefore keep an object for minutes after its cause is gone: a CRD deleted right after it was
created waits for its watch cache, and the finalizer's List meanwhile fails with "could not list
instances: storage is (re)initializing" (reason `InstanceDeletionFailed`, seen for minutes in
operator-framework/operator-controller#1437). Both controllers requeue an object at once on any update
of it (apiextensions-apiserver pkg/controller/finalizer/crd_finalizer.go, kubernetes
pkg/controller/namespace/namespace_controller.go), so while a failure condition stands the waits below
touch an annotation (`igwlab.dev/retry-deletion`) to have the controller try again now rather than after
its backoff; what does not clear is reported at the deadline as before. The same holds for a CRD whose
resources a finalizer kept for the finalizer's one-minute check ("could not confirm zero CustomResources
remaining"): once that finalizer is removed, the CRD goes within seconds instead of after the backoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from igwlab.crds import CRD_API
from igwlab.errors import StepTimeoutError
from igwlab.tools.kube import KubeApi, Manifest

_FINALIZERS_NULL = '\'{"metadata":{"finalizers":null}}\''
RETRY_ANNOTATION = "igwlab.dev/retry-deletion"
_SHOWN_KIND = {"CustomResourceDefinition": "CRD", "Namespace": "namespace"}
# Seconds between two nudges of one object while its controller reports a failed pass (then 1.5x, up to
# the cap): often enough that a cleared failure costs seconds, rarely enough to add no load.
NUDGE_FIRST_S = 2.0
NUDGE_MAX_S = 15.0
# The conditions by which each controller says its last pass failed (and it will retry with backoff),
# as opposed to waiting for something else (finalizers, remaining content), which a nudge does not help.
_FAILED_PASS: dict[str, set[tuple[str, str | None]]] = {
    # "could not list instances: ...", "could not issue all deletes: ..." / "could not confirm zero
    # CustomResources remaining: ..." (after a minute of waiting for resources held by finalizers).
    "CustomResourceDefinition": {("Terminating", "InstanceDeletionFailed"), ("Terminating", "InstanceDeletionCheck")},
    "Namespace": {
        ("NamespaceDeletionDiscoveryFailure", None),
        ("NamespaceDeletionGroupVersionParsingFailure", None),
        ("NamespaceDeletionContentFailure", None),
    },
}


def is_terminating(obj: Manifest | None) -> bool:
    """The object (a namespace, a CRD...) exists and is being deleted."""
    if obj is None:
        return False
    phase = (obj.get("status") or {}).get("phase")
    return phase == "Terminating" or bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def blocking_causes(obj: Manifest | None, kind: str = "Namespace") -> list[str]:
    """What the API server says keeps a deleted object from going: a namespace's True conditions (each is
    about its deletion), a CRD's Terminating condition (its others say it was accepted and established)."""
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    wanted = {"Terminating"} if kind == "CustomResourceDefinition" else None
    return [
        str(c["message"])
        for c in conditions
        if c.get("status") == "True" and c.get("message") and (wanted is None or c.get("type") in wanted)
    ]


def crd_holders(kube: KubeApi, crd: Manifest | None, most: int = 3) -> list[str]:
    """The custom resources of a CRD being deleted that their finalizers keep ("ReferenceGrant
    default/held (finalizers: example.com/hold)"), at most `most`; empty when none, or when they cannot
    be listed (the CRD's storage version read from its spec)."""
    spec = (crd or {}).get("spec") or {}
    kind = (spec.get("names") or {}).get("kind")
    version = next((v.get("name") for v in spec.get("versions") or [] if v.get("storage")), None)
    if not kind or not version or not spec.get("group"):
        return []
    try:
        items = kube.list_objects(f"{spec['group']}/{version}", str(kind))
    except Exception:  # naming the holders is a courtesy: the timeout is reported anyway
        return []
    held = []
    for item in items:
        metadata = item.get("metadata") or {}
        if metadata.get("finalizers"):
            where = "/".join(part for part in (metadata.get("namespace"), metadata.get("name")) if part)
            held.append(f"{kind} {where} (finalizers: {', '.join(map(str, metadata['finalizers']))})")
    return held[:most] + ([f"{len(held) - most} more"] if len(held) > most else [])


def failed_pass(kind: str, obj: Manifest | None) -> str | None:
    """The message of the condition by which the API server's deleting controller (CRD finalizer,
    namespace controller) says its last pass over `obj` failed and will be retried after a backoff,
    e.g. "could not list instances: storage is (re)initializing"; None while it is not failing."""
    wanted = _FAILED_PASS.get(kind, set())
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("status") != "True":
            continue
        if (c.get("type"), c.get("reason")) in wanted or (c.get("type"), None) in wanted:
            return str(c.get("message") or c.get("reason") or c.get("type"))
    return None


def wait_namespaces_gone(
    kube: KubeApi,
    names: list[str],
    timeout_s: float,
    poll_s: float = 0.25,
    cancelled: Callable[[], None] | None = None,
    retry: str = "igwlab teardown",
    say: Callable[[str], None] | None = None,
) -> None:
    """Return once every namespace in `names` is gone; a namespace the API server cannot finish deleting
    within `timeout_s` (seconds) raises StepTimeoutError (exit 4) naming it and what holds it.
    `cancelled` is called at each check and may raise to stop the wait; `retry`: the command to run again
    once the namespace is free; `say` gets a line when igwlab asks the controller to retry a failed pass."""

    def stuck(name: str, causes: str) -> StepTimeoutError:
        return StepTimeoutError(
            f"namespace {name} is still Terminating after {timeout_s:.0f}s",
            why=causes or "the API server has not finished deleting what is in it",
            fix=f"`kubectl get all,events -n {name}` shows what is left; objects whose finalizers no controller "
            f"removes any more keep it: remove those finalizers (kubectl patch KIND NAME -n {name} --type merge "
            f"-p {_FINALIZERS_NULL}), then run `{retry}` again",
        )

    wait_gone(kube, "v1", "Namespace", names, timeout_s, poll_s, stuck, cancelled, say)


def wait_crds_gone(
    kube: KubeApi,
    names: list[str],
    timeout_s: float,
    poll_s: float = 0.25,
    say: Callable[[str], None] | None = None,
    cancelled: Callable[[], None] | None = None,
    retry: str = "igwlab teardown --crds",
) -> None:
    """Return once every CRD in `names` is gone: the API server deletes a CRD asynchronously, after it has
    removed every custom resource of it, and an `up` meanwhile could not re-create it. One it cannot finish
    (a resource whose finalizer nobody removes) raises StepTimeoutError naming what holds it; a failed pass
    of the CRD finalizer is retried at once (see the module's docstring), told through `say`. `cancelled`
    and `retry` as for wait_namespaces_gone."""

    def stuck(name: str, causes: str) -> StepTimeoutError:
        return StepTimeoutError(
            f"CRD {name} is still terminating after {timeout_s:.0f}s",
            why=causes or "the API server has not finished deleting its custom resources",
            fix=f"`kubectl get {name} -A` shows what is left; resources whose finalizers no controller removes "
            f"any more keep it: remove those finalizers (kubectl patch {name} NAME -n NAMESPACE --type merge -p "
            f"{_FINALIZERS_NULL}), then run `{retry}` again",
        )

    wait_gone(kube, CRD_API, "CustomResourceDefinition", names, timeout_s, poll_s, stuck, cancelled, say)


def wait_gone(
    kube: KubeApi,
    api_version: str,
    kind: str,
    names: list[str],
    timeout_s: float,
    poll_s: float,
    stuck: Callable[[str, str], StepTimeoutError],
    cancelled: Callable[[], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> None:
    """Poll (backing off to 2 s) until none of `names` exists; at the deadline raise `stuck(name, causes)`,
    causes being the messages of the first one's true status conditions. While the deleting controller
    reports a failed pass over one, annotate it (NUDGE_FIRST_S apart, growing to NUDGE_MAX_S) so that
    the controller retries now."""
    pending = list(names)
    deadline = time.monotonic() + timeout_s
    delay = poll_s
    nudges: dict[str, tuple[float, float, int]] = {}  # name -> (next nudge at, interval, count)
    while True:
        if cancelled is not None:
            cancelled()
        live = {name: kube.get(api_version, kind, name) for name in pending}
        pending = [name for name, obj in live.items() if obj is not None]
        if not pending:
            return
        for name in pending:
            _nudge_failed_pass(kube, api_version, kind, name, live[name], nudges, say)
        if time.monotonic() >= deadline:
            name = pending[0]
            causes = blocking_causes(live[name], kind)
            if kind == "CustomResourceDefinition":
                holders = crd_holders(kube, live[name])
                causes += [f"held by {', '.join(holders)}"] if holders else []
            raise stuck(name, "; ".join(causes))
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 2.0)


def _nudge_failed_pass(
    kube: KubeApi,
    api_version: str,
    kind: str,
    name: str,
    obj: Manifest | None,
    nudges: dict[str, tuple[float, float, int]],
    say: Callable[[str], None] | None,
) -> None:
    """Annotate `name` when its controller reports a failed pass and the last nudge is old enough."""
    failure = failed_pass(kind, obj)
    if failure is None:
        return
    now = time.monotonic()
    if name not in nudges:  # first seen failing: the controller's own first retries are milliseconds apart
        nudges[name] = (now + NUDGE_FIRST_S, NUDGE_FIRST_S, 0)
        return
    due, interval, count = nudges[name]
    if now < due:
        return
    if not kube.annotate(api_version, kind, name, {RETRY_ANNOTATION: str(count + 1)}):
        return  # gone meanwhile
    nudges[name] = (now + interval, min(interval * 1.5, NUDGE_MAX_S), count + 1)
    if say is not None and count == 0:
        shown = _SHOWN_KIND.get(kind, kind)
        say(f"{shown} {name}: the API server's deletion failed ({failure}); asked it to try again now")
