"""Values igwlab passes to the upstream inferencepool chart must be keys that chart version has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import render

from igwlab.labs import preset_names

# Keys the upstream values.yaml documents only in comments (the chart reads them all the same).
DOCUMENTED_IN_COMMENTS = {"inferencePool.modelServers", "inferenceExtension.pluginsCustomConfig"}


def _unknown_keys(values: dict[str, Any], defaults: dict[str, Any], prefix: str = "") -> list[str]:
    unknown = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if path in DOCUMENTED_IN_COMMENTS:
            continue
        if key not in defaults:
            unknown.append(path)
        elif isinstance(value, dict) and isinstance(defaults[key], dict) and defaults[key]:
            unknown += _unknown_keys(value, defaults[key], f"{path}.")
    return unknown


@pytest.mark.parametrize("lab", preset_names())
def test_pool_chart_values_exist_in_the_chart_version(lab: str, upstream: Path) -> None:
    rendered = render(lab=lab)
    for release in rendered.releases_for("pool"):
        defaults_file = upstream / "gie" / release.version / "inferencepool-values.yaml"
        defaults = yaml.safe_load(defaults_file.read_text())
        assert _unknown_keys(release.values, defaults) == []
        assert release.values["inferencePool"]["modelServers"]["matchLabels"], "the chart fails without it"


def test_laptop_epp_resources_replace_the_chart_default_of_4_cpu(upstream: Path) -> None:
    defaults = yaml.safe_load((upstream / "gie" / "v1.5.0" / "inferencepool-values.yaml").read_text())
    assert defaults["inferenceExtension"]["resources"]["requests"]["cpu"] == "4"
    values = render(lab="agentgateway-fake-llm").releases_for("pool")[0].values
    assert values["inferenceExtension"]["resources"]["requests"]["cpu"] == "100m"


def test_scheduling_config_reaches_the_epp_as_a_plugins_file() -> None:
    values = render(lab="kv-cache-aware").releases_for("pool")[0].values["inferenceExtension"]
    config = yaml.safe_load(values["pluginsCustomConfig"][values["pluginsConfigFile"]])
    profile = config["schedulingProfiles"][0]["plugins"]
    # The saturation thresholds filter first: pods past them get no requests (the detector is a Filter).
    assert profile[0] == {"pluginRef": "utilization-detector"}
    weights = {p["pluginRef"]: p.get("weight") for p in profile[1:]}
    assert weights == {
        "prefix-cache-scorer": 60,
        "kv-cache-utilization-scorer": 30,
        "queue-scorer": 10,
        "max-score-picker": None,
    }
    detector = next(p for p in config["plugins"] if p["type"] == "utilization-detector")
    assert detector["parameters"] == {"queueDepthThreshold": 5, "kvCacheUtilThreshold": 0.8}
    assert config["saturationDetector"] == {"pluginRef": "utilization-detector"}


def test_provider_flags_are_set() -> None:
    """Forgotten provider flags are the classic silent BackendNotFound."""

    def values_of(lab: str, release: str) -> dict[str, Any]:
        return next(r.values for r in render(lab=lab).releases if r.name == release)

    assert values_of("kgateway-fake-llm", "kgateway")["inferenceExtension"]["enabled"] is True
    assert values_of("agentgateway-fake-llm", "agentgateway")["inferenceExtension"]["enabled"] is True
    assert values_of("istio-fake-llm", "istiod")["pilot"]["env"]["ENABLE_GATEWAY_API_INFERENCE_EXTENSION"] == "true"
    assert values_of("nginx-fake-llm", "ngf")["nginxGateway"]["gwAPIInferenceExtension"]["enable"] is True
    eg = values_of("envoy-gateway-fake-llm", "eg")["config"]["envoyGateway"]["extensionManager"]
    assert eg["backendResources"][0]["kind"] == "InferencePool" and eg["hooks"]
    assert values_of("istio-fake-llm", "fakellm-pool")["provider"]["name"] == "istio"
