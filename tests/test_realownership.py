"""What `up` finds already on a cluster stays the user's: `teardown` removes only what the lab made, and
a second lab cannot take over the record of the first. On a real API server (kwok cluster built by
tests/testbin) with the real helm installing the real charts from the offline mirror; the user's own
namespace, objects and Helm release are made the way a user makes them (kubectl, helm install).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import testbin
from reallab import RealLab, Result

pytestmark = pytest.mark.realcluster

LAB = "agentgateway-fake-llm"  # the cheapest preset: simulator pods, a provider whose CRDs are a release
OTHER_LAB = "kgateway-fake-llm"
USAGE_EXIT = 2


def _helm(lab: RealLab, *args: str) -> str:
    done = subprocess.run(
        [str(testbin.binary("helm")), *args, "--kube-context", lab.cluster.context],
        env=lab.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return done.stdout


def _record(lab: RealLab) -> dict[str, object]:
    return dict(json.loads((lab.state_dir / "current.json").read_text(encoding="utf-8")))


def _namespace_phase(lab: RealLab, name: str) -> str:
    out = lab.cluster.kubectl("get", "namespace", name, "-o", "json", check=False)
    return str(json.loads(out)["status"]["phase"]) if out.strip() else "gone"


def _steps(result: Result) -> dict[str, str]:
    return {step["step"]: step["status"] for step in result.json()["data"]["steps"]}


def test_what_up_found_already_there_stays_after_teardown(real_mirror: Path, tmp_path: Path) -> None:
    """The user's namespace `igwlab` (with a ConfigMap of theirs), an InferenceObjective of theirs of the
    lab's name, and the agentgateway-crds release they installed with helm: `up` leaves them alone and
    records them as found, a re-run keeps them so, and `teardown` removes the lab around them."""
    with RealLab.start(tmp_path, real_mirror) as lab:
        lab.cluster.kubectl("create", "namespace", "igwlab")
        lab.cluster.kubectl("create", "configmap", "mine", "-n", "igwlab", "--from-literal=owner=me")
        chart = next(real_mirror.rglob("agentgateway-crds-*.tgz"))
        _helm(
            lab, "install", "agentgateway-crds", str(chart), "--namespace", "agentgateway-system", "--create-namespace"
        )
        before, releases_before = lab.inventory(), lab.releases()

        up = lab.igwlab("up", "--lab", LAB, "--timeout", "180", "--json")
        assert up.returncode == 0, up.output + lab.diagnostics()
        steps = _steps(up)
        assert steps["namespace"] == "skipped" and steps["provider-agentgateway-crds"] == "skipped", steps
        ownership = _record(lab)["ownership"]
        assert isinstance(ownership, dict)
        for found in (
            "Namespace/igwlab",
            "Namespace/agentgateway-system",
            "helm:agentgateway-system/agentgateway-crds",
        ):
            assert found in ownership["found"], ownership
        for made in (
            "helm:agentgateway-system/agentgateway",
            "helm:igwlab/fakellm-pool",
            "Gateway/igwlab/inference-gateway",
        ):
            assert made in ownership["created"], ownership

        # The same lab again: every step skipped, and what was found stays found.
        again = lab.igwlab("up", "--lab", LAB, "--json")
        assert again.returncode == 0, again.output
        assert _record(lab)["ownership"] == ownership

        down = lab.run("teardown", "--yes", "--json")
        assert down.returncode == 0, down.output
        data = down.json()["data"]
        assert set(data["kept"]) == {
            "Namespace/igwlab",
            "Namespace/agentgateway-system",
            "Helm release agentgateway-system/agentgateway-crds",
        }, data
        for kept in data["kept"]:
            assert f"kept {kept}: it was there before `up`" in down.stderr, down.output
        assert "helm release agentgateway-system/agentgateway" in data["removed"], data
        assert not any(ref.startswith("Namespace/") for ref in data["removed"]), data

        assert _namespace_phase(lab, "igwlab") == "Active" and _namespace_phase(lab, "agentgateway-system") == "Active"
        assert lab.releases() == releases_before, "teardown uninstalled a release the user had installed"
        crds = lab.cluster.kubectl("get", "crds", "-o", "name")
        assert "agentgatewaybackends.agentgateway.dev" in crds, "the user's release lost its CRDs"
        after = lab.inventory()
        # (Before `up` the cluster has no Gateway API CRDs, and the inventory's namespaced listing names
        # them: it starts empty, so the user's objects are named here.)
        users = {
            "Namespace//igwlab",
            "ConfigMap/igwlab/mine",
            "Namespace//agentgateway-system",
            "Secret/agentgateway-system/sh.helm.release.v1.agentgateway-crds.v1",
        }
        assert users <= after, f"teardown removed the user's: {sorted(users - after)}"
        # CRDs stay without --crds; the GatewayClass agentgateway's controller made is the provider's.
        left = {r for r in after - before - users if not r.startswith(("CustomResourceDefinition//", "GatewayClass//"))}
        assert not left, f"teardown left what up made: {sorted(left)}"


def test_a_lab_whose_record_was_lost_is_taken_back_whole_by_up_and_removed_by_teardown(
    real_mirror: Path, tmp_path: Path
) -> None:
    """The state directory lost (another machine, a wiped home): `up` again finds every step done. What
    it made carries its marks — objects and namespaces their labels, Helm releases the labels `up`
    installs them with — so it is the lab's again, and `teardown` removes all of it."""
    with RealLab.start(tmp_path, real_mirror) as lab:
        before = lab.inventory()
        up = lab.igwlab("up", "--lab", LAB, "--timeout", "180", "--json")
        assert up.returncode == 0, up.output + lab.diagnostics()
        made = _record(lab)["ownership"]
        (lab.state_dir / "current.json").unlink()

        again = lab.igwlab("up", "--lab", LAB, "--json")
        assert again.returncode == 0, again.output
        assert set(_steps(again).values()) <= {"skipped", "done"}, _steps(again)
        ownership = _record(lab)["ownership"]
        assert isinstance(ownership, dict) and isinstance(made, dict)
        releases = {ref for ref in made["created"] if ref.startswith("helm:")}
        assert releases and releases <= set(ownership["created"]), ownership
        assert not ownership["found"], ownership

        down = lab.run("teardown", "--yes", "--json")
        assert down.returncode == 0, down.output
        assert down.json()["data"]["kept"] == [], down.output
        assert lab.releases() == []
        provider_made = ("CustomResourceDefinition//", "GatewayClass//")  # stay without --crds; the controller's
        left = {r for r in lab.inventory() - before if not r.startswith(provider_made)}
        assert not left, f"teardown left what up made: {sorted(left)}"


