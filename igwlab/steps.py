"""What each kind of plan step does: is it done already, apply it, wait for its gates.

Dry-run goes through the same code: `apply` then only says what it would do (copier's `pretend`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from igwlab import gates as g
from igwlab import yamlio
from igwlab.crds import CRD_API
from igwlab.deletion import is_terminating, wait_crds_gone, wait_namespaces_gone
from igwlab.errors import IgwlabError, StepTimeoutError
from igwlab.mirror import Sources, normalize_image
from igwlab.ownership import (
    LAB_LABEL,
    Ownership,
    carries_lab_labels,
    cluster_ref,
    lab_labels,
    object_ref,
    release_ref,
)
from igwlab.plan import Plan, Step
from igwlab.records import RunRecord, private_file
from igwlab.render import HelmRelease, Rendered, to_yaml
from igwlab.selection import ResolvedLab
from igwlab.state import state_dir
from igwlab.tools import k3d, portforward
from igwlab.tools.kube import KubeApi
from igwlab.tools.proc import ToolRunner

LITELLM_SECRET = "igwlab-litellm"  # key `master-key`; the LiteLLM Deployment reads it
HF_TOKEN_SECRET = "hf-token"  # the vLLM template reads key `token` of this Secret, optionally
KubeFactory = Callable[[Path | None, str | None], KubeApi]
Fetch = Callable[[str], str]


class Cancelled(Exception):
    """The user interrupted `up`; steps stop at their next check."""


@dataclass
class UpContext:
    resolved: ResolvedLab
    rendered: Rendered
    plan: Plan
    tools: ToolRunner
    record: RunRecord | None
    kube_factory: KubeFactory
    fetch: Fetch
    context: str | None = None
    timeout_s: float = 600.0
    dry_run: bool = False
    poll_s: float = 0.25
    cancel: threading.Event = field(default_factory=threading.Event)
    port_forward: portforward.PortForward | None = None
    previous_port_forward: dict[str, Any] | None = None  # what the last `up` of this lab started
    sources: Sources | None = None  # with a mirror: CRDs, charts and images come from its files
    ownership: Ownership | None = None  # what up made vs found already there; None in a dry run
    _kube: KubeApi | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _url: str | None = None
    _url_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def kubeconfig(self) -> Path | None:
        if self.context is not None:
            return None
        return kubeconfig_path(self.resolved.lab.cluster.name)

    def kube(self) -> KubeApi:
        with self._lock:
            if self._kube is None:
                self._kube = self.kube_factory(self.kubeconfig, self.context)
            return self._kube

    def helm_target(self) -> list[str]:
        if self.context is not None:
            return ["--kube-context", self.context]
        return ["--kubeconfig", str(self.kubeconfig)]

    def crds_text(self, url: str) -> str:
        """A CRD bundle: from the mirror, verified against its sha256 as read, or fetched from its URL."""
        local = self.sources.crds_text(url) if self.sources is not None else None
        return local if local is not None else self.fetch(url)

    def chart_args(self, release: HelmRelease) -> list[str]:
        if self.sources is not None:
            return self.sources.chart_args(release)
        return [release.chart, "--version", release.version, *(["--repo", release.repo] if release.repo else [])]

    def gateway_url(self) -> str:
        """Where clients reach the lab: the mapped host port on k3d; on an existing cluster the
        Gateway's address, or a managed port-forward when the host cannot reach that address."""
        with self._url_lock:
            if self._url is None:
                self._url = self.plan.url if self.context is None else self._cluster_gateway_url()
            return self._url

    def _cluster_gateway_url(self) -> str:
        lab = self.resolved.lab
        gateway = self.kube().get("gateway.networking.k8s.io/v1", "Gateway", lab.gateway.name, lab.namespace)
        addresses = ((gateway or {}).get("status") or {}).get("addresses") or []
        if not addresses:
            raise IgwlabError(
                f"Gateway {lab.namespace}/{lab.gateway.name} has no address",
                fix="check `kubectl get gateway -A`; a LoadBalancer may be pending",
            )
        address, port = str(addresses[0]["value"]), lab.route_listener.port
        if portforward.routable(address, port):
            return f"http://{address}:{port}"
        return self._forward_to_gateway(address, port).url

    def _forward_to_gateway(self, address: str, port: int) -> portforward.PortForward:
        lab, proxy = self.resolved.lab, self.resolved.stack.proxy
        previous = self.previous_port_forward
        if (
            previous
            and portforward.alive(int(previous["pid"]))
            and portforward.reachable("127.0.0.1", int(previous["local_port"]))
        ):
            self.port_forward = portforward.PortForward(
                int(previous["pid"]), int(previous["local_port"]), str(previous.get("log", ""))
            )
            return self.port_forward
        if proxy.service is None:
            raise IgwlabError(
                f"this machine cannot reach the Gateway's address {address}:{port}",
                why=f"igwlab does not know the name of {lab.provider}'s proxy Service to forward a port to",
                fix="reach the address another way (VPN, a LoadBalancer the host can route to) and pass it to "
                "`igwlab verify --url`",
            )
        service = proxy.service.format(gateway=lab.gateway.name)
        local = portforward.free_local_port(lab.route_listener.effective_host_port)
        argv = [
            "kubectl",
            "port-forward",
            "--namespace",
            proxy.namespace or lab.namespace,
            f"svc/{service}",
            f"{local}:{port}",
            "--address",
            "127.0.0.1",
            "--context",
            str(self.context),
        ]
        self.port_forward = portforward.start(argv, local, state_dir() / "port-forward.log", env=self.tools.env)
        return self.port_forward


