"""The CRD bundles a lab needs, and whether the CRDs already on a cluster fit them.

A cluster that outlives one lab keeps its Gateway API and inference CRDs. Skipping CRDs that merely
exist by name would run the next lab against old APIs (InferenceModelRewrite's `split` at GIE v1.2
versus `targets` from v1.3), and a newer Gateway API bundle's admission policy rejects an older one.
So each existing CRD's bundle version (annotation), channel and served versions are read and compared:
the same version fits; an older one is upgraded (server-side apply) with a note; a newer one, another
channel, or an older bundle under the v1.5+ safe-upgrades policy is refused, with the way out.

Sources: the annotations `gateway.networking.k8s.io/bundle-version` and `.../channel` on every Gateway
API CRD (../shared/upstream/gateway-api), `inference.networking.k8s.io/bundle-version` on GIE CRDs from
v1.0.0; the policy in gateway-api v1.5 standard-install.yaml (config/crd/standard/...vap_safeupgrades.yaml).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from igwlab.catalog import version_tuple
from igwlab.selection import ResolvedLab

GATEWAY_VERSION_ANNOTATION = "gateway.networking.k8s.io/bundle-version"
GATEWAY_CHANNEL_ANNOTATION = "gateway.networking.k8s.io/channel"
SAFE_UPGRADES_POLICY = "safe-upgrades.gateway.networking.k8s.io"
SAFE_UPGRADES_FLOOR = "v1.5.0"  # the policy denies Gateway API CRDs of bundle versions before this
CRD_API = "apiextensions.k8s.io/v1"
ADMISSION_API = "admissionregistration.k8s.io/v1"

AdmissionObject = tuple[str, str, str]  # (apiVersion, kind, name)

Verdict = Literal["absent", "same", "upgrade", "refuse"]


@dataclass(frozen=True)
class CrdSet:
    """One CRD bundle a lab needs: its CRD names, version and how a cluster's copy shows its version."""

    title: str  # "Gateway API v1.3.0 (standard)"
    names: tuple[str, ...]
    version: str
    url: str
    installed_by: Literal["igwlab", "provider"]
    version_annotation: str | None = None  # absent on GIE CRDs before v1.0
    channel: str | None = None
    served_version: str | None = None  # checked where there is no version annotation
    gateway_api: bool = False
    admission: tuple[AdmissionObject, ...] = ()  # what the bundle applies beside its CRDs, binding first


@dataclass(frozen=True)
class Fit:
    verdict: Verdict
    detail: str
    fix: str = ""


def crd_sets(resolved: ResolvedLab) -> list[CrdSet]:
    """The Gateway API bundle (igwlab's to install, or the provider chart's) and the GIE bundle."""
    stack, gie, catalog = resolved.stack, resolved.gie, resolved.catalog
    pin = stack.gateway_api
    release = resolved.gateway_api
    return [
        CrdSet(
            title=f"Gateway API {pin.version} ({pin.channel})",
            names=tuple(catalog.gateway_api_standard_crds),
            version=pin.version,
            url=release.standard_url if pin.channel == "standard" else release.experimental_url,
            installed_by=pin.installed_by,
            version_annotation=GATEWAY_VERSION_ANNOTATION,
            channel=pin.channel,
            gateway_api=True,
            admission=bundle_admission(pin.version),
        ),
        CrdSet(
            title=f"Gateway API Inference Extension {stack.gie_version}",
            names=tuple(gie.crds),
            version=stack.gie_version,
            url=gie.crds_url,
            installed_by="igwlab",
            version_annotation=gie.crd_version_annotation,
            served_version=gie.crd_served_version,
        ),
    ]


def bundle_admission(gateway_api_version: str) -> tuple[AdmissionObject, ...]:
    """The admission objects a Gateway API install bundle applies beside its CRDs, binding first (the
    order to delete them in): from v1.5.0 both channels end with the safe-upgrades ValidatingAdmissionPolicy
    and its binding (gateway-api config/crd/{standard,experimental}/gateway.networking.k8s.io_vap_safeupgrades.yaml).
    `teardown --crds` removes them with the CRDs: left alone, the policy denies the next lab's older bundle."""
    if version_tuple(gateway_api_version) < version_tuple(SAFE_UPGRADES_FLOOR):
        return ()
    return (
        (ADMISSION_API, "ValidatingAdmissionPolicyBinding", SAFE_UPGRADES_POLICY),
        (ADMISSION_API, "ValidatingAdmissionPolicy", SAFE_UPGRADES_POLICY),
    )


def _annotations(crd: dict[str, Any]) -> dict[str, str]:
    return dict((crd.get("metadata") or {}).get("annotations") or {})


def _served(crd: dict[str, Any]) -> list[str]:
    return [str(v.get("name")) for v in (crd.get("spec") or {}).get("versions") or [] if v.get("served")]


def crd_version(crd: dict[str, Any], wanted: CrdSet) -> str | None:
    """The bundle version a cluster's CRD carries (Gateway API and GIE v1.0+ both annotate it)."""
    annotations = _annotations(crd)
    for key in (wanted.version_annotation, GATEWAY_VERSION_ANNOTATION, "inference.networking.k8s.io/bundle-version"):
        if key and annotations.get(key):
            return annotations[key]
    return None


