"""Labs that cannot work are refused when loaded (exit 2), naming the field: unreadable files, names that
clash or break Kubernetes' rules once igwlab adds its suffixes, host ports that clash, bad versions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from igwlab.errors import ExitCode, IgwlabError, LabFileError, LabNotFoundError, UsageError
from igwlab.labs import MAX_LAB_FILE_BYTES, host_port_clashes, load_lab, load_lab_file, with_cluster_name
from igwlab.render import render_lab
from igwlab.selection import LabSelection, resolve_lab


def _data(name: str = "agentgateway-fake-llm") -> dict[str, Any]:
    return load_lab(name).model_dump(exclude_defaults=True)


def _write(tmp_path: Path, data: object, name: str = "lab.yaml") -> Path:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xff\xfe\x00n\x00a", "not UTF-8 text: byte 0xff at offset 0"),
        (b"name: caf\xe9\n", "not UTF-8 text: byte 0xe9 at offset 9"),
        (b"\x00\x01\x02binary", "not valid YAML"),
        (b"", "the file must hold a mapping"),
        (b"- a\n- b\n", "the file must hold a mapping"),
        (b"[" * 5000, "not valid YAML"),
        (b"a: &a [*a, *a]\nb: [&b x, *b]\n", "unknown field"),
        (b"name: !!python/object:os.system x\n", "not valid YAML"),
        ("\ufeffname: x\ntitle: y\n".encode(), "provider: required field is missing"),
    ],
)
def test_a_file_that_is_no_lab_is_refused_with_the_reason(tmp_path: Path, content: bytes, expected: str) -> None:
    with pytest.raises(LabFileError) as caught:
        load_lab_file(_write(tmp_path, content))
    assert expected in caught.value.what and caught.value.exit_code == ExitCode.USAGE


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(MAX_LAB_FILE_BYTES + 1)
    with pytest.raises(LabFileError, match="a lab file is a few KB"):
        load_lab_file(path)


@pytest.mark.parametrize("reference", ["", "   "])
def test_an_empty_lab_reference_is_refused(reference: str) -> None:
    with pytest.raises(LabNotFoundError, match="--lab is empty"):
        load_lab(reference)


def test_a_directory_is_not_a_lab_file(tmp_path: Path) -> None:
    with pytest.raises(LabNotFoundError, match="is a directory"):
        load_lab(str(tmp_path))


def test_labs_show_names_its_argument_not_the_lab_flag() -> None:
    with pytest.raises(LabNotFoundError) as caught:
        resolve_lab(LabSelection(lab="no-such-lab", lab_flag="LAB"))
    assert "LAB takes" in (caught.value.why or "") and "--lab" not in (caught.value.why or "")


Mutation = Callable[[dict[str, Any]], object]


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        # A workload named like a pool's endpoint picker: same Deployment, and the pool would select the picker.
        (lambda d: d["workload"].update(name="fakellm-pool-epp"), "both make Deployment igwlab/fakellm-pool-epp"),
        (lambda d: d["pool"].update(name="p" * 41), "pool.name: 'ppp"),
        (lambda d: d["pool"].update(name="1pool"), "must start with a letter"),
        (lambda d: d["gateway"].update(name="g" * 58), "gateway.name"),
        (lambda d: d.update(cluster={"name": "c" * 33}), "k3d takes cluster names of at most 32"),
        (lambda d: d.update(namespace="kube-system"), "namespace: 'kube-system' is not allowed"),
        (lambda d: d.update(namespace="default"), "namespace: 'default' is not allowed"),
        (lambda d: d.update(cluster={"api_port": 8080}), "takes host port 8080, which cluster.api_port"),
        (
            lambda d: d["gateway"].update(
                listeners=[{"name": "a", "port": 80}, {"name": "b", "port": 81, "host_port": 8080}]
            ),
            "listener host_ports must be unique",
        ),
        (lambda d: d.update(gie_version="banana"), "gie_version: 'banana' must be a release version"),
        (lambda d: d.update(provider=""), "provider: is empty"),
        (lambda d: d["workload"].update(name=""), "workload.name: is empty"),
        (lambda d: d["workload"].update(name="w" * 64), "workload.name: is 64 characters; at most 63"),
        # the same name twice where each must be one of a kind
        (
            lambda d: d["workload"].update(loras=[{"name": "lora-a"}, {"name": "lora-b"}, {"name": "lora-a"}]),
            "workload: loras: each LoRA adapter name must be unique; given more than once: ['lora-a']",
        ),
        (
            lambda d: d["workload"].update(loras=[{"name": d["workload"]["served_model"]}]),
            "is served_model already",
        ),
        (
            lambda d: (
                d["workload"].update(loras=[{"name": "lora-a"}]),
                d["models"][0].update(targets=[{"name": "lora-a", "weight": 1}, {"name": "lora-a", "weight": 2}]),
            ),
            "models.0: targets: model",
        ),
        (lambda d: d.update(addons=["observability", "observability"]), "addons must be unique"),
        # booleans, strings and fractions where a whole number is meant (and the other way round)
        (
            lambda d: (
                d["workload"].update(loras=[{"name": "lora-a"}]),
                d["models"][0].update(targets=[{"name": "lora-a", "weight": True}]),
            ),
            "models.0.targets.0.weight: true is not a whole number",
        ),
        (lambda d: d["workload"].update(replicas=True), "workload.replicas: true is not a whole number"),
        (lambda d: d["workload"].update(replicas="3"), 'workload.replicas: "3" is not a whole number'),
        (lambda d: d["workload"].update(replicas=2.5), "workload.replicas: 2.5 is not a whole number"),
        (lambda d: d.update(cluster={"api_port": False}), "cluster.api_port: false is not a whole number"),
        (lambda d: d["workload"].update(latency={"time_to_first_token_ms": True}), "time_to_first_token_ms: true"),
        (lambda d: d["workload"].update(kv_cache=1), "workload.kv_cache: 1 is not true or false"),
        (
            lambda d: d["pool"].update(epp={"scheduling": {"scorers": {"queue": True}}}),
            "pool.epp.scheduling.scorers.queue: true is not a whole number",
        ),
        (
            lambda d: d["pool"].update(
                epp={"scheduling": {"scorers": {"queue": 1}, "saturation": {"kv_cache_util": True}}}
            ),
            "kv_cache_util: true is not a number",
        ),
    ],
)
def test_a_lab_that_cannot_work_is_refused_naming_the_field(tmp_path: Path, mutation: Mutation, expected: str) -> None:
    data = _data()
    data.setdefault("gateway", {"listeners": [{"name": "http", "port": 80}]})
    mutation(data)
    with pytest.raises(LabFileError) as caught:
        resolve_lab(LabSelection(lab=str(_write(tmp_path, data))))
    assert expected in caught.value.what, caught.value.what
    assert caught.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(
    ("preset", "mutation", "addons", "expected"),
    [
        # kgateway and agentgateway name the proxy Deployment after the Gateway, in the lab's namespace.
        ("kgateway-fake-llm", lambda d: d["workload"].update(name="inference-gateway"), (), "the kgateway proxy"),
        ("istio-fake-llm", lambda d: d["workload"].update(name="inference-gateway-istio"), (), "the istio proxy"),
        ("agentgateway-fake-llm", lambda d: d["pool"].update(name="igwlab-grafana"), ("observability",), "add-on"),
        ("agentgateway-fake-llm", lambda d: d["workload"].update(name="igwlab-grafana"), ("observability",), "add-on"),
        ("multi-model", lambda d: d["pool"].update(name="body-based-router"), (), "body-based routing"),
    ],
)
def test_names_that_clash_with_what_the_stack_creates_are_refused(
    tmp_path: Path, preset: str, mutation: Mutation, addons: tuple[str, ...], expected: str
) -> None:
    data = _data(preset)
    mutation(data)
    with pytest.raises(LabFileError) as caught:
        resolve_lab(LabSelection(lab=str(_write(tmp_path, data)), addons=addons))
    assert expected in caught.value.what, caught.value.what


def test_two_rendered_objects_with_one_name_are_refused(tmp_path: Path) -> None:
    """The render-time net: the LiteLLM add-on's Deployment against a workload of the same name."""
    data = _data()
    data["workload"]["name"] = "igwlab-litellm"
    resolved = resolve_lab(LabSelection(lab=str(_write(tmp_path, data)), addons=("litellm",)))
    with pytest.raises(IgwlabError, match="Deployment igwlab/igwlab-litellm comes from") as caught:
        render_lab(resolved)
    assert caught.value.exit_code == ExitCode.USAGE


