"""`igwlab doctor`: can this machine run the lab? Each finding is ok, warn or fail, with the fix.

`up` runs the same checks first, so a missing prerequisite stops it within seconds, before
anything is created.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from igwlab.crds import crd_sets, fit, read_cluster
from igwlab.errors import IgwlabError
from igwlab.quantities import cpu_text, memory_text
from igwlab.render import render_lab
from igwlab.render.requests import lab_requests
from igwlab.selection import ResolvedLab
from igwlab.tools.k3d import host_ports, list_clusters
from igwlab.tools.kube import KubeApi, api_error_line
from igwlab.tools.proc import CommandTimeoutError, ToolRunner
from igwlab.tools.versions import format_version, parse_version

Status = Literal["ok", "warn", "fail", "skip"]
# k3d: the oldest that starts the k3s images the catalog pins (catalog.yaml k3s_images, k3d-io/k3d#1481).
MINIMUM_VERSIONS = {"k3d": (5, 7, 4), "helm": (3, 14, 0), "kubectl": (1, 28, 0)}
VERSION_COMMANDS = {
    "k3d": ["k3d", "version"],
    "helm": ["helm", "version", "--short"],
    "kubectl": ["kubectl", "version", "--client", "-o", "json"],
}
GIB = 1024**3


@dataclass(frozen=True)
class Finding:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass
class DoctorReport:
    lab: str
    mode: Literal["k3d", "context"]
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(finding.status == "fail" for finding in self.findings)

    def failures(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.status == "fail"]

    def as_dict(self) -> dict[str, Any]:
        return {"lab": self.lab, "mode": self.mode, "ok": self.ok, "findings": [f.as_dict() for f in self.findings]}


# k3s itself and the gateway implementation (controller and proxy): not the lab's own pods, but on the
# same Docker. An estimate from idle k3d clusters with one provider installed.
PLATFORM_CPUS, PLATFORM_MEMORY_GIB = 1.0, 2.0


@dataclass(frozen=True)
class LabNeeds:
    cpus: float  # the lab's own requests plus the platform estimate
    memory_gib: float
    amd64_only: bool
    host_ports: tuple[int, ...]
    requested_cpus: float = 0.0  # what the lab's own pods request, summed over replicas
    requested_memory_gib: float = 0.0
    largest: tuple[str, ...] = ()  # the biggest requests, for the message

    @classmethod
    def of(cls, resolved: ResolvedLab) -> LabNeeds:
        lab = resolved.lab
        requests = lab_requests(render_lab(resolved))
        cpus = sum(r.total_cpu for r in requests)
        memory = sum(r.total_memory for r in requests) / GIB
        largest = tuple(
            f"{r.what} {r.replicas} x {cpu_text(r.cpu)} CPU / {memory_text(r.memory)}"
            for r in sorted(requests, key=lambda r: (r.total_cpu, r.total_memory), reverse=True)[:3]
            if r.total_cpu or r.total_memory
        )
        vllm_replicas = sum(b.workload.replicas for b in lab.backends() if b.workload.kind == "vllm-cpu")
        ports = (*tuple(listener.effective_host_port for listener in lab.gateway.listeners), lab.cluster.api_port)
        return cls(
            cpus=cpus + PLATFORM_CPUS,
            memory_gib=memory + PLATFORM_MEMORY_GIB,
            amd64_only=vllm_replicas > 0,
            host_ports=ports,
            requested_cpus=cpus,
            requested_memory_gib=memory,
            largest=largest,
        )


K3D_ONLY = ("k3d", "k3s-image", "docker", "resources", "architecture", "ports")
ON_CLUSTER = ("kubernetes", "gateway-api-crds", "inference-crds")  # read from a cluster that exists already


def run_doctor(
    resolved: ResolvedLab,
    tools: ToolRunner,
    *,
    context: str | None = None,
    kube_reachable: bool | None = None,
    kube_problem: str | None = None,
    kube_fix: str | None = None,
    open_kube: Callable[[], KubeApi] | None = None,
) -> DoctorReport:
    """Every check, in order; one that does not apply or cannot run is `skip` with the reason.
    `kube_problem` says why the context's cluster does not answer (`kube_fix`: what to do, when known);
    `open_kube` reaches the cluster the lab will use when it exists already (the context's, or a k3d
    cluster being reused), for the checks of what is on it."""
    report = DoctorReport(lab=resolved.lab.name, mode="context" if context else "k3d")
    needs = LabNeeds.of(resolved)
    add = report.findings.append

    def skip(names: tuple[str, ...], reason: str) -> None:
        for name in names:
            add(Finding(name, "skip", reason))

    for tool in ("helm", "kubectl") if context else ("k3d", "helm", "kubectl"):
        add(_tool_finding(tools, tool))
    if not context:
        image = _k3s_image_finding(tools, resolved)
        add(image or Finding("k3s-image", "skip", "not checked: k3d's version is unknown (see the k3d check)"))
    hf_token = hugging_face_finding(resolved)
    if hf_token is not None:
        add(hf_token)
    if context:
        if kube_reachable is None:
            add(Finding("cluster", "skip", f"context {context} was not checked"))
        elif kube_reachable:
            add(Finding("cluster", "ok", f"context {context} answers"))
        else:
            add(
                Finding(
                    "cluster",
                    "fail",
                    kube_problem or f"the API server of context {context} does not answer",
                    kube_fix
                    or f"check `kubectl --context {context} get nodes`; `kubectl config get-contexts` lists the "
                    "contexts",
                )
            )
        if kube_reachable and open_kube is not None:
            report.findings += cluster_findings(resolved, open_kube, f"the cluster of context {context}")
        else:
            skip(ON_CLUSTER, f"not checked: the cluster of context {context} does not answer")
        skip(K3D_ONLY, f"not needed: --context {context} uses an existing cluster")
        return report
    docker = _docker_info(tools)
    if docker is None:
        add(
            Finding(
                "docker",
                "fail",
                "the Docker daemon is not reachable (`docker info` failed)",
                "start Docker (Docker Desktop, `sudo systemctl start docker`, or colima/podman), "
                "or use an existing cluster with --context",
            )
        )
        skip(
            ("resources", "architecture", "cluster", "ports", *ON_CLUSTER),
            "not checked: they ask Docker, which is not reachable",
        )
        return report
    add(Finding("docker", "ok", f"Docker {docker.get('ServerVersion', '?')} on {docker.get('OperatingSystem', '?')}"))
    add(_resources_finding(docker, needs))
    add(_arch_finding(docker, needs))
    existing = _existing_cluster(tools, resolved.lab.cluster.name)
    if existing is not None:
        fits = k3d_cluster_finding(resolved, existing)
        add(fits)
        if fits.status != "fail" and open_kube is not None:
            what = f"k3d cluster {resolved.lab.cluster.name}"
            report.findings += cluster_findings(resolved, open_kube, what, reused_k3d=True)
        else:
            skip(ON_CLUSTER, "not checked: the existing k3d cluster does not fit this lab (see the cluster check)")
        add(Finding("ports", "skip", "not checked: the existing cluster already holds its host ports"))
    else:
        add(Finding("cluster", "ok", f"no k3d cluster named {resolved.lab.cluster.name} yet; up will create it"))
        skip(ON_CLUSTER, "not needed: up creates the cluster with the stack's pinned k3s and CRDs")
        add(_ports_finding(needs.host_ports))
    return report


# -- the cluster the lab will use ---------------------------------------------------------------------


def cluster_findings(
    resolved: ResolvedLab, open_kube: Callable[[], KubeApi], what: str, *, reused_k3d: bool = False
) -> list[Finding]:
    """What an existing cluster must offer the lab's stack: its Kubernetes version, and CRDs that fit."""
    try:
        kube = open_kube()
        version_text = kube.server_version()
    except Exception as error:  # unreachable, or no permission: other findings say so
        return [
            Finding("kubernetes", "warn", f"could not read the Kubernetes version of {what}: {api_error_line(error)}")
        ]
    findings = [kubernetes_finding(resolved, version_text, what, reused_k3d=reused_k3d)]
    try:
        findings += crd_findings(resolved, kube)
    except Exception as error:
        findings.append(Finding("crds", "warn", f"could not read the CRDs of {what}: {api_error_line(error)}"))
    return findings


