"""Shared test helpers: run the real CLI in-process, render presets."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml
from typer.testing import CliRunner, Result

from igwlab.cli.app import app
from igwlab.render import Rendered, render_lab
from igwlab.selection import LabSelection, resolve_lab
from igwlab.sim.process import RunningSim


def invoke(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(app, list(args), catch_exceptions=False)


def envelope(result: Result, command: str | None = None) -> dict[str, Any]:
    """The JSON envelope a `--json` run printed, checked against its exit code (igwlab/result.py)."""
    parsed = json.loads(result.stdout)
    assert parsed["igwlab_result_version"] == 1, parsed
    assert parsed["ok"] is (result.exit_code == 0), (result.exit_code, parsed)
    if parsed["ok"]:
        assert parsed["error"] is None
    else:
        assert parsed["error"]["exit_code"] == result.exit_code and parsed["error"]["message"], parsed
    if command is not None:
        assert parsed["command"] == command, parsed
    return dict(parsed)


def json_data(result: Result, command: str | None = None) -> Any:
    """The `data` of the envelope a `--json` run printed."""
    return envelope(result, command)["data"]


def render(**selection: Any) -> Rendered:
    return render_lab(resolve_lab(LabSelection(**selection)))


def find(rendered: Rendered, kind: str) -> list[dict[str, Any]]:
    return [obj.manifest for obj in rendered.objects if obj.kind == kind]


@contextmanager
def requests_in_flight(sim: RunningSim, model: str, count: int, timeout_s: float = 60) -> Iterator[None]:
    """`count` completions sent at once from threads; the block runs once the simulator holds every one
    of them (running or waiting in its queue) — an event, not a guess at how long that takes."""
    body = {"model": model, "prompt": "p", "max_tokens": 1}
    threads = [
        threading.Thread(target=httpx.post, args=(f"{sim.url}/v1/completions",), kwargs={"json": body, "timeout": 60})
        for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: sim.state.running + sim.state.waiting >= count, timeout_s, f"{count} requests in flight")
        yield
    finally:
        for thread in threads:
            thread.join()


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Return as soon as `condition()` holds; fail naming `what` after `timeout_s` (a bound, not a guess)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s:.0f}s"
        time.sleep(0.005)


def write_kubeconfig(path: Path, context: str, server: str = "https://127.0.0.1:9") -> Path:
    """A kubeconfig with one context (token user) pointing at `server`; nothing answers at the default."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
                "current-context": context,
            }
        )
    )
    return path
