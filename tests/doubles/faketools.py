"""Fake k3d, helm, docker and kubectl executables (see the package docstring)."""

from __future__ import annotations

import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCRIPT = r"""#!{python}
import json, os, sys, time
from pathlib import Path

import fcntl

TOOL = {tool!r}
STATE = Path({state!r})
argv = sys.argv[1:]
# Real tools keep their state elsewhere; these share files, so one fake command at a time.
LOCK = open(STATE / "lock", "w")
with open(STATE / "calls.jsonl", "a") as log:
    log.write(json.dumps({{"tool": TOOL, "argv": argv, "time": time.time()}}) + "\n")
config = json.loads((STATE / "config.json").read_text())
words = " ".join([TOOL] + argv)

def load(name, default):
    path = STATE / name
    return json.loads(path.read_text()) if path.exists() else default

def save(name, data):
    tmp = STATE / (name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(STATE / name)

for prefix, delay in config.get("delays", {{}}).items():
    if words.startswith(prefix):
        time.sleep(delay)
fcntl.flock(LOCK, fcntl.LOCK_EX)
for prefix, failure in config.get("failures", {{}}).items():
    if words.startswith(prefix):
        sys.stderr.write(failure.get("stderr", "error\n"))
        sys.exit(failure.get("rc", 1))

def flag(name, default=None):
    return argv[argv.index(name) + 1] if name in argv else default

if TOOL == "docker":
    if argv[:1] == ["info"]:
        info = config.get("docker_info")
        if info is None:
            print(json.dumps({{"ServerVersion": "", "NCPU": 0, "MemTotal": 0}}))
            sys.stderr.write("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                             "Is the docker daemon running?\n")
            sys.exit(1)
        print(json.dumps(info))
        sys.exit(0)
    if config.get("docker_info") is None and argv[:1] in (["pull"], ["save"]):
        sys.stderr.write("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                         "Is the docker daemon running?\n")
        sys.exit(1)
    if argv[:1] == ["pull"]:
        pulled = load("docker-images.json", [])
        save("docker-images.json", sorted(set(pulled) | {{argv[-1]}}))
        print(argv[-1].rsplit(":", 1)[-1] + ": Pulling from " + argv[-1] + "\nStatus: Downloaded newer image")
        sys.exit(0)
    if argv[:1] == ["save"]:
        import io, tarfile
        ref = argv[-1]
        if ref not in load("docker-images.json", []):
            sys.stderr.write(f"Error response from daemon: reference does not exist: {{ref}}\n"); sys.exit(1)
        manifest = json.dumps([{{"Config": "config.json", "RepoTags": [ref], "Layers": []}}]).encode()
        with tarfile.open(flag("--output") or flag("-o"), "w") as archive:
            for name, data in (("manifest.json", manifest), ("config.json", b"{{}}")):
                info = tarfile.TarInfo(name); info.size = len(data); info.mtime = time.time()
                archive.addfile(info, io.BytesIO(data))
        sys.exit(0)
elif TOOL == "kubectl":
    if argv[:1] == ["version"]:
        print(json.dumps({{"clientVersion": {{"gitVersion": config.get("kubectl_version", "v1.31.2")}}}}))
        sys.exit(0)
    if argv[:1] == ["port-forward"]:
        fcntl.flock(LOCK, fcntl.LOCK_UN)
        spec = next(a for a in argv if ":" in a and a.split(":")[0].isdigit())
        local, remote = spec.split(":")
        print(f"Forwarding from 127.0.0.1:{{local}} -> {{remote}}", flush=True)
        target = config.get("port_forward_target")
        if not target:
            time.sleep(config.get("port_forward_s", 3600))
            sys.exit(0)
        # Relay TCP to the configured target, standing in for the pod behind the Service.
        import asyncio
        host, port = target.rsplit(":", 1)

        async def pipe(reader, writer):
            try:
                while True:
                    data = await reader.read(65536)
                    if not data:
                        break
                    writer.write(data)
                    await writer.drain()
            finally:
                writer.close()

        async def handle(reader, writer):
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
            await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

        async def serve():
            server = await asyncio.start_server(handle, "127.0.0.1", int(local))
            async with server:
                await asyncio.sleep(config.get("port_forward_s", 3600))

        asyncio.run(serve())
        sys.exit(0)
elif TOOL == "k3d":
    clusters = load("k3d.json", [])
    if argv[:1] == ["version"]:
        print("k3d version " + config.get("k3d_version", "v5.7.4") + "\nk3s version v1.31.5-k3s1 (default)")
    elif argv[:2] == ["cluster", "list"]:
        # As k3d prints it: nodes with their role, image (Docker's image ID) and port bindings.
        specs = load("k3d-specs.json", {{}})
        def nodes(name):
            spec = specs.get(name, {{}})
            ports = {{"6443/tcp": [{{"HostIp": "0.0.0.0", "HostPort": spec.get("api_port", "6550")}}]}}
            for container, host in spec.get("ports", {{}}).items():
                ports[container] = [{{"HostIp": "0.0.0.0", "HostPort": host}}]
            import hashlib
            image_id = "sha256:" + hashlib.sha256(spec.get("image", "").encode()).hexdigest()
            return [
                {{"name": f"k3d-{{name}}-server-0", "role": "server", "image": image_id, "portMappings": {{}}}},
                {{"name": f"k3d-{{name}}-serverlb", "role": "loadbalancer", "image": "sha256:0f1b2c3d4e5f",
                  "portMappings": ports}},
            ]
        print(json.dumps([{{"name": name, "serversRunning": 1, "serversCount": 1, "nodes": nodes(name)}}
                          for name in clusters]))
    elif argv[:2] == ["cluster", "create"]:
        name = argv[2]
        if name in clusters:
            sys.stderr.write(f"FATA[0000] Failed to create cluster '{{name}}' because a cluster with that "
                             "name already exists\n")
            sys.exit(1)
        specs = load("k3d-specs.json", {{}})
        mapped = {{}}
        for index, arg in enumerate(argv):
            if arg in ("--port", "-p"):
                host, rest = argv[index + 1].split(":", 1)
                mapped[rest.split("@")[0] + "/tcp"] = host
        specs[name] = {{"image": flag("--image", ""), "api_port": flag("--api-port", "6550"), "ports": mapped}}
        save("k3d-specs.json", specs)
        save("k3d.json", clusters + [name])
        print(f"INFO[0012] Cluster '{{name}}' created successfully!")
    elif argv[:2] == ["cluster", "delete"]:
        save("k3d.json", [c for c in clusters if c != argv[2]])
        print(f"INFO[0003] Successfully deleted cluster {{argv[2]}}!")
    elif argv[:2] == ["image", "import"]:
        import tarfile
        cluster = flag("--cluster") or flag("-c") or "k3s-default"
        if cluster not in clusters:
            sys.stderr.write(f"FATA[0000] Failed to get cluster {{cluster}}\n"); sys.exit(1)
        images = load("k3d-images.json", {{}})
        for path in [a for a in argv[2:] if not a.startswith("-") and a != cluster]:
            try:
                with tarfile.open(path) as archive:
                    tags = json.load(archive.extractfile("manifest.json"))[0]["RepoTags"]
            except (OSError, tarfile.TarError, KeyError, TypeError) as error:
                sys.stderr.write(f"ERRO[0000] failed to import {{path}}: {{error}}\n"); sys.exit(1)
            images[cluster] = sorted(set(images.get(cluster, [])) | set(tags))
        save("k3d-images.json", images)
        print(f"INFO[0003] Successfully imported image(s) into cluster '{{cluster}}'")
    elif argv[:2] == ["kubeconfig", "get"]:
        if argv[2] not in clusters:
            sys.stderr.write(f"FATA[0000] cluster '{{argv[2]}}' not found\n")
            sys.exit(1)
        server = config.get("kubeconfig_server", "https://0.0.0.0:6550")
        print("apiVersion: v1\nkind: Config\nclusters:\n- name: k3d-" + argv[2] +
              "\n  cluster: {{server: '" + server + "'}}\ncontexts:\n- name: k3d-" + argv[2] +
              "\n  context: {{cluster: k3d-" + argv[2] + ", user: admin@k3d-" + argv[2] + "}}\ncurrent-context: k3d-" +
              argv[2] + "\nusers:\n- name: admin@k3d-" + argv[2] + "\n  user: {{token: fake}}\n")
    else:
        sys.stderr.write("fake k3d: unsupported " + words + "\n"); sys.exit(2)
    sys.exit(0)
elif TOOL == "helm":
    releases = load("helm.json", {{}})
    if argv[:1] == ["version"]:
        print(config.get("helm_version", "v3.16.2+g13654a5"))
    elif argv[:1] == ["upgrade"] and "--install" in argv:
        valued = {{"--version", "--namespace", "-n", "--values", "-f", "--repo", "--kubeconfig", "--kube-context",
                  "--timeout", "--labels"}}
        positional, skip = [], False
        for arg in argv[1:]:
            if skip:
                skip = False
            elif arg in valued:
                skip = True
            elif not arg.startswith("-"):
                positional.append(arg)
        name, chart = positional[0], positional[1]
        namespace = flag("--namespace", "default")
        values = flag("--values") or flag("-f")
        version = flag("--version", "")
        if chart.endswith(".tgz"):  # a package file: like helm, read its name and version from Chart.yaml
            import tarfile
            try:
                with tarfile.open(chart) as archive:
                    member = next(m for m in archive.getmembers() if m.name.count("/") == 1
                                  and m.name.endswith("/Chart.yaml"))
                    text = archive.extractfile(member).read().decode()
            except (OSError, tarfile.TarError, StopIteration) as error:
                sys.stderr.write(f"Error: {{chart}}: {{error}}\n"); sys.exit(1)
            meta = dict(line.split(":", 1) for line in text.splitlines() if line[:1].isalpha() and ":" in line)
            chart, version = meta["name"].strip().strip('"'), meta["version"].strip().strip('"')
        releases[f"{{namespace}}/{{name}}"] = {{
            "name": name, "namespace": namespace, "chart": chart, "version": version,
            "package": positional[1] if positional[1].endswith(".tgz") else None,
            "repo": flag("--repo"), "values": Path(values).read_text() if values else "",
            "revision": releases.get(f"{{namespace}}/{{name}}", {{}}).get("revision", 0) + 1,
            "labels": {{**releases.get(f"{{namespace}}/{{name}}", {{}}).get("labels", {{}}),
                       **dict(kv.split("=", 1) for kv in (flag("--labels") or "").split(",") if "=" in kv)}},
        }}
        save("helm.json", releases)
        print(f'Release "{{name}}" has been upgraded. Happy Helming!')
    elif argv[:1] in (["list"], ["ls"]):
        namespace = flag("--namespace") or flag("-n")
        rows = [{{"name": r["name"], "namespace": r["namespace"], "revision": str(r["revision"]), "status": "deployed",
                 "chart": r["chart"].rstrip("/").split("/")[-1] + "-" + r["version"],
                 "app_version": r["version"]}}
                for r in releases.values() if namespace in (None, r["namespace"]) or "-A" in argv]
        selector = flag("--selector") or flag("-l")
        if selector:
            wanted = dict(kv.split("=", 1) for kv in selector.split(","))
            labelled = {{(r["namespace"], r["name"]) for r in releases.values()
                        if all(r.get("labels", {{}}).get(k) == v for k, v in wanted.items())}}
            rows = [row for row in rows if (row["namespace"], row["name"]) in labelled]
        print(json.dumps(rows))
    elif argv[:1] == ["uninstall"]:
        namespace = flag("--namespace") or flag("-n") or "default"
        key = f"{{namespace}}/{{argv[1]}}"
        if key not in releases:
            sys.stderr.write(f"Error: uninstall: Release not loaded: {{argv[1]}}: release: not found\n"); sys.exit(1)
        del releases[key]
        save("helm.json", releases)
        print(f'release "{{argv[1]}}" uninstalled')
    elif argv[:1] == ["status"]:
        namespace = flag("--namespace") or flag("-n") or "default"
        key = f"{{namespace}}/{{argv[1]}}"
        if key not in releases:
            sys.stderr.write("Error: release: not found\n"); sys.exit(1)
        print(f"NAME: {{argv[1]}}\nNAMESPACE: {{namespace}}\nSTATUS: deployed\nREVISION: {{releases[key]['revision']}}")
    else:
        sys.stderr.write("fake helm: unsupported " + words + "\n"); sys.exit(2)
    sys.exit(0)
sys.stderr.write("fake " + TOOL + ": unsupported " + words + "\n")
sys.exit(2)
"""