def crd_findings(resolved: ResolvedLab, kube: KubeApi) -> list[Finding]:
    """The Gateway API and inference CRDs already on the cluster against the bundles the lab installs:
    older ones are upgraded (a note), newer ones, another channel or a blocking admission policy refused."""
    sets = crd_sets(resolved)
    found, safe_upgrades = read_cluster(sets, lambda api, kind, name: kube.get(api, kind, name))
    status: dict[str, Status] = {"absent": "ok", "same": "ok", "upgrade": "warn", "refuse": "fail"}
    findings = []
    for crd_set in sets:
        result = fit(crd_set, found[crd_set.title], safe_upgrades)
        name = "gateway-api-crds" if crd_set.gateway_api else "inference-crds"
        findings.append(Finding(name, status[result.verdict], result.detail, result.fix))
    return findings


def kubernetes_finding(resolved: ResolvedLab, version_text: str, what: str, *, reused_k3d: bool = False) -> Finding:
    """The server's version against the stack's range: below its minimum is refused, above its tested
    maximum is a warning on a cluster of the user's; a k3d cluster igwlab made outside the range was made
    for another lab, and is refused either way."""
    stack, pin = resolved.stack, resolved.stack.kubernetes
    version = parse_version(version_text)
    if version is None:
        return Finding("kubernetes", "warn", f"could not read a version from {version_text!r} ({what})")
    shown = f"Kubernetes {format_version(version)} ({what})"
    if reused_k3d and (not pin.accepts(version) or pin.above_max(version)):
        return Finding(
            "kubernetes",
            "fail",
            f"{shown} was made for another lab: the {stack.id} stack runs on Kubernetes {pin.describe()} "
            f"({pin.k3s_image})",
            REUSE_FIX.format(name=resolved.lab.cluster.name),
        )
    if not pin.accepts(version):
        others = sorted(
            f"--provider {name}"
            for name, other in resolved.catalog.all_stacks()
            if other.kubernetes.accepts(version) and not other.kubernetes.above_max(version)
        )
        fix = f"use a cluster with Kubernetes {pin.describe()} (k3d: drop --context, up creates one)"
        if others:
            fix += f", or a stack that supports {format_version(version)[1:]}: {', '.join(dict.fromkeys(others))}"
        return Finding(
            "kubernetes",
            "fail",
            f"{shown} is older than {pin.min}, the oldest the {stack.id} stack supports ({pin.describe()})",
            fix,
        )
    if pin.above_max(version):
        return Finding(
            "kubernetes",
            "warn",
            f"{shown} is newer than {pin.max}, the newest the {stack.id} stack is known to support",
            f"expect surprises, or use a cluster with Kubernetes {pin.describe()}",
        )
    return Finding("kubernetes", "ok", f"{shown}; the {stack.id} stack supports {pin.describe()}")


