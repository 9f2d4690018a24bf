"""A real Kubernetes control plane for the tests: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok, started by `kwokctl` with the binary runtime from the testbin cache.

Everything is real but the container runtime: kwok plays the kubelet, so Pods get scheduled, become
Running and Ready (or stay in whatever state a kwok Stage holds them in), Deployments become Available,
and the API server does what it always does: CRDs Established, server-side apply with field managers,
CEL and ValidatingAdmissionPolicy admission, RBAC, namespace finalization.

    cluster = KwokCluster.create("igwlab-t1", workdir)   # about 3-5 s once the binaries are built
    cluster.kubectl("get", "nodes")
    cluster.stop_component("kube-apiserver"); cluster.start()
    cluster.delete()

    # pods labelled app=fakellm stay in CrashLoopBackOff, as a kubelet reports a crashing container
    KwokCluster.create("igwlab-t2", workdir, stages=[PodFault("CrashLoopBackOff", ("app", "fakellm"), "bad flag")])

Offline: kwokctl gets every binary by path, so nothing is downloaded; the default Stages are read from
the kwok module source of the pinned version (the Go module cache the testbin build filled).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import testbin
import yaml

NODE_CPU = "32"
NODE_MEMORY = "64Gi"


def binaries_env(workdir: Path) -> dict[str, str]:
    """kwokctl's environment: every component by path from the testbin cache, state under `workdir`."""
    k8s = testbin.ensure(testbin.TOOLS[f"kubernetes-{testbin.K8S_VERSION}"])
    etcd = testbin.binary("etcd")
    kwok = testbin.binary("kwok")
    return {
        **os.environ,
        "KWOK_WORKDIR": str(workdir),
        "KWOK_RUNTIME": "binary",
        "KWOK_KUBE_VERSION": testbin.K8S_VERSION,
        "KWOK_KUBE_APISERVER_BINARY": str(k8s / "kube-apiserver"),
        "KWOK_KUBE_CONTROLLER_MANAGER_BINARY": str(k8s / "kube-controller-manager"),
        "KWOK_KUBE_SCHEDULER_BINARY": str(k8s / "kube-scheduler"),
        "KWOK_KUBECTL_BINARY": str(k8s / "kubectl"),
        "KWOK_CONTROLLER_BINARY": str(kwok),
        "KWOK_ETCD_BINARY": str(etcd),
        "KWOK_KUBE_AUTHORIZATION": "true",
        "KWOK_KUBE_ADMISSION": "true",
    }


class ClusterError(RuntimeError):
    pass


