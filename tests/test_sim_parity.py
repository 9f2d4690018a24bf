"""`igwlab sim` against the real llm-d-inference-sim (v0.10.2, built by tests/testbin): the same requests,
and what a client, an endpoint picker or a dashboard reads must match — response headers, body fields,
errors, the model list and the metric families.

The real simulator listens on every address, so it runs alone in a network namespace (netns_relay.py,
which needs root for `unshare --net`) and is reached through a Unix socket.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import testbin
from prometheus_client.parser import text_string_to_metric_families

from igwlab.sim import SimConfig, running_sim

pytestmark = pytest.mark.realpicker

LORAS = ("fake-llm-lora-a", "fake-llm-lora-b")
POD_ENV = {"POD_NAME": "pod-a", "POD_NAMESPACE": "ns-a", "POD_IP": "127.0.0.1"}


@contextmanager
def real_sim(real_binaries: None) -> Iterator[httpx.Client]:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("the real simulator runs in a network namespace of its own: needs root, unshare and ip")
    folder = Path(tempfile.mkdtemp(prefix="igw-parity-"))
    socket_path = folder / "s"
    argv = ["unshare", "--net", "--", sys.executable, str(Path(__file__).parent / "netns_relay.py")]
    argv += [str(socket_path), "8000", "--", str(testbin.binary("llm-d-inference-sim", "v0.10.2"))]
    argv += ["--model", "fake-llm", "--port", "8000", "--max-loras", "2", "--lora-modules"]
    argv += [f'{{"name": "{lora}"}}' for lora in LORAS]
    argv += ["--time-to-first-token", "20ms", "--inter-token-latency", "5ms", "--force-dummy-tokenizer"]
    log = (folder / "log").open("wb")
    process = subprocess.Popen(argv, env={**os.environ, **POD_ENV}, stdout=log, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url="http://sim", transport=httpx.HTTPTransport(uds=str(socket_path)), timeout=30)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (folder / "log").read_text()[-2000:]
            time.sleep(0.1)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=30)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def igwlab_sim() -> Iterator[httpx.Client]:
    config = SimConfig(
        port=0,
        model="fake-llm",
        loras=LORAS,
        pod_name=POD_ENV["POD_NAME"],
        namespace=POD_ENV["POD_NAMESPACE"],
        time_to_first_token_ms=20,
        inter_token_latency_ms=5,
        max_loras=2,
    )
    with running_sim(config) as sim, httpx.Client(base_url=sim.url, timeout=30) as client:
        yield client


def exchange(client: httpx.Client) -> dict[str, Any]:
    """The same requests to either simulator, and what came back."""
    completion = client.post("/v1/completions", json={"model": LORAS[0], "prompt": "hi there", "max_tokens": 3})
    chat = client.post(
        "/v1/chat/completions",
        json={"model": "fake-llm", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
    )
    stream = client.post(
        "/v1/completions",
        json={"model": "fake-llm", "prompt": "hi", "max_tokens": 3, "stream": True,
              "stream_options": {"include_usage": True}},
    )  # fmt: skip
    unknown = client.post("/v1/completions", json={"model": "no-such-model", "prompt": "hi", "max_tokens": 3})
    return {
        "completion": completion,
        "chat": chat,
        "stream": stream,
        "unknown": unknown,
        "models": client.get("/v1/models").json(),
        "metrics": client.get("/metrics").text,
    }


def families(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


def test_igwlab_sim_answers_like_the_real_simulator(real_binaries: None) -> None:
    with real_sim(real_binaries) as client:
        real = exchange(client)
    with igwlab_sim() as client:
        ours = exchange(client)

    for key in ("completion", "chat", "stream"):
        assert real[key].status_code == ours[key].status_code == 200
        for header in ("x-inference-pod", "x-inference-namespace", "x-inference-port"):
            assert header in real[key].headers and header in ours[key].headers, (key, header)
        assert real[key].headers["x-inference-pod"] == ours[key].headers["x-inference-pod"] == "pod-a"
    for key in ("completion", "chat"):
        real_body, our_body = real[key].json(), ours[key].json()
        assert set(real_body) == set(our_body), key
        assert real_body["model"] == our_body["model"]
        assert real_body["usage"].keys() == our_body["usage"].keys()
        assert real_body["usage"]["prompt_tokens_details"] == our_body["usage"]["prompt_tokens_details"]
    final = [line for line in ours["stream"].text.splitlines() if '"usage": {' in line or '"usage":{' in line]
    assert final and '"choices": []' in final[-1], "the usage chunk comes last, with no choices"
    assert real["stream"].text.rstrip().endswith("data: [DONE]") and ours["stream"].text.rstrip().endswith(
        "data: [DONE]"
    )

    assert real["unknown"].status_code == ours["unknown"].status_code == 404
    assert real["unknown"].json() == ours["unknown"].json()

    def model_list(answer: dict[str, Any]) -> list[tuple[str, str | None]]:
        return sorted((m["id"], m.get("parent")) for m in answer["data"])

    assert model_list(real["models"]) == model_list(ours["models"])

    missing = families(real["metrics"]) - families(ours["metrics"])
    assert not missing, f"metric families the real simulator exports and igwlab sim lacks: {sorted(missing)}"
    success = [
        sample.labels["model_name"]
        for text in (real["metrics"], ours["metrics"])
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "vllm:request_success_total"
    ]
    assert set(success) == {"fake-llm"}, "served requests count under the base model, LoRA requests too"
