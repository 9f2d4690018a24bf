"""`up`, `status`, `teardown` and `diagnose`: the lab's lifecycle, independent of any CLI."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from igwlab.crds import CRD_API
from igwlab.deletion import wait_crds_gone, wait_namespaces_gone
from igwlab.doctor import DoctorReport, run_doctor
from igwlab.errors import (
    CannotWriteError,
    ClusterUnreachableError,
    DamagedRecordError,
    IgwlabError,
    PrerequisiteError,
    UsageError,
)
from igwlab.labs import with_cluster_name
from igwlab.mirror import Sources, resolve_sources
from igwlab.ownership import Ownership, carries_lab_labels, cluster_ref, object_ref, release_ref
from igwlab.plan import Plan, build_plan
from igwlab.records import RunRecord, latest_run, private_file
from igwlab.render import Rendered, render_lab, to_yaml
from igwlab.runner import EventSink, RunResult, Worker
from igwlab.selection import LabSelection, ResolvedLab, resolve_lab
from igwlab.state import current_lab_file, ensure_writable, names_recorded_lab, read_current_lab
from igwlab.steps import HF_TOKEN_SECRET, LITELLM_SECRET, Fetch, KubeFactory, UpContext, kubeconfig_path
from igwlab.tools import k3d, portforward
from igwlab.tools.kube import KubeApi, KubernetesApi, api_error_line
from igwlab.tools.proc import ToolRunner
from igwlab.wording import counted

_CLIENTS: dict[tuple[str | None, str | None, str | None], KubeApi] = {}


def real_kube(kubeconfig: Path | None, context: str | None) -> KubeApi:
    """One client per kubeconfig, context and $KUBECONFIG for the whole command: doctor's checks and the
    steps share its connection pool and API discovery instead of each paying for their own."""
    key = (str(kubeconfig) if kubeconfig else None, context, os.environ.get("KUBECONFIG"))
    if key not in _CLIENTS:
        _CLIENTS[key] = KubernetesApi(key[0], context)
    return _CLIENTS[key]


def http_fetch(url: str) -> str:
    import httpx

    try:
        response = httpx.get(url, follow_redirects=True, timeout=60)
        response.raise_for_status()
    except httpx.HTTPError as error:
        raise IgwlabError(
            f"could not download {url}: {error}",
            fix="check the network (a proxy?) and re-run; igwlab continues where it stopped",
        ) from error
    return response.text


@dataclass
class Environment:
    """What reaches the outside world; tests swap in fakes."""

    kube_factory: KubeFactory = real_kube
    fetch: Fetch = http_fetch
    tool_env: dict[str, str] | None = None
    poll_s: float = 0.25


@dataclass(frozen=True)
class UpOptions:
    selection: LabSelection
    cluster: str | None = None
    context: str | None = None
    timeout_s: float = 600.0
    dry_run: bool = False
    set_context: bool = False
    mirror: Path | None = None  # take CRDs, charts (and on k3d images) only from this mirror directory

    def __post_init__(self) -> None:
        """Flags of the k3d cluster `up` makes mean nothing with --context (an existing cluster): refused
        rather than silently ignored."""
        if self.context is None:
            return
        ignored = [
            flag
            for flag, given in (("--cluster", self.cluster is not None), ("--set-context", self.set_context))
            if given
        ]
        if ignored:
            raise UsageError(
                f"{' and '.join(ignored)} cannot be used with --context",
                why=f"{' and '.join(ignored)} {'apply' if len(ignored) > 1 else 'applies'} to the k3d cluster `up` "
                f"creates; with --context igwlab installs into the existing cluster {self.context!r} instead",
                fix=f"drop {' and '.join(ignored)}, or drop --context to create a k3d cluster",
            )


@dataclass
class UpResult:
    plan: Plan
    run: RunResult
    doctor: DoctorReport | None
    url: str | None
    record: Path | None
    duration_s: float


def prepare(
    selection: LabSelection, cluster: str | None, context: str | None, mirror: Path | None = None
) -> tuple[ResolvedLab, Rendered, Plan]:
    if context is not None and not context.strip():
        raise UsageError("--context is empty", fix="name a context from `kubectl config get-contexts`")
    resolved = resolve_lab(selection)
    if cluster is not None:
        resolved = replace(resolved, lab=with_cluster_name(resolved.lab, cluster))
    rendered = render_lab(resolved)
    sources = lab_sources(rendered, selection, context, mirror)
    return resolved, rendered, build_plan(rendered, context=context, sources=sources)


def lab_sources(rendered: Rendered, selection: LabSelection, context: str | None, mirror: Path | None) -> Sources:
    """Where `up` takes CRDs, charts and images from; images are imported only into a k3d cluster."""
    return resolve_sources(rendered, mirror, selection=selection, import_images=context is None)


def prerequisites_error(doctor: DoctorReport, *, dry_run: bool = False) -> PrerequisiteError:
    """Exit 3: what `doctor` found missing, and the fix for each."""
    failures = doctor.failures()
    return PrerequisiteError(
        "prerequisites missing: " + "; ".join(f"{f.name}: {f.detail}" for f in failures),
        why="the dry run changed nothing, but a real run would stop here"
        if dry_run
        else "igwlab checks these before it creates anything, and created nothing",
        fix=" · ".join(f.fix for f in failures if f.fix) + " (`igwlab doctor` lists every check)",
    )


def context_problem(env: Environment, context: str) -> tuple[str, str | None] | None:
    """None when the API server of `context` answers; else what is wrong (no such context, no DNS, refused,
    a certificate or scheme that does not fit) and, where igwlab knows one that fits, what to do."""
    try:
        env.kube_factory(None, context).list_objects("v1", "Namespace")
    except IgwlabError as error:
        return error.what, error.fix
    except Exception as error:
        from igwlab.tools.kube import explain_kube_error

        return explain_kube_error(error, context), None
    return None


def kube_reachable(env: Environment, context: str) -> bool:
    return context_problem(env, context) is None


def check_prerequisites(
    resolved: ResolvedLab, tools: ToolRunner, context: str | None, env: Environment | None = None
) -> DoctorReport:
    """`igwlab doctor`, as `up` runs it first: the machine, and the cluster the lab will use when it exists
    (the context's, or the k3d cluster of the lab's name, whose kubeconfig is kept in the state directory)."""
    env = env or Environment()
    problem = context_problem(env, context) if context else None

    def open_kube() -> KubeApi:
        if context is not None:
            return env.kube_factory(None, context)
        name = resolved.lab.cluster.name
        path = kubeconfig_path(name)
        private_file(path, k3d.kubeconfig(tools, name))
        return env.kube_factory(path, None)

    return run_doctor(
        resolved,
        tools,
        context=context,
        kube_reachable=problem is None if context else None,
        kube_problem=problem[0] if problem else None,
        kube_fix=problem[1] if problem else None,
        open_kube=open_kube,
    )


def up(
    options: UpOptions,
    env: Environment | None = None,
    on_event: EventSink | None = None,
    prepared: tuple[ResolvedLab, Rendered, Plan] | None = None,
) -> UpResult:
    """Bring the lab up; `prepared` is `prepare(...)` of the same options, when the caller already has it."""
    env = env or Environment()
    started = time.perf_counter()
    resolved, rendered, plan = prepared or prepare(options.selection, options.cluster, options.context, options.mirror)
    previous = read_current_lab() or {}
    refuse_another_lab(previous, resolved, options)  # before anything changes, in a dry run too
    sources = lab_sources(rendered, options.selection, options.context, options.mirror)
    sources.require()  # a missing or corrupt mirror item stops here, before anything changes
    if not options.dry_run:
        ensure_writable()
    record = None if options.dry_run else RunRecord.create("up", resolved.lab.name)
    tools = ToolRunner(recorder=record.command if record else None, env=env.tool_env)

    doctor = check_prerequisites(resolved, tools, options.context, env)
    if record is not None:
        record.write_json("plan.json", plan.as_dict())
        record.write_json("doctor.json", doctor.as_dict())
    if not doctor.ok and not options.dry_run:
        raise prerequisites_error(doctor)

    ctx = UpContext(
        resolved=resolved,
        rendered=rendered,
        plan=plan,
        tools=tools,
        record=record,
        kube_factory=env.kube_factory,
        fetch=env.fetch,
        context=options.context,
        timeout_s=options.timeout_s,
        dry_run=options.dry_run,
        poll_s=env.poll_s,
        sources=sources,
    )
    lab_file = options.selection.lab if options.selection.lab and Path(options.selection.lab).is_file() else None
    if previous.get("lab") == resolved.lab.name and previous.get("context") == options.context:
        ctx.previous_port_forward = previous.get("port_forward")
    if not options.dry_run:
        ctx.ownership = _ownership(previous, resolved.lab.name)
        ownership = ctx.ownership

        def in_progress() -> None:
            _write_current(
                resolved,
                options,
                record,
                url=None,
                status="in-progress",
                lab_file=lab_file,
                port_forward=ctx.previous_port_forward,
                ownership=ownership,
            )

        in_progress()
        if ownership is not None:
            ownership.on_change = in_progress  # each first sight is on disk before the step changes anything
    result = Worker(ctx, on_event).run()
    url = None
    if result.ok and not options.dry_run:
        url = ctx.gateway_url()
        _write_current(
            resolved,
            options,
            record,
            url=url,
            status="up",
            lab_file=lab_file,
            port_forward=ctx.port_forward.as_dict() if ctx.port_forward else None,
            ownership=ctx.ownership,
        )
        if options.set_context and options.context is None:
            tools.run(
                [
                    "k3d",
                    "kubeconfig",
                    "merge",
                    resolved.lab.cluster.name,
                    "--kubeconfig-merge-default",
                    "--kubeconfig-switch-context",
                ],
                timeout=60,
            )
    if record is not None:
        record.write_json(
            "result.json",
            {
                "ok": result.ok,
                "interrupted": result.interrupted,
                "url": url,
                "error": result.error.as_dict() if result.error else None,
                "steps": {sid: vars(outcome) for sid, outcome in result.outcomes.items()},
            },
        )
    return UpResult(plan, result, doctor, url, record.directory if record else None, time.perf_counter() - started)


def _mark_tearing_down(data: dict[str, Any]) -> None:
    """The record says `teardown` began (status `tearing-down`, and no URL to send to): a teardown that
    stops part-way leaves a record that `status` shows as such rather than as a lab that is up."""
    _replace_record({**data, "status": "tearing-down", "url": None})


def _replace_record(data: dict[str, Any]) -> None:
    path = current_lab_file()
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _write_current(
    resolved: ResolvedLab,
    options: UpOptions,
    record: RunRecord | None,
    *,
    url: str | None,
    status: str,
    lab_file: str | None,
    port_forward: dict[str, object] | None = None,
    ownership: Ownership | None = None,
) -> None:
    path = current_lab_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "lab": resolved.lab.name,
        "lab_file": str(Path(lab_file).resolve()) if lab_file else None,
        "selection": {
            "provider": options.selection.provider,
            "workload": options.selection.workload,
            "gie_version": options.selection.gie_version,
            "addons": list(options.selection.addons),
        },
        "cluster": resolved.lab.cluster.name,
        "context": options.context,
        "kubeconfig": None if options.context else str(kubeconfig_path(resolved.lab.cluster.name)),
        "namespace": resolved.lab.namespace,
        "url": url,
        "status": status,
        "run": str(record.directory) if record else None,
        "port_forward": port_forward,
        "mirror": str(options.mirror) if options.mirror else None,
    }
    if ownership is not None:
        data["ownership"] = ownership.as_dict()
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _ownership(previous: dict[str, Any], lab: str) -> Ownership | None:
    """What this `up` records as made vs found: carried on from the record of this lab's earlier `up`;
    None when that record predates ownership (its teardown then removes everything as it always did)."""
    if previous.get("lab") == lab and "ownership" not in previous:
        return None
    return Ownership.from_record(lab, previous.get("ownership") if previous.get("lab") == lab else None)


def refuse_another_lab(previous: dict[str, Any], resolved: ResolvedLab, options: UpOptions) -> None:
    """Exit 2 when the state directory records another lab (or this lab on another cluster), up or
    in progress: taking its record over would leave its releases and cluster-wide objects with nothing
    that removes them. A re-run of the recorded lab on its cluster continues as before."""
    if not previous or not isinstance(previous.get("lab"), str):
        return
    lab = resolved.lab
    where = _where(previous.get("context"), previous.get("cluster"))
    same = (
        previous["lab"] == lab.name
        and previous.get("context") == options.context
        and (options.context is not None or previous.get("cluster") == lab.cluster.name)
    )
    if same:
        return
    this = _where(options.context, lab.cluster.name)
    raise UsageError(
        f"lab {previous['lab']} is recorded {previous.get('status') or 'up'} {where}; "
        f"`up` of lab {lab.name} {this} would take its place",
        why=f"{current_lab_file()} keeps one lab; the other one's releases and cluster-wide objects would be "
        "left with nothing that removes them"
        + (" (the dry run changed nothing, but a real run would stop here)" if options.dry_run else ""),
        fix=f"run `igwlab teardown` first to remove lab {previous['lab']}, or give lab {lab.name} a state "
        "directory of its own: IGWLAB_STATE_DIR=DIR igwlab up ...",
    )


def _where(context: Any, cluster: Any) -> str:
    if context:
        return f"in context {context}"
    return f"on the k3d cluster {cluster}" if cluster else "(the record names no cluster)"


# -- the lab that is up ------------------------------------------------------------------------------


@dataclass
class CurrentLab:
    data: dict[str, Any]
    resolved: ResolvedLab
    rendered: Rendered
    plan: Plan

    @property
    def context(self) -> str | None:
        return self.data.get("context")

    def is_lab(self, reference: str) -> bool:
        """Whether `reference` (a preset name or a lab file path, as `--lab` takes) names this lab."""
        return reference == self.resolved.lab.name or names_recorded_lab(self.data, reference)

    def kube(self, env: Environment) -> KubeApi:
        """The lab's cluster; failing to reach it is an igwlab error that says why (exit 3)."""
        from igwlab.tools.kube import explained, explained_call

        kubeconfig = self.data.get("kubeconfig")
        where = f"context {self.context}" if self.context else f"the k3d cluster {self.data.get('cluster')}"
        api = explained_call(
            self.context, where, env.kube_factory, Path(kubeconfig) if kubeconfig else None, self.context
        )
        return explained(api, self.context, where)

    def helm_target(self) -> list[str]:
        if self.context:
            return ["--kube-context", self.context]
        return ["--kubeconfig", str(self.data["kubeconfig"])]

    @property
    def ownership(self) -> Ownership | None:
        """What `up` made vs found; None for a record written before igwlab recorded it."""
        if "ownership" not in self.data:
            return None
        return Ownership.from_record(self.resolved.lab.name, self.data["ownership"])


