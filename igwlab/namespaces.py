"""Namespaces being deleted: waiting for them to go, and naming what keeps one Terminating.

A deleted namespace stays `Terminating` (`metadata.deletionTimestamp` set, `status.phase` Terminating)
until the API server's namespace controller has removed everything in it; objects whose finalizers no
controller removes keep it there for good. The controller says why in the namespace's conditions
(core/v1 NamespaceCondition: `NamespaceContentRemaining`, `NamespaceFinalizersRemaining`,
`NamespaceDeletionContentFailure`...), e.g. "Some content in the namespace has finalizers remaining:
example.com/hold in 1 resource instances".
"""

from __future__ import annotations

import time
from collections.abc import Callable

from igwlab.errors import StepTimeoutError
from igwlab.tools.kube import KubeApi, Manifest


def is_terminating(namespace: Manifest | None) -> bool:
    """The namespace exists and is being deleted."""
    if namespace is None:
        return False
    phase = (namespace.get("status") or {}).get("phase")
    return phase == "Terminating" or bool((namespace.get("metadata") or {}).get("deletionTimestamp"))


def blocking_causes(namespace: Manifest | None) -> list[str]:
    """What the namespace controller says keeps the namespace from going (its True conditions' messages)."""
    conditions = ((namespace or {}).get("status") or {}).get("conditions") or []
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
    pending = list(names)
    deadline = time.monotonic() + timeout_s
    delay = poll_s
    while True:
        if cancelled is not None:
            cancelled()
        live = {name: kube.get("v1", "Namespace", name) for name in pending}
        pending = [name for name, namespace in live.items() if namespace is not None]
        if not pending:
            return
        if time.monotonic() >= deadline:
            name = pending[0]
            causes = blocking_causes(live[name])
            raise StepTimeoutError(
                f"namespace {name} is still Terminating after {timeout_s:.0f}s",
                why="; ".join(causes) or "the API server has not finished deleting what is in it",
                fix=f"`kubectl get all,events -n {name}` shows what is left; objects whose finalizers no controller "
                "removes any more keep it: remove those finalizers (kubectl patch KIND NAME -n "
                f'{name} --type merge -p \'{{"metadata":{{"finalizers":null}}}}\'), then run `{retry}` again',
            )
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 2.0)
