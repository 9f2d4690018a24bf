from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from igwlab.catalog import load_catalog, version_tuple
from igwlab.errors import ExitCode, UnsupportedCombinationError

CATALOG = load_catalog()


@pytest.mark.parametrize(("provider", "stack_id"), [(p, s.id) for p, s in CATALOG.all_stacks()])
def test_the_simulator_exports_the_kv_metric_the_stacks_epp_reads(provider: str, stack_id: str) -> None:
    """A sim that exports gpu_cache_usage_perc next to an EPP reading kv_cache_usage_perc
    silently disables KV-aware scheduling."""
    stack = next(s for _, s in CATALOG.all_stacks() if s.id == stack_id)
    assert CATALOG.simulator(stack).kv_metric == CATALOG.gie(stack).epp.kv_metric


@pytest.mark.parametrize("gie_version", sorted(CATALOG.gie_releases))
def test_catalog_crd_lists_match_the_upstream_release(gie_version: str, upstream: Path) -> None:
    names = set()
    for path in (upstream / "gie" / gie_version).glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        if doc.get("kind") == "CustomResourceDefinition":
            names.add(doc["metadata"]["name"])
    assert set(CATALOG.gie_releases[gie_version].crds) == names


def test_every_stack_names_its_sources_and_pins_exact_versions() -> None:
    for _, stack in CATALOG.all_stacks():
        assert stack.sources, stack.id
        for release in stack.helm_releases:
            assert release.version[0].isdigit() or release.version.startswith("v"), release
            assert "latest" not in release.version


def test_urls_are_pinned_to_tags_never_main_or_latest() -> None:
    urls = [r.crds_url for r in CATALOG.gie_releases.values()]
    urls += [u for r in CATALOG.gateway_api_releases.values() for u in (r.standard_url, r.experimental_url)]
    for url in urls:
        assert "/main/" not in url and "/latest/" not in url, url


def test_an_unknown_gie_version_is_refused_with_a_working_alternative() -> None:
    with pytest.raises(UnsupportedCombinationError) as caught:
        CATALOG.stack_for("kgateway", "v1.5.0")
    error = caught.value
    assert error.exit_code == ExitCode.USAGE
    assert "v0.5.1" in (error.why or "")
    assert "--provider agentgateway" in (error.fix or "")


def test_versions_without_the_v_prefix_are_accepted() -> None:
    assert CATALOG.stack_for("istio", "1.5.0").gie_version == "v1.5.0"


def test_an_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(UnsupportedCombinationError) as caught:
        CATALOG.stack_for("traefik")
    assert "agentgateway, envoy-gateway, istio, kgateway, nginx" in (caught.value.fix or "")


TESTBIN_MODULES = Path(__file__).resolve().parent / "testbin" / "modules"


@pytest.mark.parametrize("gie_version", sorted(CATALOG.gie_releases))
def test_the_gateway_api_floor_is_what_the_gie_module_requires(gie_version: str) -> None:
    """The GIE module at the tag (its go.mod, resolved by Go itself) names the Gateway API its EPP and
    conformance suite are built with; the catalog's floor is that version, and every stack meets it."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("the Go toolchain reads the module graph; `go` is not on PATH")
    result = subprocess.run(
        [go, "list", "-m", "-json", "sigs.k8s.io/gateway-api"],
        cwd=TESTBIN_MODULES / f"gie-{gie_version}",
        env={**os.environ, "GOFLAGS": "-mod=readonly"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    required = json.loads(result.stdout)["Version"] if result.returncode == 0 else None
    if required is None:
        assert "not a known dependency" in result.stderr, result.stderr
    assert CATALOG.gie_releases[gie_version].gateway_api_min == required


def test_kgateway_pairs_with_the_gateway_api_it_was_conformance_tested_with() -> None:
    stack = CATALOG.stack_for("kgateway")
    assert (stack.gie_version, stack.gateway_api.version) == ("v0.5.1", "v1.3.0")
    for _, other in CATALOG.all_stacks():
        floor = CATALOG.gie(other).gateway_api_min
        if floor:
            assert version_tuple(other.gateway_api.version) >= version_tuple(floor), other.id