def kubeconfig_path(cluster: str) -> Path:
    return state_dir() / "clusters" / cluster / "kubeconfig"


class StepAction:
    def __init__(self, ctx: UpContext, step: Step) -> None:
        self.ctx = ctx
        self.step = step

    # -- what a user sees in --dry-run ---------------------------------------------------------

    def describe(self) -> list[str]:
        step = self.step
        lines = [" ".join(step.command)] if step.command else []
        lines += [f"server-side apply {url}" for url in step.urls]
        lines += [f"helm upgrade --install {r['release']} {r['chart']} --version {r['version']}" for r in step.releases]
        lines += [f"  from {origin.describe()}" for origin in step.artifacts if origin.from_mirror]
        lines += [f"apply {ref}" for ref in step.objects]
        return lines or [step.title]

    # -- is_done / apply / wait ------------------------------------------------------------------

    def is_done(self) -> bool:
        """Whether the step is done already; a step found done is left alone, and what it would have
        made is recorded as found (the user's) unless the lab made it earlier."""
        kind = self.step.kind
        if kind == "cluster":
            if self.ctx.context is not None:
                return True
            if not k3d.cluster_exists(self.ctx.tools, self.ctx.resolved.lab.cluster.name):
                return False
            self._write_kubeconfig()
            self._keep([cluster_ref(self.ctx.resolved.lab.cluster.name)])
            return True
        if kind == "probe":
            return False
        if kind == "images":
            return self._images_present()
        if kind == "helm" and not all(self._release_deployed(r) for r in self.step.releases):
            return False
        if kind == "apply" and not self._objects_exist():
            return False
        if not all(state.ok for state in self._gate_states()):
            return False
        if kind == "helm":
            for summary in self.step.releases:
                self._observe_namespace(summary["namespace"])
                ref = release_ref(summary["namespace"], summary["release"])
                if self.ctx.ownership is not None and not self.ctx.ownership.knows(ref):
                    # First sight (a fresh record: the lab's record was lost, or the release is the user's):
                    # the labels `up` installs releases with say whether it is the lab's.
                    if self._release_labelled(summary):
                        self._claim([ref])
                    else:
                        self._keep([ref])
        if kind == "crds" and self.ctx.ownership is not None:
            # First sight: the lab's labels (put on by an earlier `up` of this lab that applied them) say
            # they are the lab's, though its record was lost; without them they were there before: found.
            kube = self.ctx.kube()
            for api_version, kind_, name in self._crd_objects(present_only=True):
                ref = object_ref(kind_, name)
                if not self.ctx.ownership.knows(ref):
                    live = kube.get(api_version, kind_, name)
                    if carries_lab_labels(live, self.ctx.resolved.lab.name):
                        self._claim([ref])
                    else:
                        self._keep([ref])
        return True

    def _keep(self, refs: Any) -> None:
        if self.ctx.ownership is not None:
            self.ctx.ownership.keep(refs)

    def _claim(self, refs: Any) -> None:
        if self.ctx.ownership is not None:
            self.ctx.ownership.claim(refs)

    def _observe(self, ref: str, live: dict[str, Any] | None) -> None:
        if self.ctx.ownership is not None:
            self.ctx.ownership.observe(ref, live)

    def _observe_namespace(self, namespace: str) -> None:
        ref = object_ref("Namespace", namespace)
        if self.ctx.ownership is not None and not self.ctx.ownership.knows(ref):
            self._observe(ref, self.ctx.kube().get("v1", "Namespace", namespace))

    def _crd_refs(self, present_only: bool = False) -> list[str]:
        return [object_ref(kind, name) for _, kind, name in self._crd_objects(present_only)]

    def _crd_objects(self, present_only: bool = False) -> list[tuple[str, str, str]]:
        """(apiVersion, kind, name) of the step's CRDs and of the admission objects their bundle applies
        beside them (`present_only`: those admission objects that exist; the CRDs of a step found done
        all do)."""
        found = [(CRD_API, "CustomResourceDefinition", name) for name in self.step.crds]
        bundle = next((b for b in self.ctx.rendered.crd_bundles if b.step == self.step.id), None)
        for api_version, kind, name in bundle.admission if bundle else ():
            if not present_only or self.ctx.kube().get(api_version, kind, name) is not None:
                found.append((api_version, kind, name))
        return found

    def apply(self) -> None:
        handler = {
            "cluster": self._apply_cluster,
            "images": self._apply_images,
            "crds": self._apply_crds,
            "helm": self._apply_helm,
            "apply": self._apply_objects,
            "probe": self._nothing_to_apply,
        }[self.step.kind]
        handler()

    def _nothing_to_apply(self) -> None:
        """The warm-up probe only waits."""

    def wait(self) -> None:
        if self.step.kind == "probe":
            self._probe()
            return
        deadline = time.monotonic() + self.ctx.timeout_s
        delay = self.ctx.poll_s
        while True:
            self._check_cancel()
            states = self._gate_states()
            pending = [(gate, state) for gate, state in zip(self.step.gates, states, strict=True) if not state.ok]
            if not pending:
                return
            certain = next(((gate, state) for gate, state in pending if state.failed), None)
            if certain is not None:
                gate, state = certain
                raise IgwlabError(
                    f"step {self.step.id}: {gate.describe()} cannot happen as things are",
                    why=state.detail,
                    fix=(state.fix + "; " if state.fix else "")
                    + "then re-run `igwlab up`, which continues where it stopped (`igwlab diagnose` collects the rest)",
                )
            if time.monotonic() >= deadline:
                gate, state = pending[0]
                raise StepTimeoutError(
                    f"step {self.step.id}: gave up after {self.ctx.timeout_s:.0f}s waiting for {gate.describe()}",
                    why=f"last seen: {state.detail}",
                    fix=(state.fix + "; " if state.fix else "")
                    + "`igwlab diagnose` collects events, logs and object status; fix the cause and re-run "
                    "`igwlab up`, which continues where it stopped (raise --timeout for slow image pulls)",
                )
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 2.0)

    # -- kinds -------------------------------------------------------------------------------------

    def _apply_cluster(self) -> None:
        if self.ctx.context is not None:
            return
        self._claim([cluster_ref(self.ctx.resolved.lab.cluster.name)])
        self.ctx.tools.run(
            list(self.step.command),
            timeout=self.ctx.timeout_s,
            fix="read k3d's message above; `k3d cluster list` shows existing clusters",
        )
        self._write_kubeconfig()

    def _write_kubeconfig(self) -> None:
        path = self.ctx.kubeconfig
        assert path is not None
        private_file(path, k3d.kubeconfig(self.ctx.tools, self.ctx.resolved.lab.cluster.name))

    def _apply_images(self) -> None:
        """Mirrored `docker save` archives into every node of the k3d cluster, verified first."""
        sources = self.ctx.sources
        assert sources is not None and sources.mirror is not None, "the plan has an images step only with a mirror"
        for origin in self.step.artifacts:
            self._check_cancel()
            sources.mirror.verified_path(origin.artifact, fix=sources.fix())
        self.ctx.tools.run(
            list(self.step.command),
            timeout=self.ctx.timeout_s,
            fix="read k3d's message above; `k3d image import --help`; the archives are `docker save` files",
        )

    def _images_present(self) -> bool:
        """Every mirrored image is on every node (kubelet lists a node's images in its status)."""
        nodes = self.ctx.kube().list_objects("v1", "Node")
        wanted = {normalize_image(origin.artifact.source) for origin in self.step.artifacts}
        if not nodes:
            return False
        for node in nodes:
            present = {
                normalize_image(name)
                for image in (node.get("status") or {}).get("images") or []
                for name in image.get("names") or []
                if "@" not in name
            }
            if not wanted <= present:
                return False
        return True

    def _apply_crds(self) -> None:
        kube = self.ctx.kube()
        # A CRD still being deleted (a `teardown --crds` not finished) would take the lab's objects with it
        # once gone: wait for it to go, then make it anew.
        going = [name for name in self.step.crds if is_terminating(kube.get(CRD_API, "CustomResourceDefinition", name))]
        if going:
            wait_crds_gone(
                kube, going, self.ctx.timeout_s, self.ctx.poll_s, cancelled=self._check_cancel, retry="igwlab up"
            )
        self._claim(self._crd_refs())  # applied (made or upgraded) by the lab: `teardown --crds` removes them
        for url in self.step.urls:
            for document in yamlio.load_all(self.ctx.crds_text(url)):
                if document:
                    self._check_cancel()
                    # The lab's labels beside upstream's: a later `up` of this lab knows them as its own
                    # even if its record is lost (ownership.py).
                    labels = document.setdefault("metadata", {}).setdefault("labels", {}) or {}
                    document["metadata"]["labels"] = {**labels, **lab_labels(self.ctx.resolved.lab.name)}
                    kube.apply(document)

    def _apply_helm(self) -> None:
        by_name = {release.name: release for release in self.ctx.rendered.releases}
        for summary in self.step.releases:
            release = by_name[summary["release"]]
            self._ensure_release_namespace(release.namespace)
            self._recover_interrupted(summary)
            self._claim([release_ref(release.namespace, release.name)])  # installed or upgraded: the lab's
            values_file = self._values_path(release.values_file)
            values_file.write_text(to_yaml(release.values) if release.values else "{}\n", encoding="utf-8")
            argv = [
                "helm",
                "upgrade",
                "--install",
                release.name,
                *self.ctx.chart_args(release),
                "--namespace",
                release.namespace,
                "--create-namespace",
                "--values",
                str(values_file),
                # Stored with the release: a later `up` whose record was lost still knows it is the lab's.
                "--labels",
                ",".join(f"{key}={value}" for key, value in lab_labels(self.ctx.resolved.lab.name).items()),
                *self.ctx.helm_target(),
            ]
            self.ctx.tools.run(
                argv,
                timeout=self.ctx.timeout_s,
                fix=f"read helm's message above; `helm status {release.name} -n {release.namespace}`",
            )

    def _ensure_release_namespace(self, namespace: str) -> None:
        """A release's namespace, made by igwlab (and labelled so) only when it does not exist yet, so
        teardown removes what igwlab made and never a namespace that was there before (`helm
        --create-namespace` would make an unlabelled one that nothing removes)."""
        kube = self.ctx.kube()
        self._wait_terminating(kube, namespace)
        live = kube.get("v1", "Namespace", namespace)
        self._observe(object_ref("Namespace", namespace), live)
        if live is None:
            kube.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": namespace, "labels": lab_labels(self.ctx.resolved.lab.name)},
                }
            )

    def _values_path(self, name: str) -> Path:
        base = self.ctx.record.directory / "helm" if self.ctx.record else state_dir() / "helm"
        base.mkdir(parents=True, exist_ok=True)
        return base / name

    def _release_deployed(self, summary: dict[str, Any]) -> bool:
        result = self.ctx.tools.run(
            ["helm", "list", "--namespace", summary["namespace"], "--output", "json", *self.ctx.helm_target()],
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            return False
        try:
            rows = json.loads(result.stdout or "[]")
        except json.JSONDecodeError:
            return False
        # `helm list` names the chart NAME-VERSION with the version as its Chart.yaml spells it: some
        # charts write "v1.4.1", others "1.30.1", while `--version` accepts either spelling.
        version = str(summary["version"]).lstrip("v")
        return any(
            row.get("name") == summary["release"]
            and row.get("status") == "deployed"
            and str(row.get("chart", "")).endswith((f"-{version}", f"-v{version}"))
            for row in rows
        )

    def _helm_rows(self, summary: dict[str, Any], *extra: str) -> list[dict[str, Any]]:
        """`helm list --all` rows of this release (any state, pending ones too), `extra` flags added."""
        result = self.ctx.tools.run(
            [
                "helm",
                "list",
                "--namespace",
                summary["namespace"],
                "--all",
                "--filter",
                f"^{re.escape(summary['release'])}$",
                *extra,
                "--output",
                "json",
                *self.ctx.helm_target(),
            ],
            timeout=60,
            check=False,
        )
        try:
            rows = json.loads(result.stdout or "[]") if result.returncode == 0 else []
        except json.JSONDecodeError:
            return []
        return [row for row in rows if isinstance(row, dict) and row.get("name") == summary["release"]]

    def _recover_interrupted(self, summary: dict[str, Any]) -> None:
        """A release left `pending-install`/`-upgrade`/`-rollback` (helm stopped mid-way: Ctrl-C, a lost
        connection) refuses every further install or upgrade ("another operation is in progress"). The
        lab's own is put back first: a pending install uninstalled, a pending upgrade or rollback rolled
        back to its last revision; one that is not the lab's is named, and left as it is."""
        name, namespace = summary["release"], summary["namespace"]
        status = next((str(row.get("status")) for row in self._helm_rows(summary)), "")
        if not status.startswith("pending-"):
            return
        ref = release_ref(namespace, name)
        ownership = self.ctx.ownership
        mine = (
            ownership is None
            or ownership.is_created(ref)
            or (not ownership.knows(ref) and bool(self._helm_rows(summary, "--selector", self._lab_selector())))
        )
        if not mine:
            raise IgwlabError(
                f"Helm release {namespace}/{name} is {status}: an install or upgrade of it stopped mid-way",
                why="helm refuses to change a release while it is pending, and this one is not the lab's to undo",
                fix=f"`helm history {name} -n {namespace}` shows what was interrupted; `helm rollback {name} -n "
                f"{namespace}` (or `helm uninstall` for a pending install), then run `igwlab up` again",
            )
        undo = ["uninstall", name] if status == "pending-install" else ["rollback", name]
        self.ctx.tools.run(
            ["helm", *undo, "--namespace", namespace, *self.ctx.helm_target()],
            timeout=self.ctx.timeout_s,
            fix=f"the release was {status} (helm stopped mid-way); `helm history {name} -n {namespace}` shows it",
        )

    def _lab_selector(self) -> str:
        return f"{LAB_LABEL}={self.ctx.resolved.lab.name}"

    def _release_labelled(self, summary: dict[str, Any]) -> bool:
        """Whether the release carries the lab's label (`helm upgrade --labels`, stored with the release)."""
        return bool(self._helm_rows(summary, "--selector", self._lab_selector()))

    def _objects_exist(self) -> bool:
        """Whether every object of the step exists; each one's first sight is recorded (absent or
        carrying the lab's labels: the lab's; else the user's, which teardown leaves)."""
        kube = self.ctx.kube()
        exist = True
        for obj in self.ctx.rendered.objects_for(self.step.id):
            live = kube.get(obj.api_version, obj.kind, obj.name, obj.namespace)
            self._observe(obj.ref, live)
            exist = exist and live is not None
        return exist

    def _apply_objects(self) -> None:
        kube = self.ctx.kube()
        if self.step.id.startswith("workload"):
            self._apply_hf_token(kube)
        if self.step.id == "addon-litellm":
            self._ensure_litellm_key(kube)
        for obj in self.ctx.rendered.objects_for(self.step.id):
            self._check_cancel()
            if obj.kind == "Namespace":
                self._wait_terminating(kube, obj.name)
            kube.apply(obj.manifest)

    def _wait_terminating(self, kube: KubeApi, namespace: str) -> None:
        """A namespace still being deleted (a teardown not finished, or stuck on a finalizer) accepts no new
        objects and is gone once deleted: wait for it to go, then make it anew; name what holds it at the
        timeout (exit 4)."""
        if is_terminating(kube.get("v1", "Namespace", namespace)):
            wait_namespaces_gone(
                kube, [namespace], self.ctx.timeout_s, self.ctx.poll_s, cancelled=self._check_cancel, retry="igwlab up"
            )

    def _ensure_litellm_key(self, kube: KubeApi) -> None:
        """A random master key, made once and kept: re-runs must not lock out existing clients."""
        namespace = self.ctx.resolved.lab.namespace
        live = kube.get("v1", "Secret", LITELLM_SECRET, namespace)
        self._observe(object_ref("Secret", LITELLM_SECRET, namespace), live)
        if live is not None:
            return
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": LITELLM_SECRET,
                    "namespace": namespace,
                    "labels": lab_labels(self.ctx.resolved.lab.name),
                },
                "type": "Opaque",
                "stringData": {"master-key": "sk-" + secrets.token_urlsafe(24)},
            }
        )

    def _apply_hf_token(self, kube: KubeApi) -> None:
        """vLLM reads gated models with HF_TOKEN: it goes into a Secret, never into a manifest, log or record.
        Every pool's vLLM reads the one Secret of the lab's namespace, whichever pool runs vLLM."""
        token = os.environ.get("HF_TOKEN")
        lab = self.ctx.resolved.lab
        if not token or not any(backend.workload.kind == "vllm-cpu" for backend in lab.backends()):
            return
        live = kube.get("v1", "Secret", HF_TOKEN_SECRET, lab.namespace)
        self._observe(object_ref("Secret", HF_TOKEN_SECRET, lab.namespace), live)
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": HF_TOKEN_SECRET,
                    "namespace": lab.namespace,
                    "labels": lab_labels(lab.name),
                },
                "type": "Opaque",
                "stringData": {"token": token},
            }
        )

    def _gate_states(self) -> list[g.GateState]:
        kube = self.ctx.kube()
        return [gate.check(kube) for gate in self.step.gates if not isinstance(gate, g.Answers)]

    def _probe(self) -> None:
        import httpx

        url = self.ctx.gateway_url()
        lab = self.ctx.resolved.lab
        body = {"model": lab.models[0].name, "prompt": "igwlab warm-up", "max_tokens": 4}
        headers = self.ctx.resolved.objective_headers().get(lab.models[0].name)
        deadline = time.monotonic() + self.ctx.timeout_s
        last = "no answer yet"
        while True:
            self._check_cancel()
            try:
                response = httpx.post(f"{url}/v1/completions", json=body, headers=headers, timeout=30)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as error:
                last = f"{type(error).__name__}: {error}"
            if time.monotonic() >= deadline:
                raise StepTimeoutError(
                    f"the gateway at {url} did not answer a completion within {self.ctx.timeout_s:.0f}s",
                    why=f"last: {last}",
                    fix=f"`igwlab verify --url {url}` explains what it sees; `igwlab diagnose` collects logs",
                )
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

    def _check_cancel(self) -> None:
        if self.ctx.cancel.is_set():
            raise Cancelled()