def test_every_preset_renders_without_clashes_with_every_add_on() -> None:
    from igwlab.labs import preset_names

    for name in preset_names():
        addons = (
            ("observability",)
            if name in ("envoy-gateway-fake-llm", "envoy-gateway-vllm-cpu")
            else (
                "observability",
                "litellm",
            )
        )
        render_lab(resolve_lab(LabSelection(lab=name, addons=addons)))


def test_the_cluster_flag_is_checked_like_the_lab_field() -> None:
    lab = load_lab("kgateway-fake-llm")
    assert with_cluster_name(lab, "my-lab").cluster.name == "my-lab"
    for bad, expected in (("Bad_Name", "must be a Kubernetes name"), ("", "is empty"), ("c" * 33, "at most 32")):
        with pytest.raises(UsageError, match=expected) as caught:
            with_cluster_name(lab, bad)
        assert caught.value.what.startswith("--cluster")


def test_host_port_clashes_names_both_fields() -> None:
    lab = load_lab("kgateway-fake-llm")
    assert host_port_clashes(lab) == []
    clashing = lab.model_copy(update={"cluster": lab.cluster.model_copy(update={"api_port": 8081})})
    (problem,) = host_port_clashes(clashing)
    assert "gateway.listeners.1" in problem and "8081" in problem and "cluster.api_port" in problem


def test_a_lab_files_own_gie_version_gets_a_hint_about_the_file(tmp_path: Path) -> None:
    data = _data("kgateway-fake-llm")
    data["gie_version"] = "v1.5.0"
    path = _write(tmp_path, data)
    with pytest.raises(UsageError) as caught:
        resolve_lab(LabSelection(lab=str(path)))
    assert "--gie-version" not in (caught.value.fix or "")
    assert f"gie_version in {path}" in (caught.value.fix or "") and "v0.5.1" in (caught.value.fix or "")


@pytest.mark.parametrize("version", ["banana", "1.5", "", "v1.5.0.1", "latest"])
def test_a_gie_version_that_is_no_version_is_refused_as_such(version: str) -> None:
    with pytest.raises(UsageError) as caught:
        resolve_lab(LabSelection(provider="kgateway", gie_version=version))
    assert "is not a release version such as v1.5.0" in caught.value.what
    assert "vbanana" not in caught.value.what and "v0.5.1" in (caught.value.fix or "")


def test_an_empty_provider_is_refused_not_defaulted() -> None:
    with pytest.raises(UsageError, match="--provider is empty"):
        resolve_lab(LabSelection(provider=""))