def _k3s_image_finding(tools: ToolRunner, resolved: ResolvedLab) -> Finding | None:
    """The installed k3d must be able to start the stack's k3s image (None: no k3d version to compare,
    which the k3d finding reports)."""
    image_name = resolved.stack.kubernetes.k3s_image
    image = resolved.catalog.k3s_images[image_name]
    version = _tool_version(tools, "k3d")
    if version is None:
        return None
    minimum = parse_version(image.min_k3d) or (0, 0, 0)
    if version < minimum:
        return Finding(
            "k3s-image",
            "fail",
            f"k3d {format_version(version)} cannot start {image_name} (Kubernetes {image.kubernetes}, the "
            f"{resolved.stack.id} stack's): k3d before {image.min_k3d} waits forever for the server to come up",
            f"upgrade k3d to {image.min_k3d} or newer (https://k3d.io)",
        )
    return Finding(
        "k3s-image", "ok", f"k3d {format_version(version)} starts {image_name} (Kubernetes {image.kubernetes})"
    )


def hugging_face_repos(resolved: ResolvedLab) -> list[str]:
    """The Hugging Face repositories the lab's vLLM pools download: base models and LoRA adapters
    (`org/name` ids; local paths are not downloads)."""
    repos: list[str] = []
    for backend in resolved.lab.backends():
        workload = backend.workload
        if workload.kind != "vllm-cpu":
            continue
        for repo in (workload.base_model, *(lora.source for lora in workload.loras)):
            if "/" in repo and not repo.startswith(("/", ".", "~")):
                repos.append(repo)
    return list(dict.fromkeys(repos))