def current_lab() -> CurrentLab:
    data = read_current_lab()
    if data is None:
        raise UsageError(
            "no lab is up", why=f"{current_lab_file()} does not exist", fix="bring one up with `igwlab up`"
        )
    selection = data.get("selection") or {}
    reference = data.get("lab_file") or data["lab"]
    resolved, rendered, plan = prepare(
        LabSelection(
            lab=reference,
            workload=selection.get("workload"),
            gie_version=selection.get("gie_version"),
            addons=tuple(selection.get("addons") or ()),
        ),
        data.get("cluster"),
        data.get("context"),
    )
    return CurrentLab(data, resolved, rendered, plan)


def status(env: Environment | None = None) -> dict[str, Any]:
    env = env or Environment()
    current = current_lab()
    kube = current.kube(env)
    objects = []
    for obj in current.rendered.objects:
        live = kube.get(obj.api_version, obj.kind, obj.name, obj.namespace)
        objects.append({"ref": obj.ref, "exists": live is not None, "conditions": _conditions(live)})
    for step in current.plan.steps:
        for gate in step.gates:
            if step.kind == "probe":
                continue
            state = gate.check(kube)
            objects.append({"ref": gate.describe(), "exists": state.ok, "conditions": [state.detail]})
    tools = ToolRunner(env=env.tool_env)
    releases = []
    for release in current.rendered.releases:
        result = tools.run(
            ["helm", "status", release.name, "--namespace", release.namespace, *current.helm_target()],
            timeout=60,
            check=False,
        )
        releases.append(
            {
                "release": release.name,
                "namespace": release.namespace,
                "version": release.version,
                "deployed": result.returncode == 0 and "deployed" in result.stdout,
            }
        )
    return {
        "lab": current.resolved.lab.name,
        "status": current.data.get("status"),
        "url": current.data.get("url"),
        "cluster": current.data.get("cluster"),
        "context": current.context,
        "objects": objects,
        "releases": releases,
    }