def test_up_of_another_lab_while_one_is_recorded_refuses_before_changing_anything(
    real_mirror: Path, tmp_path: Path
) -> None:
    with RealLab.start(tmp_path, real_mirror, data_path=False) as lab:
        # Lab A recorded in progress: without the data path its warm-up completion never answers.
        first = lab.igwlab("up", "--lab", LAB, "--timeout", "20", "--json")
        assert first.returncode != 0 and _record(lab)["status"] == "in-progress", first.output
        record_text = (lab.state_dir / "current.json").read_text(encoding="utf-8")
        before, releases_before = lab.inventory(), lab.releases()

        for extra in ((), ("--dry-run",)):
            other = lab.igwlab("up", "--lab", OTHER_LAB, "--timeout", "20", "--json", *extra)
            assert other.returncode == USAGE_EXIT, other.output
            error = other.json()["error"]
            text = " ".join(str(error[key] or "") for key in ("message", "why", "hint"))
            assert f"lab {LAB} is recorded in-progress in context {lab.cluster.context}" in error["message"], error
            assert "igwlab teardown" in error["hint"] and "IGWLAB_STATE_DIR" in error["hint"], error
            assert ("dry run changed nothing" in text) == bool(extra), text
            assert "Traceback" not in other.stderr
        assert (lab.state_dir / "current.json").read_text(encoding="utf-8") == record_text
        assert lab.inventory() == before and lab.releases() == releases_before

        # The recorded lab itself continues as before.
        rerun = lab.igwlab("up", "--lab", LAB, "--dry-run", "--json")
        assert rerun.returncode == 0, rerun.output

        down = lab.run("teardown", "--yes", "--json")
        assert down.returncode == 0, down.output
        assert lab.releases() == []