@dataclass
class KwokCluster:
    name: str
    workdir: Path
    kubeconfig: Path
    env: dict[str, str]

    @property
    def context(self) -> str:
        return f"kwok-{self.name}"

    @property
    def kwokctl(self) -> str:
        return str(testbin.binary("kwokctl"))

    @property
    def kubectl_binary(self) -> Path:
        return testbin.binary("kubectl")

    pod_network: str = "127.1"  # pods get IPs 127.X.<node>.<n>: loopback, so local processes can stand for them

    @classmethod
    def create(
        cls,
        name: str,
        workdir: Path,
        *,
        nodes: int = 1,
        disable: tuple[str, ...] = (),
        timeout_s: float = 180,
        pod_network: str | None = None,
        stages: Sequence[PodFault] = (),
        node_cpu: str = NODE_CPU,
        node_memory: str = NODE_MEMORY,
    ) -> KwokCluster:
        """Start a cluster; `pod_network` ("127.X") picks the loopback range of pod IPs (random when None,
        so clusters of parallel test sessions do not share addresses). `stages`: pods the faults select
        stay in the fault's state (kwok's default Stages run every other pod). `node_cpu`/`node_memory`:
        each node's allocatable, e.g. "4" to make the scheduler refuse a vLLM replica."""
        workdir.mkdir(parents=True, exist_ok=True)
        kubeconfig = workdir / "kubeconfig"
        network = pod_network or f"127.{random.randint(20, 250)}"
        cluster = cls(name, workdir, kubeconfig, binaries_env(workdir), network)
        argv = [cluster.kwokctl, "create", "cluster", "--name", name, "--kubeconfig", str(kubeconfig)]
        argv += ["--wait", f"{int(timeout_s)}s", "--timeout", f"{int(timeout_s)}s"]
        for component in disable:
            argv += ["--disable", component]
        if stages:
            config = workdir / "kwok-stages.yaml"
            config.write_text(yaml.safe_dump_all(stage_config(stages), sort_keys=False), encoding="utf-8")
            argv += ["--config", str(config)]
        cluster._run(argv, timeout_s + 30)
        if nodes:
            cluster.scale_nodes(nodes, cpu=node_cpu, memory=node_memory)
        return cluster

    def _run(self, argv: list[str], timeout_s: float, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout_s, check=False)
        if check and result.returncode != 0:
            raise ClusterError(f"{' '.join(argv[:4])} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        return result

    def address(self, host: int) -> str:
        """A loopback address of this cluster's range that no pod gets (pods use 127.X.<node>.N)."""
        return f"{self.pod_network}.250.{host}"

    def kubectl(self, *args: str, timeout_s: float = 60, check: bool = True, stdin: str | None = None) -> str:
        argv = [str(self.kubectl_binary), "--kubeconfig", str(self.kubeconfig), "--context", self.context, *args]
        result = subprocess.run(
            argv, env=self.env, input=stdin, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if check and result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result.stdout

    def delete_crds(self, names: Sequence[str], timeout_s: float = 180) -> None:
        """Delete these CRDs and wait until the API server has removed them, through igwlab's own wait
        (deletion.wait_crds_gone): a CRD deleted soon after it was created can stay Terminating for
        minutes ("could not list instances: storage is (re)initializing") unless its finalizer is asked
        to retry, which `kubectl delete --wait` does not do."""
        from igwlab.deletion import wait_crds_gone
        from igwlab.tools.kube import KubernetesApi

        if not names:
            return
        self.kubectl("delete", "customresourcedefinitions", *names, "--ignore-not-found", "--wait=false")
        wait_crds_gone(KubernetesApi(str(self.kubeconfig), self.context), list(names), timeout_s)

    def scale_nodes(self, count: int, *, cpu: str = NODE_CPU, memory: str = NODE_MEMORY) -> None:
        """`count` kwok nodes, by default with room for every lab (vLLM labs ask 12 CPUs per replica)."""
        self._run(
            [
                self.kwokctl,
                "scale",
                "node",
                "--name",
                self.name,
                "--replicas",
                str(count),
                "--param",
                f".allocatable.cpu={json.dumps(cpu)}",
                "--param",
                f".allocatable.memory={json.dumps(memory)}",
                "--param",
                f".podCIDR={json.dumps(self.pod_network + '.0.0/24')}",
            ],
            120,
        )

    # -- faults --------------------------------------------------------------------------------------

    def pid_of(self, component: str) -> int | None:
        path = self.workdir / "clusters" / self.name / "pids" / f"{component}.pid"
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop_component(self, component: str) -> None:
        """Stop one component (e.g. kube-apiserver) the hard way, as a crash would."""
        pid = self.pid_of(component)
        if pid is None:
            raise ClusterError(f"no pid file for {component}")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def pause_component(self, component: str) -> None:
        """Freeze one component (SIGSTOP): it keeps its connections but answers nothing, as a hung or
        partitioned API server does. `resume_component` (SIGCONT) lets it go on."""
        pid = self.pid_of(component)
        if pid is None:
            raise ClusterError(f"no pid file for {component}")
        os.kill(pid, signal.SIGSTOP)

    def resume_component(self, component: str) -> None:
        pid = self.pid_of(component)
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGCONT)

    def start(self, timeout_s: float = 120) -> None:
        """Start whatever components are stopped (kwokctl start cluster)."""
        self._run(
            [self.kwokctl, "start", "cluster", "--name", self.name, "--wait", f"{int(timeout_s)}s"], timeout_s + 30
        )

    def delete(self) -> None:
        self._run([self.kwokctl, "delete", "cluster", "--name", self.name], 120, check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child still answers kill 0; read its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


# -- kwok Stages: pods held in the states a kubelet reports for a fault ----------------------------------

FaultState = Literal["CrashLoopBackOff", "ImagePullBackOff", "CreateContainerConfigError", "NotReady"]

# kwokctl's own default Stages for the binary runtime (pkg/kwokctl/runtime/cluster.go, getDefaultNodeStages
# with a node lease, getDefaultPodStages), as files of the kwok module at the pinned version. kwokctl uses
# them only when its config holds no Stage, so a config with fault Stages must carry them too.
DEFAULT_STAGE_FILES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)


@cache
def kwok_source() -> Path:
    """The kwok module's source at the version testbin builds (`go mod download -json`, from the module
    cache the build filled; offline once built)."""
    module = testbin.MODULES / testbin.TOOLS["kwok-v0.7.0"].folder
    version = testbin.TOOLS["kwok-v0.7.0"].version
    try:
        done = subprocess.run(
            ["go", "mod", "download", "-json", f"sigs.k8s.io/kwok@{version}"],
            cwd=module,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, "GOFLAGS": "-mod=readonly"},
        )
    except FileNotFoundError as error:
        raise ClusterError("kwok's default Stages are read from its module source, and Go is not installed") from error
    if done.returncode != 0:
        raise ClusterError(f"go mod download sigs.k8s.io/kwok@{version} failed:\n{done.stdout}{done.stderr}")
    return Path(json.loads(done.stdout)["Dir"])


