"""Real binaries for the tests, built from the Go module proxy once and reused.

Each tool is a small Go module under `modules/<folder>/` (go.mod + go.sum with exact versions, and a
`tools.go` or the module's own main package): the proxy refuses `go install pkg@version` for modules
whose version list it does not serve, and `k8s.io/kubernetes` needs `replace` lines for its staging
modules, so a go.mod of our own is the one way that works for all of them.

Builds land in the cache `$IGWLAB_TESTBIN` (default `~/.cache/igwlab/testbin`), one folder per build,
`<name>-<version>/`, holding the binaries, `SHA256SUMS` and `RECIPE` (a digest of go.mod, go.sum,
packages and link flags). A folder is reused when its recipe matches and every checksum holds;
otherwise it is rebuilt. A file lock lets parallel test sessions share one build.

    binary("kube-apiserver")        -> Path of the binary, building its tool first when absent
    binary("epp", "v0.5.1")         -> a tool with several versions: name the version
    ensure(TOOLS["helm"])           -> the tool's folder

Command line (what CI runs before the tests): `python tests/testbin build [NAME ...]`,
`python tests/testbin list`, `python tests/testbin path BINARY [VERSION]`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

MODULES = Path(__file__).resolve().parent / "modules"

K8S_VERSION = "v1.34.4"
_K8S_LDFLAGS = tuple(
    f"-X k8s.io/{pkg}.{key}={value}"
    for pkg in ("component-base/version", "client-go/pkg/version")
    for key, value in (("gitVersion", K8S_VERSION), ("gitMajor", "1"), ("gitMinor", "34"), ("gitTreeState", "clean"))
)


@dataclass(frozen=True)
class Tool:
    """One build: `packages` of the Go module in `modules/<folder>`, linked with `ldflags`."""

    name: str
    version: str
    folder: str
    packages: tuple[str, ...]
    binaries: tuple[str, ...]
    ldflags: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    minutes_cold: int = 5  # what a cold build took on 2 cores, for the progress message

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"

    def recipe(self) -> str:
        digest = hashlib.sha256()
        module = MODULES / self.folder
        for path in sorted(module.iterdir()):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        digest.update(json.dumps([self.packages, self.ldflags, self.env, self.binaries]).encode())
        return digest.hexdigest()


TOOLS: dict[str, Tool] = {
    tool.key: tool
    for tool in (
        Tool(
            "kubernetes",
            K8S_VERSION,
            "kubernetes",
            tuple(
                f"k8s.io/kubernetes/cmd/{cmd}"
                for cmd in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
            ),
            ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"),
            _K8S_LDFLAGS,
            minutes_cold=15,
        ),
        Tool("etcd", "v3.6.16", "etcd", ("go.etcd.io/etcd/server/v3",), ("etcd",), minutes_cold=3),
        Tool(
            "kwok",
            "v0.7.0",
            "kwok",
            ("sigs.k8s.io/kwok/cmd/kwok", "sigs.k8s.io/kwok/cmd/kwokctl"),
            ("kwok", "kwokctl"),
            ("-X sigs.k8s.io/kwok/pkg/consts.Version=0.7.0",),
            minutes_cold=5,
        ),
        Tool(
            "helm",
            "v3.19.5",
            "helm",
            ("helm.sh/helm/v3/cmd/helm",),
            ("helm",),
            (
                "-X helm.sh/helm/v3/internal/version.version=v3.19.5",
                "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
                "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1",
                "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=34",
                "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1",
                "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=34",
            ),
            minutes_cold=4,
        ),
        Tool(
            "gie",
            "v1.5.0",
            "gie-v1.5.0",
            (
                "sigs.k8s.io/gateway-api-inference-extension/cmd/epp",
                "sigs.k8s.io/gateway-api-inference-extension/cmd/bbr",
            ),
            ("epp", "bbr"),
            minutes_cold=10,
        ),
        Tool(
            "gie",
            "v0.5.1",
            "gie-v0.5.1",
            ("sigs.k8s.io/gateway-api-inference-extension/cmd/epp",),
            ("epp",),
            minutes_cold=6,
        ),
        Tool(
            "llm-d-inference-sim",
            "v0.10.2",
            "llm-d-inference-sim-v0.10.2",
            ("github.com/llm-d/llm-d-inference-sim/cmd/llm-d-inference-sim",),
            ("llm-d-inference-sim",),
            minutes_cold=5,
        ),
    )
}


class BuildError(RuntimeError):
    """A tool could not be built: the message carries Go's output."""


