"""The docs site: generated pages current, `mkdocs build --strict`, every `igwlab` command shown
parses with the real CLI, the e2e workflow lints, and pages render in headless Chromium."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from conftest import REPO

from igwlab.cli.app import app
from igwlab.labs import preset_names

IN_CI = os.environ.get("CI") == "true"


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_pages_are_current() -> None:
    stale = [
        str(path.relative_to(REPO))
        for path, text in _generator().pages().items()
        if not path.exists() or path.read_text() != text
    ]
    assert stale == [], "stale docs: run `python scripts/gen_docs.py` and commit"


def test_every_preset_has_a_page_in_the_nav_that_shows_its_render() -> None:
    nav = (REPO / "mkdocs.yml").read_text()
    for name in preset_names():
        assert f"labs/{name}.md" in nav
    page = (REPO / "docs" / "labs" / "kgateway-fake-llm.md").read_text()
    assert "kind: InferenceModel" in page and "targetModels" in page
    assert "k3d cluster create igwlab" in page and "helm upgrade --install kgateway oci://" in page


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_mkdocs_build_strict_passes(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "labs" / "kv-cache-aware" / "index.html").is_file()


def _documented_commands() -> Iterator[tuple[str, str]]:
    sources = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    for source in sources:
        in_block = False
        shell = False
        for line in source.read_text().splitlines():
            fence = line.strip()
            if fence.startswith("```"):
                in_block = not in_block
                shell = in_block and fence[3:].strip() in ("bash", "sh", "shell", "console")
                continue
            if not shell:
                continue
            for part in re.split(r"&&|;", line):
                part = part.split(" #", 1)[0].strip().rstrip("&").strip()
                if part.startswith("igwlab ") or part == "igwlab":
                    yield source.name, part


def _parse(root: Any, args: list[str]) -> None:
    """Parse like the CLI would, down to the leaf command, without running anything.

    Typer ships its own copy of click, so groups are recognised by shape, not by class."""
    command, info_name = root, "igwlab"
    parent = None
    while True:
        ctx = command.make_context(info_name, list(args), parent=parent, resilient_parsing=False)
        if getattr(command, "commands", None) is None:
            return
        remaining = [*ctx._protected_args, *ctx.args]
        if not remaining:
            return
        name, sub, args = command.resolve_command(ctx, remaining)
        assert sub is not None and name is not None
        command, info_name, parent = sub, name, ctx


def _parse_error(root: Any, args: list[str]) -> str | None:
    try:
        _parse(root, args)
    except Exception as error:  # typer's click raises its own UsageError types
        if hasattr(error, "format_message"):
            return str(error.format_message())
        raise
    return None


def test_every_igwlab_command_in_the_docs_parses() -> None:
    root = typer.main.get_command(app)
    commands = list(_documented_commands())
    assert len(commands) > 20
    failures = [
        f"{source}: `{line}`: {error}"
        for source, line in commands
        if (error := _parse_error(root, shlex.split(line)[1:])) is not None
    ]
    assert failures == []


def test_a_wrong_command_would_be_caught() -> None:
    root = typer.main.get_command(app)
    assert "No such option" in (_parse_error(root, ["up", "--no-such-flag"]) or "")
    assert "No such command" in (_parse_error(root, ["labs", "shw", "x"]) or "")
    assert _parse_error(root, ["labs", "show", "kv-cache-aware", "--json"]) is None


def _tool(name: str, extra: Path | None = None) -> str | None:
    found = shutil.which(name) or (str(extra / name) if extra and (extra / name).is_file() else None)
    if found is None and IN_CI:
        pytest.fail(f"{name} is missing in CI: .ci/run installs it")
    return found


def test_the_e2e_workflow_lints() -> None:
    actionlint = _tool("actionlint", Path.home() / "go" / "bin")
    if actionlint is None:
        pytest.skip("actionlint not installed (.ci/run installs it: go install github.com/rhysd/actionlint/...)")
    workflow = REPO / ".github" / "workflows" / "e2e.yml"
    result = subprocess.run([actionlint, str(workflow)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    text = workflow.read_text()
    for command in ("igwlab up", "igwlab verify --wait 120 --json", "igwlab diagnose", "igwlab teardown --yes"):
        assert command in text


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("/", ["md-nav", "Quick start", "Serve these pages locally", "highlight"]),
        ("/labs/kgateway-fake-llm/", ["md-nav", "highlight", "kind</span>", "InferenceModel", "What igwlab up does"]),
    ],
)
def test_pages_render_in_headless_chromium(served: str, page: str, expected: list[str], tmp_path: Path) -> None:
    chromium = _tool("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000"]
    dom = subprocess.run(
        [*command, "--dump-dom", served + page], capture_output=True, text=True, timeout=120, check=False
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    for text in expected:
        assert text in dom.stdout, f"{text!r} not in the rendered page {page}"
    shot = tmp_path / "page.png"
    subprocess.run(
        [*command, "--window-size=1280,1600", f"--screenshot={shot}", served + page],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.is_file() and shot.stat().st_size > 20_000, "the screenshot is missing or blank"


def test_the_readme_lists_every_stable_error_code() -> None:
    """Scripts branch on `error.code`: every code an igwlab error can carry is in the README's list."""
    import igwlab.mirror  # noqa: F401 - defines error classes of its own
    from igwlab.errors import INTERNAL_ERROR_CODE, IgwlabError

    def every(cls: type[IgwlabError]) -> list[type[IgwlabError]]:
        return [cls, *(sub for direct in cls.__subclasses__() for sub in every(direct))]

    codes = {cls.code for cls in every(IgwlabError)} | {INTERNAL_ERROR_CODE}
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    listed = readme[readme.index("`error.code` is a stable word") :][:1200]
    assert not {code for code in codes if f"`{code}`" not in listed}


def test_every_install_command_in_the_docs_uses_a_virtual_environment_or_pipx() -> None:
    """PEP 668: a system Python refuses `pip install`; every shown install goes into a venv (or pipx)."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    bare = []
    for page in pages:
        for block in re.findall(r"```(?:bash|sh|console)\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
            for line in block.splitlines():
                for command in line.split("&&"):
                    in_venv = re.search(r"\.venv[^ ]*/bin/pip|pipx", command) or (
                        ". .venv/bin/activate" in line.split(command)[0]
                    )
                    if "pip install" in command and not in_venv:
                        bare.append(f"{page.relative_to(REPO)}: {line.strip()}")
    assert not bare
