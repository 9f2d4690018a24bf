"""`igwlab top` over real HTTP against local sims (`igwlab load` has tests/test_load.py)."""

from __future__ import annotations

from helpers import invoke, json_data, requests_in_flight
from typer.testing import CliRunner

from igwlab.observe.top import sample, targets_from_cluster
from igwlab.sim import SimConfig, running_sim


def test_top_once_json_shows_queues_and_adapters_under_load(cli: CliRunner) -> None:
    # Two rounds of 2 s: `top` scrapes within the first, however long the machine takes to send the four.
    config = SimConfig(port=0, loras=("lora-x",), pod_name="busy", max_num_seqs=2, time_to_first_token_ms=2000)
    with running_sim(config) as busy, running_sim(SimConfig(port=0, pod_name="idle")) as idle:
        urls = ["--url", f"busy={busy.url}", "--url", f"idle={idle.url}"]
        with requests_in_flight(busy, "lora-x", 4):
            result = invoke(cli, "top", *urls, "--once", "--json")
    assert result.exit_code == 0, result.stderr
    pods = {pod["pod"]: pod for pod in json_data(result, "top")["pods"]}
    assert pods["busy"]["running"] == 2 and pods["busy"]["waiting"] == 2
    assert pods["busy"]["running_loras"] == "lora-x" and pods["busy"]["max_lora"] == "2"
    assert pods["idle"]["running"] == 0 and pods["idle"]["requests_served"] == 0


def test_top_reports_an_unreachable_pod_without_hiding_the_others(cli: CliRunner) -> None:
    with running_sim(SimConfig(port=0)) as sim:
        result = invoke(cli, "top", "--url", f"up={sim.url}", "--url", "down=http://127.0.0.1:9", "--once", "--json")
    pods = {pod["pod"]: pod for pod in json_data(result, "top")["pods"]}
    assert pods["up"]["error"] == "" and "ConnectError" in pods["down"]["error"]


def test_top_json_needs_once(cli: CliRunner) -> None:
    result = invoke(cli, "top", "--url", "http://127.0.0.1:9", "--json")
    assert result.exit_code == 2 and "--once" in result.stderr


def test_top_reads_lab_pods_through_the_pod_proxy() -> None:
    import asyncio

    from doubles.fakecluster import FakeCluster

    from igwlab.catalog import load_catalog

    cluster = FakeCluster(load_catalog().stack_for("agentgateway"))
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "igwlab"}})
    with running_sim(SimConfig(port=0, pod_name="fakellm-abc")) as sim:
        cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "fakellm-abc", "namespace": "igwlab", "labels": {"app": "fakellm"}},
            }
        )
        cluster.pod_endpoints["fakellm-abc"] = sim.url
        targets = targets_from_cluster(cluster, "igwlab", {"app": "fakellm"}, 8000)
        samples = asyncio.run(sample(targets, cluster))
    assert [s.pod for s in samples] == ["fakellm-abc"]
    assert samples[0].error == "" and samples[0].running == 0


def _refusal(status: int, reason: str, body: bytes) -> Exception:
    """The Kubernetes client's own ApiException for an HTTP answer, built as its REST layer builds it."""
    from kubernetes.client.exceptions import ApiException
    from kubernetes.client.rest import RESTResponse
    from urllib3 import HTTPResponse

    headers = {"Audit-Id": "1c2d", "Content-Type": "application/json", "Date": "Sun, 29 Nov 2026 10:00:00 GMT"}
    response = RESTResponse(HTTPResponse(body=body, status=status, reason=reason, headers=headers))
    response.read()
    try:
        ApiException.from_response(http_resp=response, body=None, data=None)  # raises the status's subclass
    except ApiException as error:
        return error
    raise AssertionError("from_response raises")


def test_top_says_in_one_line_that_the_api_server_refused_the_pod_proxy() -> None:
    import asyncio

    from igwlab.observe.top import Target

    body = b'{"kind":"Status","status":"Failure","message":"address not allowed","reason":"BadRequest","code":400}'

    class Refusing:  # the API server's refusal to proxy, which no local API server here produces
        def pod_proxy_get(self, namespace: str, pod: str, port: int, path: str) -> str:
            raise _refusal(400, "Bad Request", body)

    targets = [Target(pod="fakellm-abc", namespace="igwlab", port=8000)]
    [pod] = asyncio.run(sample(targets, Refusing()))  # type: ignore[arg-type]
    assert pod.error == "the API server refused the pod proxy: HTTP 400 Bad Request: address not allowed"


def test_kubernetes_client_errors_are_one_line_with_the_servers_words() -> None:
    from igwlab.tools.kube import api_error_line

    assert "\n" in str(_refusal(503, "Service Unavailable", b"no endpoints available for service"))
    assert api_error_line(_refusal(503, "Service Unavailable", b"no endpoints\navailable")) == (
        "HTTP 503 Service Unavailable: no endpoints available"
    )
    assert api_error_line(_refusal(404, "Not Found", b"")) == "HTTP 404 Not Found"
    assert api_error_line(OSError("a\nb")) == "OSError: a b"