def _conditions(obj: dict[str, Any] | None) -> list[str]:
    if obj is None:
        return []
    status_block = obj.get("status") or {}
    found = [f"{c.get('type')}={c.get('status')}" for c in status_block.get("conditions") or []]
    for parent in status_block.get("parents") or status_block.get("parent") or []:
        name = (parent.get("parentRef") or {}).get("name")
        found += [f"{name}: {c.get('type')}={c.get('status')}" for c in parent.get("conditions") or []]
    return found


@dataclass(frozen=True)
class TeardownOptions:
    crds: bool = False
    keep_cluster: bool = False
    timeout_s: float = 180.0  # how long deleted namespaces may take to finish terminating


@dataclass
class TeardownResult:
    """What teardown removed (refs in order) and what it left because `up` found it already there."""

    removed: list[str]
    kept: list[str]


def teardown(
    options: TeardownOptions, env: Environment | None = None, on_event: Callable[[str], None] | None = None
) -> TeardownResult:
    """Remove what `up` made, and only that: a namespace, release, CRD or object `up` found already there
    (recorded in the lab's `ownership`) stays, with a line saying so. A record without `ownership`
    (written before igwlab kept it) removes the lab's whole namespace and every release, as it always did."""
    env = env or Environment()
    say = on_event or (lambda _: None)
    current = current_lab()
    ensure_writable()
    _mark_tearing_down(current.data)
    record = RunRecord.create("teardown", current.resolved.lab.name)
    tools = ToolRunner(recorder=record.command, env=env.tool_env)
    result = TeardownResult([], [])
    try:
        forward = current.data.get("port_forward")
        if forward and portforward.stop(int(forward["pid"])):
            say(f"stopped the port-forward to the gateway (pid {forward['pid']})")
            result.removed.append("port-forward to the gateway")
        ownership = current.ownership
        name = current.resolved.lab.cluster.name
        cluster_found = ownership is not None and ownership.is_found(cluster_ref(name))
        if current.context is None and not options.keep_cluster and not cluster_found:
            if k3d.cluster_exists(tools, name):
                say(f"deleting k3d cluster {name}")
                k3d.delete_cluster(tools, name, timeout=300)
                result.removed.append(f"k3d cluster {name}")
            kubeconfig_path(name).unlink(missing_ok=True)
        else:
            if cluster_found and current.context is None:
                say(f"kept k3d cluster {name}: it was there before `up`; removing only the lab from it")
                result.kept.append(f"k3d cluster {name}")
            _remove_lab_objects(current, env, tools, options, say, result)
    except BaseException:
        if not result.removed:  # stopped before it removed anything (the cluster unreachable...): as it was
            _replace_record(current.data)
        raise
    current_lab_file().unlink(missing_ok=True)
    record.write_json("result.json", {"removed": result.removed, "kept": result.kept})
    return result


