"""What `up` made and what it found already there, so `teardown` removes only the lab's.

`up` takes stock of everything it may find on a cluster before it changes it: the lab's namespace and
the namespaces of its Helm releases, the releases, the CRDs and the admission objects of their bundles,
the rendered objects, the Secrets it makes beside them, the k3d cluster. Each gets a ref (the way plans
name objects, `Kind/namespace/name` or `Kind/name`; `helm:NAMESPACE/NAME` for a release, `k3d:NAME` for
a cluster) and lands in one of two sets the lab's record (current.json, field `ownership`) keeps:

- `created`: `up` made it, or changed it (a release it installed or upgraded, a CRD bundle it applied),
  or it carries the lab's labels (`app.kubernetes.io/managed-by: igwlab`, `igwlab.dev/lab: LAB`) from an
  earlier `up` of the same lab: objects and namespaces as Kubernetes labels, Helm releases as release
  labels (`helm upgrade --labels`, Helm 3.13+; `helm list --selector` finds them), so a lab whose record
  was lost is still known as the lab's. `teardown` removes it.
- `found`: it was there before and `up` left it alone (a step skipped as already done), or it is a
  labelled kind without the lab's labels: the user's. `teardown` leaves it and says so.

The first sight decides and sticks across re-runs of the same lab (an object of the user's that `up`
then applied over carries the lab's labels afterwards, and is still the user's); only `claim` (a release
upgraded, a CRD bundle applied) moves a ref from found to created.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

MANAGED_BY = "app.kubernetes.io/managed-by"
LAB_LABEL = "igwlab.dev/lab"

Manifest = dict[str, Any]


def release_ref(namespace: str, name: str) -> str:
    return f"helm:{namespace}/{name}"


def cluster_ref(name: str) -> str:
    return f"k3d:{name}"


def object_ref(kind: str, name: str, namespace: str | None = None) -> str:
    """`Kind/name` or `Kind/namespace/name`, as KubeObject.ref names rendered objects."""
    return "/".join(part for part in (kind, namespace, name) if part)


def labels_of(live: Manifest | None) -> dict[str, Any]:
    return dict(((live or {}).get("metadata") or {}).get("labels") or {})


def is_gone(live: Manifest | None) -> bool:
    """Absent, or being deleted (what `up` then makes anew is the lab's)."""
    return live is None or bool((live.get("metadata") or {}).get("deletionTimestamp"))


def lab_labels(lab: str) -> dict[str, str]:
    """The labels igwlab puts on what it makes outside the rendered objects (release namespaces, Secrets)."""
    return {MANAGED_BY: "igwlab", LAB_LABEL: lab}


def carries_lab_labels(live: Manifest | None, lab: str) -> bool:
    """Made by igwlab for this lab: managed-by igwlab and the lab's name. igwlab before it recorded
    ownership labelled release namespaces and Secrets with managed-by only: those count as the lab's too
    (one state directory holds one lab); another lab's name does not."""
    labels = labels_of(live)
    return labels.get(MANAGED_BY) == "igwlab" and labels.get(LAB_LABEL, lab) == lab


@dataclass
class Ownership:
    """The two sets, shared by `up`'s concurrent steps; `on_change` (called under the lock) persists them."""

    lab: str
    created: set[str] = field(default_factory=set)
    found: set[str] = field(default_factory=set)
    on_change: Callable[[], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_record(cls, lab: str, data: Any) -> Ownership:
        """From the record's `ownership` field (`{"created": [...], "found": [...]}`); empty when absent."""
        data = data if isinstance(data, dict) else {}
        return cls(lab, set(_strings(data.get("created"))), set(_strings(data.get("found"))))

    def as_dict(self) -> dict[str, list[str]]:
        return {"created": sorted(self.created), "found": sorted(self.found)}

    def knows(self, ref: str) -> bool:
        return ref in self.created or ref in self.found

    def observe(self, ref: str, live: Manifest | None) -> None:
        """First sight of an object whose labels say whose it is: absent or the lab's -> created; else found."""
        if self.knows(ref):
            return
        mine = is_gone(live) or carries_lab_labels(live, self.lab)
        self._update(created=[ref] if mine else [], found=[] if mine else [ref])

    def keep(self, refs: Iterable[str]) -> None:
        """`up` found these already done and left them alone: found, unless the lab made them earlier."""
        self._update(found=[ref for ref in refs if not self.knows(ref)])

    def claim(self, refs: Iterable[str]) -> None:
        """`up` is about to make or change these (install, upgrade, apply): the lab's from now on."""
        self._update(created=list(refs))

    def is_found(self, ref: str) -> bool:
        return ref in self.found

    def is_created(self, ref: str) -> bool:
        return ref in self.created

    def _update(self, *, created: Iterable[str] = (), found: Iterable[str] = ()) -> None:
        with self._lock:
            before = (len(self.created), len(self.found))
            for ref in created:
                self.found.discard(ref)
                self.created.add(ref)
            self.found.update(ref for ref in found if ref not in self.created)
            if (len(self.created), len(self.found)) != before and self.on_change is not None:
                self.on_change()


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