HEALTHY_DOCKER = {
    "ServerVersion": "27.3.1",
    "OperatingSystem": "Docker Desktop",
    "NCPU": 8,
    "MemTotal": 16 * 1024**3,
    "Architecture": "x86_64",
}


@dataclass
class FakeTools:
    """A directory of fake executables and their shared state."""

    bin_dir: Path
    state_dir: Path

    @classmethod
    def install(
        cls, root: Path, tools: tuple[str, ...] = ("k3d", "helm", "docker", "kubectl"), **config: Any
    ) -> FakeTools:
        bin_dir, state_dir = root / "bin", root / "state"
        bin_dir.mkdir(parents=True, exist_ok=True)
        state_dir.mkdir(parents=True, exist_ok=True)
        fake = cls(bin_dir, state_dir)
        fake.configure(**{"docker_info": HEALTHY_DOCKER, **config})
        for tool in tools:
            path = bin_dir / tool
            path.write_text(_SCRIPT.format(python=sys.executable, tool=tool, state=str(state_dir)))
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return fake

    def configure(self, **config: Any) -> None:
        path = self.state_dir / "config.json"
        current = json.loads(path.read_text()) if path.exists() else {}
        current.update(config)
        path.write_text(json.dumps(current))

    def env(self, base: dict[str, str] | None = None, only_fakes: bool = True) -> dict[str, str]:
        """An environment whose PATH starts with the fakes (and, by default, holds nothing else
        that could answer for k3d, helm, docker or kubectl)."""
        env = dict(base if base is not None else os.environ)
        python_dir = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join(
            [str(self.bin_dir), python_dir] if only_fakes else [str(self.bin_dir), env.get("PATH", "")]
        )
        return env

    def calls(self, tool: str | None = None) -> list[list[str]]:
        path = self.state_dir / "calls.jsonl"
        if not path.exists():
            return []
        rows = [json.loads(line) for line in path.read_text().splitlines() if line]
        return [[row["tool"], *row["argv"]] for row in rows if tool in (None, row["tool"])]

    def helm_releases(self) -> dict[str, dict[str, Any]]:
        path = self.state_dir / "helm.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def k3d_clusters(self) -> list[str]:
        path = self.state_dir / "k3d.json"
        return json.loads(path.read_text()) if path.exists() else []

    def k3d_images(self, cluster: str) -> list[str]:
        """Images `k3d image import` put into a cluster's nodes (read from the archives' manifest.json)."""
        path = self.state_dir / "k3d-images.json"
        images: dict[str, list[str]] = json.loads(path.read_text()) if path.exists() else {}
        return images.get(cluster, [])
