"""Every endpoint picker gets the arguments and files its GIE version needs, checked against the real
charts with the real `helm` and against the real EPP binaries of each pinned version."""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testbin
import yaml
from charts import container, find, template
from helpers import render
from kwokcluster import KwokCluster

from igwlab.labs import preset_names
from igwlab.render import Rendered
from igwlab.render.epp import CONFIG_DIR, epp_args, epp_name
from igwlab.render.pools import scoped
from igwlab.selection import LabSelection, resolve_lab

UPSTREAM = Path(__file__).resolve().parent.parent.parent / "shared" / "upstream"
PRESETS = preset_names()
GIE_VERSIONS = sorted({resolve_lab(LabSelection(lab=lab)).stack.gie_version for lab in PRESETS})


def _epp_pods(rendered: Rendered, tmp_path: Path) -> list[tuple[list[str], dict[str, str], Any]]:
    """(args, files under CONFIG_DIR, resolved pool) of every EPP the lab starts, as the cluster would see it:
    from igwlab's manifests, or from `helm template` of the real inferencepool chart with igwlab's values."""
    resolved = rendered.resolved
    pods = []
    for backend in resolved.lab.backends():
        pool = scoped(resolved, backend)
        name = epp_name(pool)
        releases = rendered.releases_for(backend.step("pool"))
        objects = (
            template(releases[0], tmp_path)
            if releases
            else [o.manifest for o in rendered.objects_for(backend.step("pool"))]
        )
        epp = container(objects, name, "epp")
        spec = find(objects, "Deployment", name)[0]["spec"]["template"]["spec"]
        mount = next(m for m in epp.get("volumeMounts", []) if m["mountPath"] == CONFIG_DIR)
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        files = find(objects, "ConfigMap", volume["configMap"]["name"])[0]["data"]
        pods.append(([str(a) for a in epp["args"]], files, pool))
    return pods


def _config_path(args: list[str]) -> str:
    flag = next(a for a in args if a in ("-configFile", "--config-file"))
    return args[args.index(flag) + 1]


@pytest.mark.parametrize("lab", PRESETS)
def test_every_epp_starts_with_a_plugins_file_that_is_mounted(lab: str, tmp_path: Path) -> None:
    """The v0.5.1 EPP panics on a nil scheduler config without one (pkg/epp/scheduling/scheduler.go:40)."""
    for args, files, _ in _epp_pods(render(lab=lab), tmp_path):
        path = _config_path(args)
        assert path.startswith(f"{CONFIG_DIR}/") and path.removeprefix(f"{CONFIG_DIR}/") in files, (path, files)
        config = yaml.safe_load(files[path.removeprefix(f"{CONFIG_DIR}/")])
        assert config["kind"] == "EndpointPickerConfig" and config["schedulingProfiles"], config


@pytest.mark.parametrize("lab", PRESETS)
def test_the_argument_builder_is_what_the_epp_gets(lab: str, tmp_path: Path) -> None:
    """`epp_args` (which anything that starts a real EPP reuses) equals what the manifests or the real
    chart give the container."""
    for args, _, pool in _epp_pods(render(lab=lab), tmp_path):
        assert args == epp_args(pool)


def _help_flags(version: str) -> set[str]:
    try:
        binary = testbin.binary("epp", version)
    except testbin.BuildError as error:
        pytest.skip(f"the real EPP {version} cannot be built: {error}")
    result = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=60, check=False)
    text = result.stdout + result.stderr
    return set(re.findall(r"^\s+(?:-\w, )?(--?[A-Za-z][\w-]*)", text, re.MULTILINE))


@pytest.mark.parametrize("version", GIE_VERSIONS)
def test_every_epp_flag_exists_in_that_versions_real_binary(version: str, tmp_path: Path) -> None:
    known = _help_flags(version)
    assert known, "could not read the flag list from --help"
    go_flags = not any(flag.startswith("--") for flag in known)
    for lab in PRESETS:
        rendered = render(lab=lab)
        if rendered.resolved.stack.gie_version != version:
            continue
        for args, _, _ in _epp_pods(rendered, tmp_path):
            flags = {a.split("=", 1)[0] for a in args if a.startswith("-")}
            # Go's flag package (v0.5) takes -name and --name alike; pflag (v1.x) only --name.
            unknown = {f for f in flags if f"-{f.lstrip('-')}" not in known} if go_flags else flags - known
            assert not unknown, f"{lab}: EPP {version} has no flags {sorted(unknown)}"


