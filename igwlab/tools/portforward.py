"""A `kubectl port-forward` that outlives `igwlab up`: started detached, recorded, stopped by teardown.

Used on existing clusters whose Gateway address the host cannot reach (a LoadBalancer IP inside a
cloud VPC, a kind/Docker network on macOS).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from igwlab.errors import IgwlabError
from igwlab.tools.proc import INSTALL_HINTS, ToolMissingError


@dataclass(frozen=True)
class PortForward:
    pid: int
    local_port: int
    log: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def as_dict(self) -> dict[str, object]:
        return {"pid": self.pid, "local_port": self.local_port, "log": self.log}


def reachable(host: str, port: int, timeout_s: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def routable(host: str, port: int, timeout_s: float = 3.0) -> bool:
    """Whether this machine reaches `host` at all: a connection accepted or actively refused (the host
    answered; its proxy may still be starting) counts, a timeout or an unreachable network does not."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def free_local_port(preferred: int) -> int:
    """The preferred port when it is free, else one the system picks."""
    for candidate in (preferred, 0):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise IgwlabError("no free local port for the port-forward")


def start(
    argv: Sequence[str], local_port: int, log: Path, env: dict[str, str] | None = None, timeout_s: float = 20.0
) -> PortForward:
    executable = shutil.which(argv[0], path=(env or os.environ).get("PATH"))
    if executable is None:
        raise ToolMissingError(
            f"{argv[0]} is not installed (not found on PATH)",
            why="igwlab forwards a local port to the gateway with it",
            fix=INSTALL_HINTS.get(argv[0]),
        )
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        process = subprocess.Popen(
            [executable, *argv[1:]],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise IgwlabError(
                "the port-forward to the gateway stopped at once",
                why=log.read_text(errors="replace")[-500:] or "it printed nothing",
                fix="check the gateway's Service exists: `kubectl get svc -A`",
            )
        if reachable("127.0.0.1", local_port, timeout_s=0.5):
            return PortForward(process.pid, local_port, str(log))
        time.sleep(0.2)
    stop(process.pid)
    raise IgwlabError(
        f"the port-forward did not open 127.0.0.1:{local_port} within {timeout_s:.0f}s",
        why=log.read_text(errors="replace")[-500:] or "it printed nothing",
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop(pid: int) -> bool:
    if not alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        if not alive(pid):
            break
        time.sleep(0.1)
    return True
