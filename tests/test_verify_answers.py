"""What verify concludes from streams, refusals and unknown models, and the failure mode it speaks of."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from charts import find as chart_find
from charts import template
from helpers import find, render
from test_verify import by_name, gateway, run_verify
from typer.testing import CliRunner

from igwlab.labs import load_lab, preset_names, presets_dir
from igwlab.render.pools import pools
from igwlab.selection import LabSelection, resolve_lab
from igwlab.verify.run import lab_facts

PACED = {"inter_token_latency_ms": 30}  # model servers that take their time per token


def test_a_stream_that_arrives_in_one_burst_is_flagged_as_buffered(cli: CliRunner) -> None:
    with gateway(buffer_stream=True, sim=PACED) as url:
        _, report = run_verify(cli, url)
    streaming = by_name(report)["streaming"]
    assert streaming["status"] == "warn", streaming
    assert "buffered" in streaming["detail"] and "ext_proc" in streaming["hint"]
    assert streaming["data"]["generation_s"] > 0.2  # 15 tokens 30 ms apart, seen without streaming
    times = streaming["data"]["chunk_times_s"]
    assert times[-1] - times[0] < 0.05


def test_a_live_stream_passes_with_its_chunks_spread_out(cli: CliRunner) -> None:
    with gateway(sim=PACED) as url:
        _, report = run_verify(cli, url)
    streaming = by_name(report)["streaming"]
    assert streaming["status"] == "pass", streaming
    times = streaming["data"]["chunk_times_s"]
    assert times[-1] - times[0] > 0.2


def test_a_server_that_writes_every_token_at_once_is_no_buffering_fault(cli: CliRunner) -> None:
    """A burst from a server with no inter-token latency looks the same with or without a proxy."""
    with gateway(buffer_stream=True) as url:
        _, report = run_verify(cli, url)
    streaming = by_name(report)["streaming"]
    assert streaming["status"] == "pass", streaming
    assert streaming["data"]["generation_s"] < 0.2


def test_a_json_answer_to_a_stream_request_says_the_stream_was_ignored(cli: CliRunner) -> None:
    with gateway(ignore_stream=True) as url:
        _, report = run_verify(cli, url)
    streaming = by_name(report)["streaming"]
    assert streaming["status"] == "fail"
    assert "application/json" in streaming["detail"] and "stream was ignored" in streaming["detail"]
    assert "dropped it from the body" in streaming["hint"] and "route timeout" not in streaming["hint"]


def test_unknown_model_does_not_pass_when_the_labs_own_model_is_refused_too(cli: CliRunner) -> None:
    with gateway(fail_status=404) as url:
        code, report = run_verify(cli, url)
    unknown = by_name(report)["unknown-model"]
    assert code == 1 and unknown["status"] == "fail", unknown
    assert "proves nothing" in unknown["detail"] and unknown["data"]["lab_model_status"] == 404


def test_unknown_model_passes_on_a_clean_404_while_the_labs_model_answers(cli: CliRunner) -> None:
    with gateway() as url:
        _, report = run_verify(cli, url)
    unknown = by_name(report)["unknown-model"]
    assert unknown["status"] == "pass" and unknown["data"] == {
        "status": 404,
        "model": unknown["data"]["model"],
        "lab_model_status": 200,
    }


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_gateway_that_answers_5xx_is_not_reachable(cli: CliRunner, status: int) -> None:
    with gateway(fail_status=status) as url:
        code, report = run_verify(cli, url)
    checks = by_name(report)
    assert code == 1 and checks["gateway-reachable"]["status"] == "fail", checks["gateway-reachable"]
    assert f"HTTP {status}" in checks["gateway-reachable"]["detail"]
    assert checks["completion"]["status"] == "skip"


# -- the InferencePool failure mode ----------------------------------------------------------------


@pytest.mark.parametrize("lab", preset_names())
def test_every_preset_sets_its_pools_failure_mode(lab: str) -> None:
    raw = yaml.safe_load((presets_dir() / f"{lab}.yaml").read_text())
    pools_ = [raw["pool"], *(extra["pool"] for extra in raw.get("extra_pools", []))]
    assert all(pool.get("failure_mode") in ("FailOpen", "FailClose") for pool in pools_), pools_


@pytest.mark.parametrize("lab", preset_names())
def test_the_rendered_pool_carries_the_labs_failure_mode(lab: str, tmp_path: Path) -> None:
    rendered = render(lab=lab)
    for pool in pools(rendered.resolved):
        name = pool.lab.pool.name
        releases = [r for r in rendered.releases if r.name == name]
        if releases:  # the real inferencepool chart renders the pool from igwlab's values
            manifest = chart_find(template(releases[0], tmp_path), "InferencePool", name)[0]
            mode = manifest["spec"]["endpointPickerRef"]["failureMode"]
        else:
            manifest = next(m for m in find(rendered, "InferencePool") if m["metadata"]["name"] == name)
            mode = manifest["spec"]["extensionRef"]["failureMode"]
        assert mode == pool.lab.pool.failure_mode


def _lab_file(tmp_path: Path, preset: str, **pool: Any) -> Path:
    data = load_lab(preset).model_dump(mode="json", exclude_none=True)
    data["pool"].update(pool)
    path = tmp_path / f"{preset}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_hints_speak_of_the_failure_mode_in_force(cli: CliRunner, tmp_path: Path) -> None:
    open_lab = _lab_file(tmp_path, "kgateway-fake-llm", failure_mode="FailOpen")
    with gateway(fail_status=503) as url:
        _, fail_open = run_verify(cli, url, lab=str(open_lab))
        _, fail_close = run_verify(cli, url)
    assert "fails open (FailOpen)" in by_name(fail_open)["gateway-reachable"]["hint"]
    assert "fails closed (FailClose)" in by_name(fail_close)["gateway-reachable"]["hint"]


def test_envoy_ai_gateway_applies_fail_close_whatever_the_lab_says(tmp_path: Path) -> None:
    """ai-gateway#2502: FailOpen is ignored there; the hints must not promise it."""
    lab = _lab_file(tmp_path, "envoy-gateway-fake-llm", failure_mode="FailOpen")
    assert lab_facts(resolve_lab(LabSelection(lab=str(lab)))).failure_mode == "FailClose"
    other = _lab_file(tmp_path, "agentgateway-fake-llm", failure_mode="FailOpen")
    assert lab_facts(resolve_lab(LabSelection(lab=str(other)))).failure_mode == "FailOpen"
