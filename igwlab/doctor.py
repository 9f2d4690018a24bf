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
from dataclasses import dataclass, field
from typing import Any, Literal

from igwlab.errors import IgwlabError
from igwlab.selection import ResolvedLab
from igwlab.tools.k3d import list_clusters
from igwlab.tools.proc import CommandTimeoutError, ToolRunner
from igwlab.tools.versions import format_version, parse_version

Status = Literal["ok", "warn", "fail", "skip"]
MINIMUM_VERSIONS = {"k3d": (5, 6, 0), "helm": (3, 14, 0), "kubectl": (1, 28, 0)}
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


@dataclass(frozen=True)
class LabNeeds:
    cpus: float
    memory_gib: float
    amd64_only: bool
    host_ports: tuple[int, ...]

    @classmethod
    def of(cls, resolved: ResolvedLab) -> LabNeeds:
        lab = resolved.lab
        # k3s, the gateway controller and its proxy, the EPP: about 2 CPUs and 3 GiB on a laptop.
        cpus, memory = 2.0, 3.0
        vllm = resolved.catalog.vllm_cpu
        vllm_replicas = sum(b.workload.replicas for b in lab.backends() if b.workload.kind == "vllm-cpu")
        cpus += float(vllm.cpu) * vllm_replicas
        memory += _gib(vllm.memory) * vllm_replicas
        ports = (*tuple(listener.effective_host_port for listener in lab.gateway.listeners), lab.cluster.api_port)
        return cls(cpus=cpus, memory_gib=memory, amd64_only=vllm_replicas > 0, host_ports=ports)


def _gib(quantity: str) -> float:
    units = {"Ki": 1 / 1024**2, "Mi": 1 / 1024, "Gi": 1.0, "Ti": 1024.0}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    return float(quantity) / GIB


K3D_ONLY = ("k3d", "docker", "resources", "architecture", "ports")


def run_doctor(
    resolved: ResolvedLab,
    tools: ToolRunner,
    *,
    context: str | None = None,
    kube_reachable: bool | None = None,
    kube_problem: str | None = None,
) -> DoctorReport:
    """Every check, in a fixed order; one that does not apply or cannot run is `skip` with the reason."""
    report = DoctorReport(lab=resolved.lab.name, mode="context" if context else "k3d")
    needs = LabNeeds.of(resolved)
    add = report.findings.append

    def skip(names: tuple[str, ...], reason: str) -> None:
        for name in names:
            add(Finding(name, "skip", reason))

    for tool in ("helm", "kubectl") if context else ("k3d", "helm", "kubectl"):
        add(_tool_finding(tools, tool))
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
                    f"check `kubectl --context {context} get nodes`; `kubectl config get-contexts` lists the contexts",
                )
            )
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
        skip(("resources", "architecture", "cluster", "ports"), "not checked: they ask Docker, which is not reachable")
        return report
    add(Finding("docker", "ok", f"Docker {docker.get('ServerVersion', '?')} on {docker.get('OperatingSystem', '?')}"))
    add(_resources_finding(docker, needs))
    add(_arch_finding(docker, needs))
    existing = _existing_cluster(tools, resolved.lab.cluster.name)
    if existing:
        add(Finding("cluster", "ok", f"k3d cluster {resolved.lab.cluster.name} exists; up will reuse it"))
        add(Finding("ports", "skip", "not checked: the existing cluster already holds its host ports"))
    else:
        add(Finding("cluster", "ok", f"no k3d cluster named {resolved.lab.cluster.name} yet; up will create it"))
        add(_ports_finding(needs.host_ports))
    return report


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
    cpus = int(docker.get("NCPU") or 0)
    memory = int(docker.get("MemTotal") or 0) / GIB
    detail = (
        f"Docker can use {cpus} CPUs and {memory:.1f} GiB; the lab needs about {needs.cpus:.0f} CPUs and "
        f"{needs.memory_gib:.0f} GiB"
    )
    if cpus >= needs.cpus and memory >= needs.memory_gib:
        return Finding("resources", "ok", detail)
    fix = "give Docker more CPUs and memory (Docker Desktop: Settings > Resources)"
    if needs.amd64_only:
        fix += ", or use the simulator: --workload sim"
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


def _existing_cluster(tools: ToolRunner, name: str) -> bool:
    try:
        return any(cluster.get("name") == name for cluster in list_clusters(tools))
    except Exception:  # k3d missing or failing is reported by its own finding
        return False


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
