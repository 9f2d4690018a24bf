"""Every preset through `igwlab up --context … --mirror …`, `status`, a re-run and `teardown` on a real
API server (kwok cluster built by tests/testbin), with the real helm installing the real charts from an
offline mirror; the simulator presets then `verify` through the real Envoy and the real endpoint picker.

Stood in (see standin.py and dataplane.py): the gateway controller and the container runtime. Run with
`python -m pytest -m realcluster` (or `-m realpicker` for the data-path part).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reallab import RealLab

from igwlab.labs import preset_names
from igwlab.selection import LabSelection, resolve_lab


def _is_sim(preset: str) -> bool:
    return all(b.workload.kind == "sim" for b in resolve_lab(LabSelection(lab=preset)).lab.backends())


PRESETS = [
    pytest.param(name, marks=[pytest.mark.realcluster, *([pytest.mark.realpicker] if _is_sim(name) else [])])
    for name in preset_names()
]


# What the real upstream parts do and verify rightly warns about, with the words its hint must use.
KNOWN_WARNINGS = {
    # BBR v1.5.0 holds each response body to its end (pkg/bbr/handlers/server.go): streams arrive at once.
    "multi-model": {"streaming": "body-based router holds the response"},
}


def _created_by_lab(before: set[str], after: set[str]) -> set[str]:
    """What is left after teardown that `up` made: CRDs stay without --crds, and the GatewayClass a
    provider's controller made at start-up is the provider's, not the lab's."""
    return {ref for ref in after - before if not ref.startswith(("CustomResourceDefinition//", "GatewayClass//"))}


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_up_status_rerun_verify_teardown(preset: str, real_mirror: Path, tmp_path: Path) -> None:
    with RealLab.start(tmp_path, real_mirror) as lab:
        before, releases_before = lab.inventory(), lab.releases()

        up = lab.igwlab("up", "--lab", preset, "--timeout", "180", "--json")
        assert up.returncode == 0, up.output + lab.diagnostics()
        data = up.json()["data"]
        assert {step["status"] for step in data["steps"]} <= {"done", "skipped"}, data["steps"]
        assert data["url"] == f"http://{lab.address}:{resolve_lab(LabSelection(lab=preset)).lab.route_listener.port}"

        status = lab.run("status", "--json")
        assert status.returncode == 0, status.output
        shown = status.json()["data"]
        assert shown["lab"] == preset and shown["status"] == "up" and shown["context"] == lab.cluster.context
        assert all(obj["exists"] for obj in shown["objects"]), [o for o in shown["objects"] if not o["exists"]]
        assert all(release["deployed"] for release in shown["releases"]), shown["releases"]
        # Objects igwlab renders are server-side applied under its own field manager.
        routes = json.loads(lab.cluster.kubectl("get", "httproutes", "-A", "-o", "json", "--show-managed-fields"))[
            "items"
        ]
        assert routes and all(
            {"manager": "igwlab", "operation": "Apply"}.items() <= entry.items()
            for route in routes
            for entry in route["metadata"]["managedFields"]
            if entry["manager"] == "igwlab"
        ), [route["metadata"]["managedFields"] for route in routes]
        assert all(any(e["manager"] == "igwlab" for e in r["metadata"]["managedFields"]) for r in routes)

        again = lab.igwlab("up", "--lab", preset, "--json")
        assert again.returncode == 0, again.output
        redone = [step["step"] for step in again.json()["data"]["steps"] if step["status"] != "skipped"]
        assert redone == ["warmup"], f"a re-run repeats only the warm-up completion, not {redone}"

        if _is_sim(preset):
            # 100 per split (a 70/30 split shows at that size) and 20 in flight: the real path keeps up.
            verify = lab.run("verify", "--json", "--requests", "100", "--concurrency", "20")
            checks = {check["name"]: check for check in verify.json()["data"]["checks"]}
            for name, hint in KNOWN_WARNINGS.get(preset, {}).items():
                assert checks[name]["status"] == "warn" and hint in checks[name]["hint"], checks[name]
                checks.pop(name)
            failed = [c for c in checks.values() if c["status"] not in ("pass", "skip")]
            assert verify.returncode == 0 and not failed, verify.output + lab.diagnostics()

        down = lab.run("teardown", "--yes", "--json")
        assert down.returncode == 0, down.output
        assert lab.releases() == releases_before
        left = _created_by_lab(before, lab.inventory())
        assert not left, f"teardown left what up made: {sorted(left)}"


@pytest.mark.realcluster
def test_addons_install_their_real_charts_and_teardown_crds_removes_everything(
    real_mirror: Path, tmp_path: Path
) -> None:
    with RealLab.start(tmp_path, real_mirror) as lab:
        before = lab.inventory()
        args = ("--lab", "agentgateway-fake-llm", "--with", "observability", "--with", "litellm")
        up = lab.igwlab("up", *args, "--timeout", "180", "--json")
        assert up.returncode == 0, up.output + lab.diagnostics()
        releases = lab.releases()
        assert {"igwlab/igwlab-prometheus", "igwlab/igwlab-grafana"} <= set(releases), releases
        for deployment in ("igwlab-prometheus-server", "igwlab-grafana", "igwlab-litellm"):
            lab.cluster.kubectl("-n", "igwlab", "rollout", "status", f"deployment/{deployment}", "--timeout=60s")

        down = lab.run("teardown", "--yes", "--crds", "--json")
        assert down.returncode == 0, down.output
        assert lab.releases() == []
        left = lab.inventory() - before
        assert not left, f"teardown --crds left: {sorted(left)}"
