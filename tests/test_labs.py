from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from igwlab.errors import LabFileError, LabNotFoundError, UnsupportedCombinationError, UsageError
from igwlab.labs import load_lab, load_lab_file, preset_names
from igwlab.selection import LabSelection, resolve_lab


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def _preset_data(name: str = "agentgateway-fake-llm") -> dict:
    return load_lab(name).model_dump(exclude_defaults=True)


def test_required_presets_exist() -> None:
    required = {"kgateway-fake-llm", "envoy-gateway-vllm-cpu", "agentgateway-vllm-cpu", "kv-cache-aware"}
    required |= {f"{p}-fake-llm" for p in ("agentgateway", "envoy-gateway", "istio", "nginx")}
    assert required <= set(preset_names())


def test_kgateway_preset_matches_the_guide() -> None:
    lab = load_lab("kgateway-fake-llm")
    assert lab.pool.name == "fakellm-pool"
    assert [(li.name, li.port) for li in lab.gateway.listeners] == [("http", 80), ("llm-gw", 8081)]
    assert lab.route.listener == "llm-gw"
    model = lab.models[0]
    assert (model.name, model.criticality) == ("fake-llm", "Critical")
    weights = {t.name: t.weight for t in model.targets}
    assert set(weights) == {"fake-llm-lora-a", "fake-llm-lora-b"} and len(set(weights.values())) == 2


def test_no_flags_means_agentgateway_fake_llm_and_a_provider_means_its_preset() -> None:
    assert resolve_lab(LabSelection()).lab.name == "agentgateway-fake-llm"
    assert resolve_lab(LabSelection(provider="istio")).lab.name == "istio-fake-llm"


def test_a_lab_file_copied_from_a_preset_and_changed_is_used(tmp_path: Path) -> None:
    data = _preset_data()
    data["models"][0]["targets"][0]["weight"] = 5
    resolved = resolve_lab(LabSelection(lab=str(_write(tmp_path, data))))
    assert resolved.lab.models[0].targets[0].weight == 5


def test_workload_override_keeps_model_names_and_fits_vllm_on_a_laptop() -> None:
    resolved = resolve_lab(LabSelection(lab="kgateway-fake-llm", workload="vllm-cpu"))
    assert resolved.lab.workload.kind == "vllm-cpu"
    assert resolved.lab.workload.served_names() == ["fake-llm", "fake-llm-lora-a", "fake-llm-lora-b"]
    assert resolved.lab.workload.replicas == 1
    assert any("workload" in o for o in resolved.overrides)


def test_provider_conflicting_with_the_lab_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="is for provider 'kgateway'"):
        resolve_lab(LabSelection(lab="kgateway-fake-llm", provider="istio"))


def test_scheduling_profile_on_the_alpha_era_is_refused(tmp_path: Path) -> None:
    data = _preset_data("kv-cache-aware")
    data["provider"] = "kgateway"
    data["gie_version"] = "v0.5.1"
    data.pop("objectives")  # refused too at v0.5.1 (see below); this test is about the profile
    with pytest.raises(UnsupportedCombinationError, match="scheduling profile"):
        resolve_lab(LabSelection(lab=str(_write(tmp_path, data))))


def test_objectives_picked_by_header_are_refused_before_gie_v1(tmp_path: Path) -> None:
    data = _preset_data("kgateway-fake-llm")
    data["objectives"] = [{"name": "sheddable", "priority": -1}]
    with pytest.raises(UnsupportedCombinationError, match="objectives") as caught:
        resolve_lab(LabSelection(lab=str(_write(tmp_path, data))))
    assert "criticality: Sheddable" in (caught.value.fix or "")


def test_an_objective_named_like_a_model_object_is_refused(tmp_path: Path) -> None:
    data = _preset_data("kv-cache-aware")
    data["objectives"] = [{"name": "fake-llm", "priority": -1}]
    with pytest.raises(LabFileError, match="model object names must be unique"):
        load_lab_file(_write(tmp_path, data))


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda d: d.pop("provider"), "provider: required field is missing"),
        (lambda d: d["workload"].update(replicaz=2), "workload.replicaz: unknown field"),
        (lambda d: d["pool"].update(name="Fake_Pool"), "pool.name: 'Fake_Pool' must be a Kubernetes name"),
        (lambda d: d["models"][0]["targets"].append({"name": "nope", "weight": 1}), "targets 'nope'"),
        (lambda d: d.update(route={"listener": "missing"}), "route.listener 'missing' is not a gateway listener"),
        (lambda d: d.update(route={"timeout": "5 minutes"}), "must be a Gateway API duration"),
        (lambda d: d.update(checks=["traffic-splt"]), "checks.0: 'traffic-splt' is not allowed"),
    ],
)
def test_a_bad_lab_file_names_the_file_the_field_and_the_problem(tmp_path: Path, mutation, expected: str) -> None:
    data = _preset_data()
    mutation(data)
    path = _write(tmp_path, data)
    with pytest.raises(LabFileError) as caught:
        load_lab_file(path)
    message = caught.value.what
    assert str(path) in message
    assert expected in message


def test_broken_yaml_gives_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\nprovider: [unclosed\n")
    with pytest.raises(LabFileError, match="line 3"):
        load_lab_file(path)


def test_an_unknown_lab_lists_the_presets() -> None:
    with pytest.raises(LabNotFoundError) as caught:
        load_lab("no-such-lab")
    assert "kgateway-fake-llm" in (caught.value.fix or "")
