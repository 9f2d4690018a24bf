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

Offline: kwokctl gets every binary by path, so nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import testbin

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
    ) -> KwokCluster:
        """Start a cluster; `pod_network` ("127.X") picks the loopback range of pod IPs (random when None,
        so clusters of parallel test sessions do not share addresses)."""
        workdir.mkdir(parents=True, exist_ok=True)
        kubeconfig = workdir / "kubeconfig"
        network = pod_network or f"127.{random.randint(20, 250)}"
        cluster = cls(name, workdir, kubeconfig, binaries_env(workdir), network)
        argv = [cluster.kwokctl, "create", "cluster", "--name", name, "--kubeconfig", str(kubeconfig)]
        argv += ["--wait", f"{int(timeout_s)}s", "--timeout", f"{int(timeout_s)}s"]
        for component in disable:
            argv += ["--disable", component]
        cluster._run(argv, timeout_s + 30)
        if nodes:
            cluster.scale_nodes(nodes)
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

    def scale_nodes(self, count: int) -> None:
        """`count` kwok nodes with room for every lab (vLLM labs ask 12 CPUs per replica)."""
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
                f".allocatable.cpu={json.dumps(NODE_CPU)}",
                "--param",
                f".allocatable.memory={json.dumps(NODE_MEMORY)}",
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