class _Owned:
    """Teardown's test of what is the lab's to remove: everything (a record without ownership), or what
    `up` recorded as made; what it recorded as found is kept and said."""

    def __init__(self, ownership: Ownership | None, result: TeardownResult, say: Callable[[str], None]) -> None:
        self.ownership = ownership
        self.result = result
        self.say = say

    def __call__(self, ref: str, shown: str | None = None) -> bool:
        if self.ownership is None or self.ownership.is_created(ref):
            return True
        if self.ownership.is_found(ref):
            self.say(f"kept {shown or ref}: it was there before `up`, so it is not the lab's to remove")
            self.result.kept.append(shown or ref)
        return False


def _remove_lab_objects(
    current: CurrentLab,
    env: Environment,
    tools: ToolRunner,
    options: TeardownOptions,
    say: Callable[[str], None],
    result: TeardownResult,
) -> None:
    """The lab's own objects and releases in reverse plan order (route, gateway, models, pool, workload,
    namespace), then the provider's releases, then, only when asked, the CRDs: each only when `up` made it."""
    kube = current.kube(env)
    removed = result.removed
    owned = _Owned(current.ownership, result, say)
    steps = list(reversed(current.plan.steps))
    ordered = [s for s in steps if not s.id.startswith("provider-") and s.kind != "crds"]
    ordered += [s for s in steps if s.id.startswith("provider-")]
    ordered += [s for s in steps if s.kind == "crds"]
    for step in ordered:
        if step.kind == "apply":
            if step.id == "namespace":
                _remove_lab_secrets(kube, current, owned, say, removed)
            for obj in reversed(current.rendered.objects_for(step.id)):
                if owned(obj.ref) and kube.delete(obj.api_version, obj.kind, obj.name, obj.namespace):
                    say(f"deleted {obj.ref}")
                    removed.append(obj.ref)
        elif step.kind == "helm":
            for summary in reversed(step.releases):
                release, namespace = summary["release"], summary["namespace"]
                if not owned(release_ref(namespace, release), f"Helm release {namespace}/{release}"):
                    continue
                target = ["--namespace", namespace, *current.helm_target()]
                hooks = release_hooks(tools, release, target)
                uninstalled = tools.run(["helm", "uninstall", release, *target], timeout=300, check=False)
                if uninstalled.returncode == 0:
                    say(f"uninstalled Helm release {release}")
                    removed.append(f"helm release {namespace}/{release}")
                    for hook in hooks:
                        # Helm keeps hook objects (e.g. a pre-install Job's ClusterRole) after uninstall.
                        hook_namespace = (hook.get("metadata") or {}).get("namespace")
                        if kube.delete(hook["apiVersion"], hook["kind"], hook["metadata"]["name"], hook_namespace):
                            say(f"deleted {hook['kind']}/{hook['metadata']['name']} (a hook of {release})")
                            removed.append(f"{hook['kind']}/{hook['metadata']['name']}")
        elif step.kind == "crds" and options.crds:
            for crd in step.crds:
                if owned(object_ref("CustomResourceDefinition", crd), f"CRD {crd}") and kube.delete(
                    CRD_API, "CustomResourceDefinition", crd
                ):
                    say(f"deleted CRD {crd}")
                    removed.append(f"CustomResourceDefinition/{crd}")
            bundle = next((b for b in current.rendered.crd_bundles if b.step == step.id), None)
            for api_version, kind, name in bundle.admission if bundle is not None else ():
                if owned(object_ref(kind, name)) and kube.delete(api_version, kind, name):
                    say(f"deleted {kind} {name} (applied with the CRDs)")
                    removed.append(f"{kind}/{name}")
    releases = [summary for step in ordered if step.kind == "helm" for summary in step.releases]
    _remove_release_namespaces(kube, releases, current, owned, removed, say)
    namespaces = [ref.split("/", 1)[1] for ref in removed if ref.startswith("Namespace/")]
    if namespaces:
        say(f"waiting for namespace {', '.join(namespaces)} to finish terminating")
        wait_namespaces_gone(kube, namespaces, options.timeout_s, env.poll_s, say=say)
    crds = [ref.split("/", 1)[1] for ref in removed if ref.startswith("CustomResourceDefinition/")]
    if crds:
        say(f"waiting for {counted(len(crds), 'CRD')} to be gone")
        wait_crds_gone(kube, crds, options.timeout_s, env.poll_s, say=say)