def test_teardown_crds_keeps_the_crds_that_were_there_before_up(real_mirror: Path, tmp_path: Path) -> None:
    """The user's Gateway API v1.5.1 CRDs, already what the lab needs: `up` leaves them as found, and
    `teardown --crds` removes only the CRDs `up` applied (the inference ones)."""
    from test_existing_crds import _bundle, _install

    with RealLab.start(tmp_path, real_mirror, data_path=False) as lab:
        users = _bundle("gateway-api", "v1.5.1", "standard")
        _install(lab.cluster, users)
        names = {d["metadata"]["name"] for d in users if d["kind"] == "CustomResourceDefinition"}
        # Without the data path the warm-up never answers: the lab stays in progress, which teardown takes.
        lab.igwlab("up", "--lab", LAB, "--timeout", "20", "--json")
        ownership = _record(lab)["ownership"]
        assert isinstance(ownership, dict)
        assert {f"CustomResourceDefinition/{name}" for name in names} <= set(ownership["found"]), ownership

        down = lab.run("teardown", "--yes", "--crds", "--json")
        assert down.returncode == 0, down.output
        left = set(lab.cluster.kubectl("get", "crds", "-o", "name").split())
        assert {f"customresourcedefinition.apiextensions.k8s.io/{name}" for name in names} <= left, left
        assert not any("inference.networking" in crd for crd in left), f"the lab's CRDs stayed: {sorted(left)}"
        kept = down.json()["data"]["kept"]
        assert {k for k in kept if k.startswith("CRD ")} == {f"CRD {name}" for name in names}, kept
        for name in names:
            assert f"kept CRD {name}: it was there before `up`" in down.stderr, down.output


HOOK_CHART = {
    "Chart.yaml": "apiVersion: v2\nname: stalled\nversion: 0.1.0\n",
    # A pre-install hook Job: helm waits for it, and under kwok its pod runs and never succeeds, so helm
    # stays mid-install for as long as the test lets it.
    "templates/hook.yaml": (
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: stalled-hook\n  annotations:\n"
        '    "helm.sh/hook": pre-install\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n'
        "      containers: [{name: hook, image: busybox}]\n"
    ),
}


def _stalled_install(lab: RealLab, tmp_path: Path, release: str, namespace: str, labels: str | None) -> None:
    """A real `helm install` of RELEASE killed mid-way, as Ctrl-C or a lost connection leaves it:
    helm's own record of the release says pending-install. `labels` as `up` passes them (`--labels`)."""
    chart = tmp_path / "stalled"
    for name, text in HOOK_CHART.items():
        (chart / name).parent.mkdir(parents=True, exist_ok=True)
        (chart / name).write_text(text, encoding="utf-8")
    argv = [str(testbin.binary("helm")), "install", release, str(chart), "--namespace", namespace]
    argv += ["--create-namespace", "--kube-context", lab.cluster.context, "--timeout", "10m"]
    argv += ["--labels", labels] if labels else []
    helm = subprocess.Popen(argv, env=lab.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = json.loads(_helm(lab, "list", "--namespace", namespace, "--all", "--output", "json") or "[]")
            if any(r["name"] == release and r["status"] == "pending-install" for r in rows):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("helm never reached pending-install")
    finally:
        helm.kill()
        helm.wait(timeout=30)


@pytest.mark.parametrize("whose", ["lab", "user"])
def test_a_release_an_interrupted_helm_left_pending_is_put_back_if_the_labs_and_named_if_not(
    whose: str, real_mirror: Path, tmp_path: Path
) -> None:
    """`up` stopped while helm installed a release (the release pending-install, and helm refusing any
    further operation on it): a re-run undoes the lab's own pending install and continues; a pending
    release that is not the lab's (no lab labels, not in the record) is named and left alone (exit 1)."""
    release, namespace = "agentgateway-crds", "agentgateway-system"
    with RealLab.start(tmp_path, real_mirror) as lab:
        labels = f"app.kubernetes.io/managed-by=igwlab,igwlab.dev/lab={LAB}" if whose == "lab" else None
        _stalled_install(lab, tmp_path, release, namespace, labels)
        up = lab.igwlab("up", "--lab", LAB, "--timeout", "180", "--json")
        rows = json.loads(_helm(lab, "list", "--namespace", namespace, "--all", "--output", "json") or "[]")
        status = {r["name"]: r["status"] for r in rows}
        if whose == "lab":
            assert up.returncode == 0, up.output + lab.diagnostics()
            assert status[release] == "deployed", status
            assert "agentgateway-crds" in str(rows), rows
        else:
            assert up.returncode == 1, up.output
            error = up.json()["error"]
            assert error["message"] == (
                f"Helm release {namespace}/{release} is pending-install: an install or upgrade of it stopped mid-way"
            ), error
            assert f"helm rollback {release} -n {namespace}" in error["hint"], error
            assert status[release] == "pending-install", "up touched a release that is not the lab's"