@pytest.fixture(scope="module")
def kwok(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KwokCluster]:
    """A real API server (kwok cluster) with each pinned GIE version's CRDs: the EPP discovers its
    resources before it reads its config."""
    try:
        cluster = KwokCluster.create("igwlab-epp", tmp_path_factory.mktemp("kwok"), nodes=0)
    except testbin.BuildError as error:
        pytest.skip(f"the kwok cluster's binaries cannot be built: {error}")
    try:
        for version in GIE_VERSIONS:
            for crd in sorted((UPSTREAM / "gie" / version).glob("inference.networking*.yaml")):
                cluster.kubectl("apply", "--server-side", "-f", str(crd))
        cluster.kubectl("create", "namespace", "igwlab")
        yield cluster
    finally:
        cluster.delete()


def _start_real_epp(version: str, args: list[str], files: dict[str, str], kubeconfig: Path, tmp_path: Path) -> str:
    """Start the real EPP with igwlab's arguments (its plugins file from its ConfigMap) against a real
    API server; its output up to the point where it starts serving, or where it fails."""
    try:
        binary = testbin.binary("epp", version)
    except testbin.BuildError as error:
        pytest.skip(f"the real EPP {version} cannot be built: {error}")
    config_dir = tmp_path / "config"
    config_dir.mkdir(exist_ok=True)
    for name, text in files.items():
        (config_dir / name).write_text(text)
    local_args = [a.replace(f"{CONFIG_DIR}/", f"{config_dir}/") for a in args]
    # Free ports: the EPP binds its gRPC, health and metrics ports before it serves.
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "NAMESPACE": "igwlab"}
    process = subprocess.Popen(
        [str(binary), *local_args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines: list[str] = []
    reached = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "Controller manager starting" in line:
                reached.set()
        reached.set()  # the process ended

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reached.wait(timeout=120)
    process.kill()
    process.wait(timeout=30)
    reader.join(timeout=30)
    return "".join(lines)


@pytest.mark.parametrize("lab", ["kgateway-fake-llm", "agentgateway-fake-llm", "kv-cache-aware"])
def test_the_real_epp_starts_with_igwlabs_arguments_and_config(lab: str, tmp_path: Path, kwok: KwokCluster) -> None:
    """The real EPP of the lab's GIE version, started with what igwlab gives it, loads its plugins file and
    starts serving (the v0.5.1 EPP without -configFile panics on a nil scheduler config here)."""
    rendered = render(lab=lab)
    version = rendered.resolved.stack.gie_version
    args, files, _ = _epp_pods(rendered, tmp_path)[0]
    output = _start_real_epp(version, args, files, kwok.kubeconfig, tmp_path)
    assert "panic" not in output and "Controller manager starting" in output, output[-3000:]


def _flags_of(binary: Path) -> set[str]:
    result = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=60, check=False)
    return set(re.findall(r"^\s+(?:-\w, )?(--?[A-Za-z][\w-]*)", result.stdout + result.stderr, re.MULTILINE))


def test_every_body_based_router_flag_exists_in_the_real_binary(tmp_path: Path) -> None:
    rendered = render(lab="multi-model")
    bbr = rendered.releases_for("bbr")[0]
    args = [str(a) for a in container(template(bbr, tmp_path), "body-based-router", "bbr")["args"]]
    try:
        known = _flags_of(testbin.binary("bbr", rendered.resolved.stack.gie_version))
    except testbin.BuildError as error:
        pytest.skip(f"the real BBR cannot be built: {error}")
    flags = {a.split("=", 1)[0] for a in args if a.startswith("--")}
    assert flags and flags <= known, flags - known