def _remove_lab_secrets(
    kube: KubeApi, current: CurrentLab, owned: _Owned, say: Callable[[str], None], removed: list[str]
) -> None:
    """The Secrets `up` makes beside the rendered objects (LiteLLM's master key, the HF token): deleting
    the lab's namespace takes them along, but a namespace that was there before stays, and they must go."""
    ownership = current.ownership
    namespace = current.resolved.lab.namespace
    if ownership is None or not ownership.is_found(object_ref("Namespace", namespace)):
        return
    for name in (LITELLM_SECRET, HF_TOKEN_SECRET):
        ref = object_ref("Secret", name, namespace)
        if owned(ref) and ownership.is_created(ref) and kube.delete("v1", "Secret", name, namespace):
            say(f"deleted {ref}")
            removed.append(ref)


def release_hooks(tools: ToolRunner, release: str, target: list[str]) -> list[dict[str, Any]]:
    """The objects a release's hooks made (`helm get hooks`), which `helm uninstall` leaves behind when
    the chart sets no hook-delete-policy; namespaced ones without a namespace get the release's."""
    import yaml

    result = tools.run(["helm", "get", "hooks", release, *target], timeout=60, check=False)
    if result.returncode != 0:
        return []
    namespace = target[target.index("--namespace") + 1]
    hooks = []
    try:
        documents = [d for d in yaml.safe_load_all(result.stdout) if isinstance(d, dict)]
    except yaml.YAMLError:
        return []
    for document in documents:
        metadata = document.get("metadata")
        if not isinstance(metadata, dict) or not document.get("kind") or not document.get("apiVersion"):
            continue
        if document["kind"] not in CLUSTER_SCOPED_KINDS:
            metadata.setdefault("namespace", namespace)
        hooks.append(document)
    return hooks