@dataclass(frozen=True)
class PodFault:
    """Pods carrying `label` (key, value) stay in `state`, with the status and event a kubelet writes for it
    (modelled on kwok's chaos Stages, kustomize/stage/pod/chaos): the container's waiting reason and message,
    its last termination for a crash loop, Ready=False. `message`: what the container or kubelet said (the
    crash's termination message, the missing Secret, the failing probe)."""

    state: FaultState
    label: tuple[str, str]
    message: str = ""

    def stage(self, index: int) -> dict[str, Any]:
        key, value = self.label
        next_status, event = _FAULT_STATUS[self.state](self.message or _DEFAULT_MESSAGE[self.state])
        return {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Stage",
            "metadata": {"name": f"fault-{index}-{self.state.lower()}"},
            "spec": {
                "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
                "selector": {
                    "matchExpressions": [
                        {"key": _label_key(key), "operator": "In", "values": [value]},
                        {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                        {"key": ".status.podIP", "operator": "DoesNotExist"},
                    ]
                },
                "next": {"event": event, "statusTemplate": next_status},
            },
        }


def _label_key(key: str) -> str:
    return f'.metadata.labels["{key}"]'


def stage_config(faults: Sequence[PodFault]) -> list[dict[str, Any]]:
    """kwokctl's default Stages, the default pod-ready one kept off the faulty pods, then a Stage per fault."""
    source = kwok_source()
    stages = [yaml.safe_load((source / path).read_text(encoding="utf-8")) for path in DEFAULT_STAGE_FILES]
    excluded: dict[str, list[str]] = {}
    for fault in faults:
        excluded.setdefault(fault.label[0], []).append(fault.label[1])
    for stage in stages:
        if stage["metadata"]["name"] == "pod-ready":
            stage["spec"]["selector"]["matchExpressions"] += [
                {"key": _label_key(key), "operator": "NotIn", "values": values} for key, values in excluded.items()
            ]
    return [*stages, *(fault.stage(index) for index, fault in enumerate(faults))]


# What a kubelet (v1.34) writes into a pod's status for each fault, as kwok status templates: the pod's
# conditions, each container's state, a pod IP (its sandbox exists in each of these states).
_STATUS_HEAD = (
    """{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: PodReadyToStartContainers
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  reason: ContainersNotReady
  message: {{ printf "containers with unready status: [%s]" ( index .spec.containers 0 ).name | Quote }}
  type: Ready
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  reason: ContainersNotReady
  type: ContainersReady
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: """
    + (
        '{{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) '
        '( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}'
    )
    + """
startTime: {{ $now | Quote }}
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
"""
)


def _crash_loop(message: str) -> tuple[str, dict[str, str]]:
    return (
        _STATUS_HEAD
        + f"""  restartCount: 3
  started: false
  state:
    waiting:
      reason: CrashLoopBackOff
      message: {{{{ printf "back-off 40s restarting failed container=%s" .name | Quote }}}}
  lastState:
    terminated:
      exitCode: 1
      reason: Error
      message: {json.dumps(message)}
      startedAt: {{{{ $now | Quote }}}}
      finishedAt: {{{{ $now | Quote }}}}
{{{{ end }}}}
phase: Running
""",
        {"type": "Warning", "reason": "BackOff", "message": "Back-off restarting failed container"},
    )


def _image_pull(message: str) -> tuple[str, dict[str, str]]:
    return (
        _STATUS_HEAD
        + f"""  restartCount: 0
  started: false
  state:
    waiting:
      reason: ImagePullBackOff
      message: {{{{ printf "Back-off pulling image %q: ErrImagePull: %s" .image {json.dumps(message)} | Quote }}}}
{{{{ end }}}}
phase: Pending
""",
        {"type": "Warning", "reason": "Failed", "message": f"Failed to pull image: {message}"},
    )


def _config_error(message: str) -> tuple[str, dict[str, str]]:
    return (
        _STATUS_HEAD
        + f"""  restartCount: 0
  started: false
  state:
    waiting:
      reason: CreateContainerConfigError
      message: {json.dumps(message)}
{{{{ end }}}}
phase: Pending
""",
        {"type": "Warning", "reason": "Failed", "message": f"Error: {message}"},
    )


def _not_ready(message: str) -> tuple[str, dict[str, str]]:
    return (
        _STATUS_HEAD
        + """  restartCount: 0
  started: true
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
phase: Running
""",
        {"type": "Warning", "reason": "Unhealthy", "message": f"Readiness probe failed: {message}"},
    )


_FAULT_STATUS = {
    "CrashLoopBackOff": _crash_loop,
    "ImagePullBackOff": _image_pull,
    "CreateContainerConfigError": _config_error,
    "NotReady": _not_ready,
}
_DEFAULT_MESSAGE = {
    "CrashLoopBackOff": "the container exited at start",
    "ImagePullBackOff": "rpc error: code = NotFound desc = failed to resolve reference: not found",
    "CreateContainerConfigError": 'secret "hf-token" not found',
    "NotReady": "HTTP probe failed with statuscode: 503",
}
