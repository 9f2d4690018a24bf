"""A k3d cluster of the lab's name made earlier, perhaps for another lab: its port mappings and Kubernetes
version are compared with what this lab needs, and a cluster that does not fit is refused with the way out."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from doubles.world import free_port, lab_world
from typer.testing import CliRunner

from igwlab.errors import ExitCode, PrerequisiteError, UsageError
from igwlab.lifecycle import up
from igwlab.tools.k3d import host_ports


def _calls(world, *prefix: str) -> list[list[str]]:  # type: ignore[no-untyped-def]
    return [c for c in world.tools.calls() if c[: len(prefix)] == list(prefix)]


def test_a_cluster_made_for_another_lab_is_refused_before_anything_changes(tmp_path: Path) -> None:
    with lab_world(tmp_path) as world:
        assert up(world.options(), world.env).run.ok
        data = yaml.safe_load(world.lab_file.read_text())
        route = data["route"]["listener"]
        listener = next(li for li in data["gateway"]["listeners"] if li["name"] == route)
        old, listener["host_port"] = listener["host_port"], free_port()
        world.lab_file.write_text(yaml.safe_dump(data))
        installs = len(_calls(world, "helm", "upgrade"))
        with pytest.raises(PrerequisiteError) as caught:
            up(world.options(), world.env)
        assert installs and len(_calls(world, "helm", "upgrade")) == installs
    error = caught.value
    assert error.exit_code == ExitCode.PREREQUISITES
    assert "was made for another lab" in error.what
    assert f"wants host port {listener['host_port']} -> {listener['port']}, the cluster maps {old}" in error.what
    assert "igwlab teardown" in (error.fix or "") and "--cluster NAME" in (error.fix or "")


def test_another_cluster_name_leaves_the_first_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lab on a second k3d cluster: refused while the first is recorded in the same state directory
    (its teardown would no longer find the first cluster), made in a state directory of its own."""
    with lab_world(tmp_path) as world:
        assert up(world.options(), world.env).run.ok
        data = yaml.safe_load(world.lab_file.read_text())
        for li in data["gateway"]["listeners"]:
            li["host_port"] = free_port()
        world.lab_file.write_text(yaml.safe_dump(data))
        with pytest.raises(UsageError) as refused:
            up(world.options(cluster="igwlab-other", timeout_s=1), world.env)
        assert refused.value.exit_code == ExitCode.USAGE
        assert "on the k3d cluster igwlab-test" in refused.value.what, refused.value.what
        assert "IGWLAB_STATE_DIR" in (refused.value.fix or "")
        assert [c[3] for c in _calls(world, "k3d", "cluster", "create")] == ["igwlab-test"]
        monkeypatch.setenv("IGWLAB_STATE_DIR", str(tmp_path / "other-state"))
        # No stand-in answers on the new host port, so only the cluster and its steps matter here.
        second = up(world.options(cluster="igwlab-other", timeout_s=1), world.env)
        created = [c[3] for c in _calls(world, "k3d", "cluster", "create")]
    assert created == ["igwlab-test", "igwlab-other"]
    assert second.run.outcomes["cluster"].status == "done", second.run.error


def test_a_reused_cluster_on_a_kubernetes_outside_the_stacks_range_is_refused(tmp_path: Path) -> None:
    """kgateway's stack runs on 1.27-1.31; a cluster left by a v1.33 lab is not one to reuse."""
    with lab_world(tmp_path) as world:
        assert up(world.options(), world.env).run.ok
        world.cluster.kubernetes_version = "v1.33.4+k3s1"
        with pytest.raises(PrerequisiteError) as caught:
            up(world.options(), world.env)
    assert "made for another lab" in caught.value.what and "1.27-1.31" in caught.value.what


def test_the_same_lab_reuses_its_own_cluster(tmp_path: Path) -> None:
    with lab_world(tmp_path) as world:
        assert up(world.options(), world.env).run.ok
        again = up(world.options(), world.env)
    assert again.run.ok and again.run.outcomes["cluster"].status == "skipped"
    assert again.doctor is not None
    assert next(f for f in again.doctor.findings if f.name == "cluster").status == "ok"


def test_host_ports_read_k3ds_own_cluster_list() -> None:
    """`k3d cluster list -o json` (pkg/types: nodes[].portMappings is Docker's nat.PortMap)."""
    cluster = {
        "name": "igwlab",
        "nodes": [
            {"name": "k3d-igwlab-server-0", "role": "server", "image": "sha256:4c1f", "portMappings": {}},
            {
                "name": "k3d-igwlab-serverlb",
                "role": "loadbalancer",
                "image": "sha256:9a0e",
                "portMappings": {
                    "6443/tcp": [{"HostIp": "0.0.0.0", "HostPort": "6550"}],
                    "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
                    "8081/tcp": [{"HostIp": "", "HostPort": "8081"}, {"HostIp": "::", "HostPort": "8081"}],
                },
            },
        ],
    }
    assert host_ports(cluster) == {6443: [6550], 80: [8080], 8081: [8081, 8081]}


@pytest.mark.parametrize(
    ("listeners", "api_port", "words"),
    [
        (
            [{"name": "http", "port": 80, "host_port": 6550}],
            6550,
            "takes host port 6550, which cluster.api_port (the Kubernetes API) already uses",
        ),
        (
            [{"name": "http", "port": 80}, {"name": "alt", "port": 81, "host_port": 8080}],
            6550,
            "must be unique: ['8080']",
        ),
    ],
)
def test_host_ports_that_k3d_would_map_twice_are_refused_when_the_lab_is_loaded(
    tmp_path: Path, cli: CliRunner, listeners: list[dict[str, object]], api_port: int, words: str
) -> None:
    from igwlab.cli.app import app
    from igwlab.labs import load_lab

    data = load_lab("agentgateway-fake-llm").model_dump(mode="json", exclude_none=True)
    data["gateway"]["listeners"] = listeners
    data["cluster"] = {"name": "igwlab", "api_port": api_port}
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(data))
    result = cli.invoke(app, ["plan", "--lab", str(path)])
    assert result.exit_code == 2, result.output
    assert words in " ".join(result.output.split())
