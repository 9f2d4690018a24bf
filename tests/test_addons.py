"""`--with observability`: Prometheus and Grafana releases, the dashboard, `igwlab dashboard`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from doubles.faketools import FakeTools
from helpers import invoke, render, wait_until
from typer.testing import CliRunner

from igwlab.catalog import load_catalog
from igwlab.plan import build_plan
from igwlab.render import render_dashboard
from igwlab.selection import LabSelection, resolve_lab
from igwlab.sim import SimConfig, running_sim

METRIC = re.compile(r"\b(?:vllm:[a-z_]+|inference_[a-z_]+)")


def _dashboard_metrics(dashboard: dict) -> set[str]:  # type: ignore[type-arg]
    return {
        name for panel in dashboard["panels"] for target in panel["targets"] for name in METRIC.findall(target["expr"])
    }


def test_observability_adds_prometheus_and_grafana_scraping_the_lab() -> None:
    rendered = render(lab="kv-cache-aware", addons=("observability",))
    releases = {r.name: r for r in rendered.releases}
    prometheus, grafana = releases["igwlab-prometheus"], releases["igwlab-grafana"]
    assert prometheus.namespace == grafana.namespace == "igwlab"
    jobs = {job["job_name"]: job for job in prometheus.values["serverFiles"]["prometheus.yml"]["scrape_configs"]}
    assert jobs["model-servers"]["relabel_configs"][0]["regex"] == "fakellm-kv"
    epp = jobs["endpoint-picker"]
    assert epp["relabel_configs"][0]["regex"] == "fakellm-kv-pool-epp"
    assert epp["authorization"]["credentials_file"].endswith("serviceaccount/token"), "the EPP's /metrics wants a token"
    datasource = grafana.values["datasources"]["datasources.yaml"]["datasources"][0]
    assert datasource["url"] == "http://igwlab-prometheus-server.igwlab.svc.cluster.local"
    dashboard = json.loads(grafana.values["dashboards"]["igwlab"]["inference"]["json"])
    assert dashboard["uid"] == "igwlab-inference" and len(dashboard["panels"]) >= 8


def test_add_on_steps_run_beside_the_lab() -> None:
    plan = build_plan(render(lab="agentgateway-fake-llm", addons=("observability",)))
    steps = {step.id: step for step in plan.steps}
    assert steps["addon-prometheus"].depends_on == ("namespace",)
    assert steps["addon-prometheus"].wave == steps["workload"].wave
    assert "Deployment/igwlab/igwlab-grafana Available" in steps["addon-grafana"].waits_for


@pytest.mark.parametrize(("provider", "gie"), [(p, s.gie_version) for p, s in load_catalog().all_stacks()])
def test_every_dashboard_metric_is_exported_by_that_stacks_sim_or_epp(provider: str, gie: str) -> None:
    resolved = resolve_lab(LabSelection(provider=provider, gie_version=gie))
    known = set(resolved.simulator.metrics) | set(resolved.gie.epp_metrics)
    used = _dashboard_metrics(render_dashboard(resolved))
    assert used and used <= known, used - known


def test_igwlab_sim_exports_every_simulator_metric_the_dashboards_use() -> None:
    used = set()
    for provider, stack in load_catalog().all_stacks():
        used |= _dashboard_metrics(
            render_dashboard(resolve_lab(LabSelection(provider=provider, gie_version=stack.gie_version)))
        )
    with running_sim(SimConfig(port=0)) as sim:
        httpx.post(f"{sim.url}/v1/completions", json={"model": "fake-llm", "prompt": "x", "max_tokens": 1})
        exported = set(re.findall(r"^(vllm:[a-z_]+)", httpx.get(f"{sim.url}/metrics").text, re.MULTILINE))
    assert {m for m in used if m.startswith("vllm:")} <= exported


def test_the_alpha_stack_dashboard_uses_its_own_epp_metric_names() -> None:
    dashboard = render_dashboard(resolve_lab(LabSelection(lab="kgateway-fake-llm")))
    used = _dashboard_metrics(dashboard)
    assert "inference_model_request_total" in used and "vllm:gpu_cache_usage_perc" in used
    assert "inference_objective_request_total" not in used


def test_unknown_add_on_is_refused(cli: CliRunner) -> None:
    result = invoke(cli, "plan", "--with", "grafana-only")
    assert result.exit_code == 2 and "observability" in result.stderr


def _write_current(state: Path, addons: list[str]) -> None:
    state.mkdir(parents=True, exist_ok=True)
    (state / "current.json").write_text(
        json.dumps(
            {
                "lab": "kv-cache-aware",
                "cluster": "igwlab",
                "context": None,
                "kubeconfig": str(state / "kubeconfig"),
                "selection": {"addons": addons},
                "url": "http://localhost:8080",
                "status": "up",
            }
        )
    )


def test_dashboard_without_the_add_on_says_how_to_get_it(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IGWLAB_STATE_DIR", str(tmp_path))
    _write_current(tmp_path, [])
    result = invoke(cli, "dashboard")
    assert result.exit_code == 2 and "--with observability" in result.stderr


def test_dashboard_runs_a_port_forward_until_interrupted(tmp_path: Path) -> None:
    tools = FakeTools.install(tmp_path / "fake")
    state = tmp_path / "state"
    _write_current(state, ["observability"])
    env = {**tools.env(), "IGWLAB_STATE_DIR": str(state)}
    # A user's terminal delivers Ctrl-C; restore SIGINT in case this runner was started with it ignored.
    process = subprocess.Popen(
        [sys.executable, "-m", "igwlab", "dashboard", "--port", "3123"],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "http://127.0.0.1:3123/d/igwlab-inference" in first
        # The fake kubectl logs its argv once started; igwlab then waits on it, ready for Ctrl-C.
        wait_until(lambda: bool(tools.calls("kubectl")), 60, "kubectl port-forward")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=90) == 0  # a bound, not a wait: it ends within a second when not loaded
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
    call = tools.calls("kubectl")[0]
    assert call[1:6] == ["port-forward", "--namespace", "igwlab", "svc/igwlab-grafana", "3123:80"]
    assert "--kubeconfig" in call