def hugging_face_finding(resolved: ResolvedLab) -> Finding | None:
    """vLLM pools download from Hugging Face: without HF_TOKEN gated models fail and downloads are throttled."""
    repos = hugging_face_repos(resolved)
    if not repos:
        return None
    shown = ", ".join(repos[:3]) + (f" and {len(repos) - 3} more" if len(repos) > 3 else "")
    if os.environ.get("HF_TOKEN"):
        return Finding("hf-token", "ok", f"HF_TOKEN is set; up puts it into Secret hf-token for {shown}")
    return Finding(
        "hf-token",
        "warn",
        f"vLLM downloads {shown} from Hugging Face and HF_TOKEN is not set: a gated model fails to load "
        "(401) and anonymous downloads are rate-limited",
        "export HF_TOKEN=<your Hugging Face token> before `igwlab up` (it goes into the Secret hf-token only)",
    )


def _tool_version(tools: ToolRunner, tool: str) -> tuple[int, int, int] | None:
    if tools.which(tool) is None:
        return None
    try:
        result = tools.run(VERSION_COMMANDS[tool], timeout=20, check=False)
    except (CommandTimeoutError, IgwlabError):  # hung, or on PATH but cannot be started
        return None
    return parse_version(result.stdout)


def _tool_finding(tools: ToolRunner, tool: str) -> Finding:
    minimum = MINIMUM_VERSIONS[tool]
    if tools.which(tool) is None:
        from igwlab.tools.proc import INSTALL_HINTS

        status: Status = "warn" if tool == "kubectl" else "fail"
        why = " (igwlab does not need it, but you will to look around)" if tool == "kubectl" else ""
        return Finding(tool, status, f"{tool} not found on PATH{why}", INSTALL_HINTS[tool])
    try:
        result = tools.run(VERSION_COMMANDS[tool], timeout=20, check=False)
    except CommandTimeoutError:
        return Finding(tool, "fail", f"`{tool} version` hung", f"reinstall {tool}")
    except IgwlabError as error:  # on PATH but cannot be started
        return Finding(tool, "fail", error.what, error.fix or f"reinstall {tool}")
    text = result.stdout
    if tool == "kubectl":
        with contextlib.suppress(json.JSONDecodeError, KeyError, TypeError):
            text = json.loads(result.stdout)["clientVersion"]["gitVersion"]
    version = parse_version(text)
    if version is None:
        return Finding(tool, "warn", f"could not read {tool}'s version from {text.strip()[:60]!r}", "")
    if version < minimum:
        return Finding(
            tool,
            "fail",
            f"{tool} {format_version(version)} is older than {format_version(minimum)}",
            f"upgrade {tool} to {format_version(minimum)} or newer",
        )
    return Finding(tool, "ok", f"{tool} {format_version(version)}")


def _docker_info(tools: ToolRunner) -> dict[str, Any] | None:
    if tools.which("docker") is None:
        return None
    try:
        result = tools.run(["docker", "info", "--format", "{{json .}}"], timeout=20, check=False)
    except (CommandTimeoutError, IgwlabError):
        return None
    try:
        info = json.loads(result.stdout)
    except json.JSONDecodeError:
        return None
    if result.returncode != 0 or not isinstance(info, dict) or not info.get("ServerVersion"):
        return None
    return info