def cache_root() -> Path:
    configured = os.environ.get("IGWLAB_TESTBIN")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "igwlab" / "testbin"


def tools_with_binary(binary_name: str) -> list[Tool]:
    return [tool for tool in TOOLS.values() if binary_name in tool.binaries]


def find_tool(binary_name: str, version: str | None = None) -> Tool:
    candidates = [t for t in tools_with_binary(binary_name) if version is None or t.version == version]
    if not candidates:
        raise KeyError(f"no test tool builds {binary_name!r}" + (f" at {version}" if version else ""))
    if len(candidates) > 1:
        versions = ", ".join(t.version for t in candidates)
        raise KeyError(f"{binary_name!r} is built at several versions ({versions}): name one")
    return candidates[0]


def binary(binary_name: str, version: str | None = None, *, build: bool = True) -> Path:
    """The path of a built binary; builds its tool first when the cache lacks it (unless `build=False`,
    then FileNotFoundError)."""
    tool = find_tool(binary_name, version)
    folder = ensure(tool) if build else cached(tool)
    if folder is None:
        raise FileNotFoundError(f"{tool.key} is not built; run: python tests/testbin build {tool.key}")
    return folder / binary_name


def cached(tool: Tool) -> Path | None:
    """The tool's folder when it is built from today's recipe and every checksum holds, else None."""
    folder = cache_root() / tool.key
    try:
        if (folder / "RECIPE").read_text().strip() != tool.recipe():
            return None
        sums = (folder / "SHA256SUMS").read_text().splitlines()
    except OSError:
        return None
    expected = dict(reversed(line.split("  ", 1)) for line in sums if line.strip())
    if set(expected) != set(tool.binaries):
        return None
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file() or _sha256(path) != digest:
            return None
    return folder


def ensure(tool: Tool, *, log: bool = True) -> Path:
    """Build `tool` into the cache unless a valid build is there; returns its folder."""
    found = cached(tool)
    if found is not None:
        return found
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f".{tool.key}.lock"):
        found = cached(tool)  # another session may have built it while we waited
        if found is not None:
            return found
        return _build(tool, root, log=log)


def _build(tool: Tool, root: Path, *, log: bool) -> Path:
    go = shutil.which("go")
    if go is None:
        raise BuildError(f"building {tool.key} needs the Go toolchain (`go`) on PATH")
    if log:
        print(f"testbin: building {tool.key} (about {tool.minutes_cold} min cold on 2 cores)", file=sys.stderr)
    started = time.monotonic()
    staging = Path(tempfile.mkdtemp(prefix=f".{tool.key}-", dir=root))
    try:
        env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly -buildvcs=false", **tool.env}
        argv = [go, "build", "-trimpath", "-ldflags", " ".join(("-s", "-w", *tool.ldflags))]
        argv += ["-o", str(staging) + os.sep, *tool.packages]
        result = subprocess.run(
            argv, cwd=MODULES / tool.folder, env=env, capture_output=True, text=True, timeout=3600, check=False
        )
        if result.returncode != 0:
            raise BuildError(f"go build of {tool.key} failed:\n{result.stdout}{result.stderr}")
        # A module's own main package builds under the module's last path element; name it as listed.
        for package, name in zip(tool.packages, tool.binaries, strict=False):
            built = staging / _go_binary_name(package)
            if built.name != name and built.is_file():
                built.rename(staging / name)
        lines = [f"{_sha256(staging / name)}  {name}" for name in tool.binaries]
        (staging / "SHA256SUMS").write_text("\n".join(lines) + "\n")
        (staging / "RECIPE").write_text(tool.recipe() + "\n")
        final = root / tool.key
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    if log:
        print(f"testbin: built {tool.key} in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return root / tool.key


def _go_binary_name(package: str) -> str:
    """The file `go build -o DIR/` writes for a package: its last path element, skipping a /vN suffix."""
    parts = package.rstrip("/").split("/")
    return parts[-2] if len(parts) > 1 and re.fullmatch(r"v\d+", parts[-1]) else parts[-1]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
