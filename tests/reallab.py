"""A lab on a real (kwok) cluster, driven through igwlab's own command line, for the tests marked
`realcluster` and `realpicker`.

    with RealLab.start(tmp_path, mirror) as lab:       # a fresh cluster, the gateway stand-in, the data path
        up = lab.igwlab("up", "--lab", "kgateway-fake-llm")   # = igwlab up --context kwok-… --mirror …
        assert up.returncode == 0, up.output

What is real: the API server, etcd, controller-manager, scheduler (kwok runs the pods), the real
`helm` installing the real charts from an offline mirror assembled from ../shared/upstream, the real
EPP/BBR binaries and Envoy of the data path (dataplane.py). What is stood in: the gateway controller's
status and translation (standin.py, dataplane.py) and the container runtime (kwok).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import testbin
from dataplane import DataPlane
from kwokcluster import NODE_CPU, NODE_MEMORY, KwokCluster, PodFault
from mirror_support import helm_env
from standin import GatewayStandIn

from igwlab.selection import LabSelection, ResolvedLab, resolve_lab

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return f"$ {' '.join(self.argv)}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class RealLab:
    cluster: KwokCluster
    workdir: Path
    mirror: Path | None
    env: dict[str, str]
    address: str
    standin: GatewayStandIn | None = None
    dataplane: DataPlane | None = None
    hold: frozenset[str] = frozenset()
    namespaces: list[str] = field(default_factory=list)

    @classmethod
    @contextmanager
    def start(
        cls,
        workdir: Path,
        mirror: Path | None,
        *,
        nodes: int = 2,
        data_path: bool = True,
        hold: frozenset[str] = frozenset(),
        real_sim: bool = False,
        stages: Sequence[PodFault] = (),
        node_cpu: str = NODE_CPU,
        node_memory: str = NODE_MEMORY,
    ) -> Iterator[RealLab]:
        """A fresh kwok cluster; the gateway stand-in and (with `data_path`) the real data path start
        with the first `igwlab up`, once the lab is known. `stages`, `node_cpu`, `node_memory`: see
        KwokCluster.create (pods held in a fault state, nodes too small for a lab)."""
        name = f"igwlab-{uuid.uuid4().hex[:6]}"
        cluster = KwokCluster.create(
            name, workdir / "kwok", nodes=nodes, stages=stages, node_cpu=node_cpu, node_memory=node_memory
        )
        try:
            with cls.on(cluster, workdir, mirror, data_path=data_path, hold=hold, real_sim=real_sim) as lab:
                yield lab
        finally:
            cluster.delete()

    @classmethod
    @contextmanager
    def on(
        cls,
        cluster: KwokCluster,
        workdir: Path,
        mirror: Path | None,
        *,
        data_path: bool = True,
        hold: frozenset[str] = frozenset(),
        real_sim: bool = False,
    ) -> Iterator[RealLab]:
        """A lab on a cluster that outlives it (one cluster shared by a module's tests): igwlab's state,
        helm's caches and the stand-ins live under `workdir` and stop with the lab; the cluster stays."""
        k8s = testbin.ensure(testbin.TOOLS[f"kubernetes-{testbin.K8S_VERSION}"])
        env = helm_env(workdir, testbin.binary("helm"), [k8s])
        env.update(
            KUBECONFIG=str(cluster.kubeconfig),
            IGWLAB_STATE_DIR=str(workdir / "state"),
            NO_COLOR="1",
            COLUMNS="200",
        )
        env.pop("IGWLAB_MIRROR", None)
        lab = cls(cluster, workdir, mirror, env, cluster.address(1), hold=hold)
        lab._data_path = data_path
        lab._real_sim = real_sim
        try:
            yield lab
        finally:
            lab.stop()

    _data_path: bool = True
    _real_sim: bool = False

    def run(self, *args: str, timeout_s: float = 900, env: dict[str, str] | None = None) -> Result:
        argv = [sys.executable, "-m", "igwlab", *args]
        done = subprocess.run(argv, env=env or self.env, capture_output=True, text=True, timeout=timeout_s, check=False)
        return Result(["igwlab", *args], done.returncode, done.stdout, done.stderr)

    def igwlab(self, command: str, *args: str, timeout_s: float = 900) -> Result:
        """`igwlab COMMAND ARGS`, with `--context` and `--mirror` added where the command takes them."""
        return self.run(command, *args, *self._extra(command, args), timeout_s=timeout_s)

    def _extra(self, command: str, args: tuple[str, ...]) -> list[str]:
        extra: list[str] = []
        if command in ("up", "doctor"):
            extra += ["--context", self.cluster.context]
        if command == "up" and self.mirror is not None:
            extra += ["--mirror", str(self.mirror)]
        if command == "up":
            self.ensure_controllers(args)
        return extra

    def spawn(self, command: str, *args: str) -> Running:
        """`igwlab COMMAND ARGS` started in the background (as `igwlab()` would run it), to fault the
        cluster while it runs; `Running.finish()` waits for it."""
        argv = [sys.executable, "-m", "igwlab", command, *args, *self._extra(command, args)]
        process = subprocess.Popen(argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return Running(["igwlab", command, *args], process, time.monotonic())

    @property
    def state_dir(self) -> Path:
        return Path(self.env["IGWLAB_STATE_DIR"])

    def run_events(self, command: str = "up") -> list[dict[str, Any]]:
        """The events of the newest `command` run record (events.jsonl), as far as written."""
        runs = sorted((self.state_dir / "runs").glob(f"*-{command}-*"))
        if not runs:
            return []
        path = runs[-1] / "events.jsonl"
        if not path.is_file():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def ensure_controllers(self, args: tuple[str, ...]) -> None:
        if self.standin is not None:
            return
        resolved = resolve_from_args(args)
        self.namespaces = sorted({resolved.lab.namespace})
        self.standin = GatewayStandIn(
            resolved, str(self.cluster.kubeconfig), self.cluster.context, address=self.address, hold=self.hold
        ).start()
        if self._data_path:
            self.dataplane = DataPlane(
                self.cluster, self.namespaces, self.workdir / "dataplane", self.address, real_sim=self._real_sim
            ).start()

    def stop(self) -> None:
        if self.dataplane is not None:
            self.dataplane.stop()
        if self.standin is not None:
            self.standin.stop()

    def diagnostics(self) -> str:
        """What to print when a test fails: stand-in and data-path errors and process logs."""
        parts = []
        if self.standin is not None:
            parts.append(f"stand-in errors: {self.standin.errors}")
        if self.dataplane is not None:
            parts.append(self.dataplane.logs())
        return "\n".join(parts)

    # -- counting what exists -------------------------------------------------------------------------

    def inventory(self) -> set[str]:
        """Every object a user could have created (all namespaced kinds in every namespace and the
        cluster-scoped kinds igwlab or charts create), as `kind/namespace/name`."""
        kinds = (
            "deployments,services,serviceaccounts,configmaps,secrets,roles,rolebindings,"
            "gateways.gateway.networking.k8s.io,httproutes.gateway.networking.k8s.io"
        )
        found: set[str] = set()
        out = self.cluster.kubectl("get", kinds, "-A", "-o", "json", check=False)
        for item in json.loads(out or '{"items": []}').get("items", []):
            meta = item["metadata"]
            if meta.get("namespace") in SYSTEM_NAMESPACES:
                continue  # the control plane's own, made while it boots
            if item["kind"] == "ServiceAccount" and meta["name"] == "default":
                continue
            if item["kind"] == "ConfigMap" and meta["name"] == "kube-root-ca.crt":
                continue
            found.add(f"{item['kind']}/{meta.get('namespace', '')}/{meta['name']}")
        cluster_scoped = "namespaces,clusterroles,clusterrolebindings,customresourcedefinitions,gatewayclasses"
        out = self.cluster.kubectl("get", cluster_scoped, "-o", "json", check=False)
        for item in json.loads(out or '{"items": []}').get("items", []):
            meta = item["metadata"]
            if item["kind"] == "Namespace" and meta["name"] in SYSTEM_NAMESPACES:
                continue
            if meta["name"].startswith("system:") or meta["name"] in ("admin", "edit", "view", "cluster-admin"):
                continue
            found.add(f"{item['kind']}//{meta['name']}")
        return found

    def releases(self) -> list[str]:
        out = subprocess.run(
            [str(testbin.binary("helm")), "list", "-A", "-o", "json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        return sorted(f"{r['namespace']}/{r['name']}" for r in json.loads(out or "[]"))


@dataclass
class Running:
    """An igwlab command running in the background."""

    argv: list[str]
    process: subprocess.Popen[str]
    started: float

    def finish(self, timeout_s: float = 900) -> Result:
        try:
            stdout, stderr = self.process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            stdout, stderr = self.process.communicate()
            command = " ".join(self.argv)
            raise AssertionError(f"{command} still ran after {timeout_s:.0f}s:\n{stdout}\n{stderr}") from None
        return Result(self.argv, self.process.returncode, stdout, stderr)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def resolve_from_args(args: tuple[str, ...]) -> ResolvedLab:
    """The lab an `igwlab up ARGS` names (for the stand-ins to know its gateway class and API era)."""

    def value(flag: str) -> str | None:
        return args[args.index(flag) + 1] if flag in args else None

    addons = tuple(args[i + 1] for i, arg in enumerate(args) if arg == "--with")
    return resolve_lab(
        LabSelection(
            lab=value("--lab"),
            provider=value("--provider"),
            workload=value("--workload"),
            gie_version=value("--gie-version"),
            addons=addons,
        )
    )