def _resources_finding(docker: dict[str, Any], needs: LabNeeds) -> Finding:
    """The lab's own requests against what Docker offers: pods that ask for more than there is stay
    Pending (Unschedulable), so that is a failure; the platform's share on top only a warning."""
    cpus = int(docker.get("NCPU") or 0)
    memory = int(docker.get("MemTotal") or 0) / GIB
    detail = (
        f"Docker can use {cpus} CPUs and {memory:.1f} GiB; the lab's pods request {needs.requested_cpus:.1f} CPUs "
        f"and {needs.requested_memory_gib:.1f} GiB"
        + (f" ({'; '.join(needs.largest)})" if needs.largest else "")
        + f", and k3s with the gateway about {PLATFORM_CPUS:.0f} CPU and {PLATFORM_MEMORY_GIB:.0f} GiB more"
    )
    if cpus >= needs.cpus and memory >= needs.memory_gib:
        return Finding("resources", "ok", detail)
    fix = "give Docker more CPUs and memory (Docker Desktop: Settings > Resources)"
    if needs.amd64_only:
        fix += ", or use the simulator: --workload sim"
    else:
        fix += ", or lower the lab's requests (workload.resources, workload.replicas, pool.epp.resources)"
    if cpus < needs.requested_cpus or memory < needs.requested_memory_gib or needs.amd64_only:
        return Finding("resources", "fail", detail, fix)
    return Finding("resources", "warn", detail, fix)


def _arch_finding(docker: dict[str, Any], needs: LabNeeds) -> Finding:
    arch = str(docker.get("Architecture") or "unknown")
    if needs.amd64_only and arch not in ("x86_64", "amd64"):
        return Finding(
            "architecture",
            "fail",
            f"Docker runs {arch}; vLLM's CPU images are amd64-only",
            "use the simulator (--workload sim), which runs on arm64 too",
        )
    return Finding("architecture", "ok", arch)


def _existing_cluster(tools: ToolRunner, name: str) -> dict[str, Any] | None:
    try:
        return next((cluster for cluster in list_clusters(tools) if cluster.get("name") == name), None)
    except Exception:  # k3d missing or failing is reported by its own finding
        return None


REUSE_FIX = (
    "`igwlab teardown` (or `k3d cluster delete {name}`) and run up again, or use --cluster NAME for a "
    "cluster of its own"
)


def k3d_cluster_finding(resolved: ResolvedLab, cluster: dict[str, Any]) -> Finding:
    """A k3d cluster of the lab's name, made by an earlier `up` perhaps for another lab: it must map each
    of this lab's listeners to the host port the lab's URL uses, or the gateway is not where `up` says."""
    lab = resolved.lab
    name = lab.cluster.name
    mapped = host_ports(cluster)
    wrong = []
    for listener in lab.gateway.listeners:
        hosts = mapped.get(listener.port, [])
        if listener.effective_host_port not in hosts:
            now = ", ".join(map(str, hosts)) if hosts else "no host port"
            wrong.append(
                f"listener {listener.name} wants host port {listener.effective_host_port} -> {listener.port}, "
                f"the cluster maps {now}"
            )
    if wrong:
        return Finding(
            "cluster",
            "fail",
            f"k3d cluster {name} exists but was made for another lab: {'; '.join(wrong)}",
            REUSE_FIX.format(name=name),
        )
    return Finding("cluster", "ok", f"k3d cluster {name} exists with this lab's port mappings; up will reuse it")


def _ports_finding(ports: tuple[int, ...]) -> Finding:
    busy = [port for port in ports if port_in_use(port)]
    if busy:
        return Finding(
            "ports",
            "fail",
            f"host ports in use: {', '.join(map(str, busy))}",
            "stop what listens there, or set other host ports (gateway.listeners[].host_port and "
            "cluster.api_port in a lab file)",
        )
    return Finding("ports", "ok", f"host ports free: {', '.join(map(str, ports))}")


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like Docker's port proxy (Go sets SO_REUSEADDR): connections lingering in TIME_WAIT don't count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError as error:
            return error.errno in (errno.EADDRINUSE, errno.EACCES)
    return False