# Kinds charts' hooks make that have no namespace (the rest get the release's namespace when unset).
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "Namespace",
        "PriorityClass",
        "StorageClass",
    }
)


def _remove_release_namespaces(
    kube: KubeApi,
    releases: list[dict[str, Any]],
    current: CurrentLab,
    owned: _Owned,
    removed: list[str],
    say: Callable[[str], None],
) -> None:
    """The namespaces `up` made for the lab's releases, once every release is uninstalled: those it
    recorded as made; for a record without ownership, those labelled as igwlab's. One that was there
    before `up` stays."""
    lab_namespace = current.resolved.lab.namespace
    for namespace in dict.fromkeys(summary["namespace"] for summary in releases):
        if namespace == lab_namespace:
            continue  # the namespace step removes it, after everything in it
        if current.ownership is None:
            mine = carries_lab_labels(kube.get("v1", "Namespace", namespace), current.resolved.lab.name)
        else:
            mine = owned(object_ref("Namespace", namespace))
        if mine and kube.delete("v1", "Namespace", namespace):
            say(f"deleted Namespace/{namespace}")
            removed.append(f"Namespace/{namespace}")


def diagnose(out: Path | None, env: Environment | None = None, folder: bool = False) -> Path:
    """A tar.gz with the last run record, events, object and pod dumps, pod logs and Helm status.
    `out`: the archive, or a folder to write it into (one that exists, or any when `folder`: the user
    wrote it with a trailing slash)."""
    env = env or Environment()
    damaged: DamagedRecordError | None = None
    try:
        data = read_current_lab()
    except DamagedRecordError as error:  # the bundle is for what went wrong: it carries the damaged file
        data, damaged = None, error
    run = Path(data["run"]) if data and isinstance(data.get("run"), str) else latest_run("up")
    default_name = f"igwlab-diagnose-{time.strftime('%Y%m%d-%H%M%S')}.tar.gz"
    target = out or Path(default_name)
    if target.is_dir() or (out is not None and folder):
        target = target / default_name  # --out DIR or DIR/: the usual name inside it
    # Written beside the target under a temporary name and renamed once complete: an interrupted or
    # failed diagnose leaves no half archive, and an earlier archive of that name stays until then.
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    blocker = next((parent for parent in target.parents if parent.exists() and not parent.is_dir()), None)
    if blocker is not None:
        raise CannotWriteError(
            f"cannot write {target}: {blocker} is a file, not a folder",
            fix="pass --out with a file in a folder, e.g. --out /tmp/igwlab-diagnose.tar.gz",
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        archive_file = tarfile.open(partial, "w:gz")  # noqa: SIM115 - closed by the with below; only opening may fail here
    except OSError as error:
        raise CannotWriteError(
            f"cannot write {target}: {error.strerror or error}",
            fix="pass --out with a file in a directory you can write, e.g. --out /tmp/igwlab-diagnose.tar.gz",
        ) from None
    try:
        _write_diagnose(archive_file, env, data, damaged, run)
        os.replace(partial, target)
    except OSError as error:  # the disk filled up, the folder went away...
        partial.unlink(missing_ok=True)
        raise CannotWriteError(
            f"cannot write {target}: {error.strerror or error}",
            fix="free some space or pass --out with a file in a directory you can write",
        ) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target


def _write_diagnose(
    archive_file: tarfile.TarFile,
    env: Environment,
    data: dict[str, Any] | None,
    damaged: DamagedRecordError | None,
    run: Path | None,
) -> None:
    with archive_file as archive:
        if run is not None and run.is_dir():
            archive.add(run, arcname=f"run/{run.name}")
        notes: list[str] = []
        if damaged is not None:
            notes.append(damaged.what)
            with contextlib.suppress(OSError):  # a file that cannot be read is named in the note only
                archive.add(current_lab_file(), arcname="current.json")
        if data is not None:
            try:
                _add_cluster_dump(archive, env, notes)
            except Exception as error:  # an unreachable cluster still leaves the run record to read
                notes.append(f"cluster not reachable: {api_error_line(error)}")
        elif damaged is None:
            notes.append("no lab is recorded as up: only the last run record is included")
        _add_text(archive, "NOTES.txt", "\n".join(notes) + "\n")


def _add_cluster_dump(archive: tarfile.TarFile, env: Environment, notes: list[str]) -> None:
    """Events of every namespace the lab uses, the lab's objects and every pod as the API server has them,
    each pod's logs (of the last terminated run too, for a container that restarted), Helm status. One
    part the cluster refuses (a log of a container that never started) is noted in its place, never the
    end of the bundle."""
    current = current_lab()
    kube = current.kube(env)
    namespace = current.resolved.lab.namespace
    namespaces = sorted({namespace} | {release.namespace for release in current.rendered.releases})

    def add(name: str, read: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            text = str(read(*args, **kwargs))
        except ClusterUnreachableError:
            raise
        except Exception as error:  # this part only: the rest of the bundle still explains a lot
            text = f"not available: {api_error_line(error, 500)}\n"
            notes.append(f"{name}: {text.strip()}")
        _add_text(archive, name, text)

    for ns in namespaces:
        add(f"cluster/events/{ns}.yaml", lambda ns: to_yaml(kube.events(ns)), ns)
    for obj in current.rendered.objects:
        live = kube.get(obj.api_version, obj.kind, obj.name, obj.namespace)
        _add_text(archive, f"cluster/objects/{obj.kind}-{obj.name}.yaml", to_yaml(live) if live else "missing\n")
    for ns in namespaces:
        for pod in kube.list_objects("v1", "Pod", ns):
            name = pod["metadata"]["name"]
            _add_text(archive, f"cluster/pods/{ns}/{name}.yaml", to_yaml(pod))
            add(f"cluster/logs/{ns}/{name}.log", kube.logs, ns, name)
            for container in (pod.get("status") or {}).get("containerStatuses") or []:
                if int(container.get("restartCount") or 0) > 0:
                    previous = f"cluster/logs/{ns}/{name}.{container['name']}.previous.log"
                    add(previous, kube.logs, ns, name, container=container["name"], previous=True)
    tools = ToolRunner(env=env.tool_env)
    for release in current.rendered.releases:
        result = tools.run(
            ["helm", "status", release.name, "--namespace", release.namespace, *current.helm_target()],
            timeout=60,
            check=False,
        )
        _add_text(archive, f"helm/{release.name}.txt", result.stdout + result.stderr)
    notes.append(f"lab {current.resolved.lab.name}; namespaces {', '.join(namespaces)}")


def _add_text(archive: tarfile.TarFile, name: str, text: str) -> None:
    payload = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mtime = int(time.time())
    archive.addfile(info, io.BytesIO(payload))


GRAFANA_SERVICE = "igwlab-grafana"
DASHBOARD_PATH = "/d/igwlab-inference"


def dashboard_forward(local_port: int) -> tuple[list[str], str]:
    """The port-forward to the lab's Grafana, and the dashboard URL it makes reachable."""
    current = current_lab()
    lab = current.resolved.lab
    if "observability" not in lab.addons:
        raise UsageError(
            f"lab {lab.name} is up without the observability add-on",
            fix=f"bring it up with it: igwlab up --lab {lab.name} --with observability (a re-run adds only that)",
        )
    target = ["--context", current.context] if current.context else ["--kubeconfig", str(current.data["kubeconfig"])]
    argv = [
        "kubectl",
        "port-forward",
        "--namespace",
        lab.namespace,
        f"svc/{GRAFANA_SERVICE}",
        f"{local_port}:80",
        "--address",
        "127.0.0.1",
        *target,
    ]
    return argv, f"http://127.0.0.1:{local_port}{DASHBOARD_PATH}"