def fit(wanted: CrdSet, existing: dict[str, dict[str, Any] | None], safe_upgrades: bool) -> Fit:
    """How the CRDs on the cluster (name -> object, None when absent) fit the bundle the lab needs.
    `safe_upgrades`: the cluster has Gateway API's safe-upgrades admission policy."""
    # A CRD being deleted is as good as absent: `up` waits for it to go before it applies the lab's.
    present = {
        name: crd
        for name, crd in existing.items()
        if crd is not None and not (crd.get("metadata") or {}).get("deletionTimestamp")
    }
    want = version_tuple(wanted.version)
    newer, older, channels, unserved = [], [], [], []
    for name, crd in present.items():
        have = crd_version(crd, wanted)
        if have is not None and wanted.version_annotation is None:
            newer.append(f"{name} at {have}")  # a v1.0+ bundle where this lab's older, unannotated one goes
        elif have is not None and version_tuple(have) > want:
            newer.append(f"{name} at {have}")
        elif have is not None and version_tuple(have) < want:
            older.append(f"{name} at {have}")
        elif have is None and wanted.version_annotation is not None:
            older.append(f"{name} (no bundle version)")
        if wanted.served_version and wanted.served_version not in _served(crd):
            unserved.append(f"{name} serves {', '.join(_served(crd)) or 'nothing'}")
        channel = _annotations(crd).get(GATEWAY_CHANNEL_ANNOTATION)
        if wanted.channel and channel and channel != wanted.channel:
            channels.append(f"{name} ({channel})")
    fresh_cluster = "use a fresh cluster: on k3d `--cluster NAME` makes one beside this"
    if wanted.gateway_api and safe_upgrades and want < version_tuple(SAFE_UPGRADES_FLOOR):
        # First: the policy denies creating such CRDs as well as updating them (CREATE and UPDATE), so
        # deleting newer or other-channel CRDs alone would not let the lab install its bundle.
        also = [f"newer {', '.join(newer)}"] if newer else []
        also += [f"another channel: {', '.join(channels)}"] if channels else []
        return Fit(
            "refuse",
            f"the cluster's ValidatingAdmissionPolicy {SAFE_UPGRADES_POLICY} (from a Gateway API v1.5+ bundle) "
            f"denies the {wanted.version} bundle this lab installs"
            + (f"; the cluster's Gateway API CRDs are {'; '.join(also)}" if also else ""),
            f"{fresh_cluster}, or a lab on Gateway API v1.5+ (--provider agentgateway), or remove the policy "
            f"(kubectl delete validatingadmissionpolicy,validatingadmissionpolicybinding {SAFE_UPGRADES_POLICY})"
            + (" and those CRDs" if also else "")
            + " if nothing else needs them",
        )
    if newer:
        return Fit(
            "refuse",
            f"the cluster has newer {wanted.title.split(' v')[0]} CRDs than this lab's {wanted.version}: "
            f"{', '.join(newer)}; installing the lab's would downgrade them under whatever else uses them",
            f"{fresh_cluster}, or a lab whose stack matches them, or delete those CRDs if nothing else uses them",
        )
    if channels:
        return Fit(
            "refuse",
            f"the cluster's Gateway API CRDs are another channel than this lab's {wanted.channel}: "
            f"{', '.join(channels)}",
            f"{fresh_cluster}, or a lab whose stack installs the {channels[0].split('(')[-1].rstrip(')')} channel",
        )
    if older or unserved:
        what = ", ".join([*older, *unserved])
        if wanted.installed_by == "provider":
            return Fit(
                "refuse",
                f"the cluster has older Gateway API CRDs ({what}) and the provider's chart installs its "
                f"{wanted.version} CRDs only where none exist (Helm does not upgrade CRDs)",
                f"upgrade them first: kubectl apply --server-side --force-conflicts -f {wanted.url}; "
                f"or {fresh_cluster}",
            )
        return Fit(
            "upgrade", f"up upgrades the cluster's {wanted.title.split(' v')[0]} CRDs ({what}) to {wanted.version}"
        )
    if not present:
        return Fit("absent", f"no {wanted.title} CRDs yet; up installs them")
    missing = [name for name in existing if name not in present]
    if missing:
        return Fit("upgrade", f"{wanted.title}: up adds {', '.join(missing)} beside the ones there")
    return Fit("same", f"the cluster has the {wanted.title} CRDs")


def read_cluster(
    sets: list[CrdSet], get: Callable[[str, str, str], dict[str, Any] | None]
) -> tuple[dict[str, dict[str, dict[str, Any] | None]], bool]:
    """Each set's CRDs as found on the cluster (`get(api_version, kind, name)`), and whether the cluster
    has the safe-upgrades admission policy."""
    found = {s.title: {name: get(CRD_API, "CustomResourceDefinition", name) for name in s.names} for s in sets}
    policy = get(ADMISSION_API, "ValidatingAdmissionPolicy", SAFE_UPGRADES_POLICY)
    return found, policy is not None
