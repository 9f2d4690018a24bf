"""`igwlab sim` over real HTTP on 127.0.0.1, including the official openai client."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import openai
import pytest
from doubles.world import free_port
from helpers import requests_in_flight

from igwlab.sim import SimConfig, running_sim


@pytest.fixture(scope="module")
def sim():  # type: ignore[no-untyped-def]
    with running_sim(
        SimConfig(port=0, model="fake-llm", loras=("fake-llm-lora-a",), pod_name="sim-0", namespace="lab")
    ) as server:
        yield server


def test_openai_client_completions_chat_and_streaming(sim) -> None:  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=f"{sim.url}/v1", api_key="unused")
    completion = client.completions.create(model="fake-llm", prompt="hello", max_tokens=5)
    assert completion.model == "fake-llm" and len(completion.choices[0].text.split()) == 5
    chat = client.chat.completions.create(
        model="fake-llm-lora-a", messages=[{"role": "user", "content": "hi"}], max_tokens=3
    )
    assert chat.model == "fake-llm-lora-a" and chat.choices[0].message.content
    chunks = list(
        client.chat.completions.create(
            model="fake-llm",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=4,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 4
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    streamed = list(client.completions.create(model="fake-llm", prompt="x", max_tokens=2, stream=True))
    assert streamed[-1].choices[0].finish_reason == "length"


def test_unknown_model_is_an_openai_style_404(sim) -> None:  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=f"{sim.url}/v1", api_key="unused")
    with pytest.raises(openai.NotFoundError) as caught:
        client.completions.create(model="nope", prompt="x")
    assert caught.value.body["message"] == "The model `nope` does not exist."  # type: ignore[index]


def test_stream_ends_with_done_and_names_the_pod(sim) -> None:  # type: ignore[no-untyped-def]
    body = {"model": "fake-llm", "prompt": "x", "max_tokens": 2, "stream": True}
    with httpx.stream("POST", f"{sim.url}/v1/completions", json=body) as response:
        lines = [line for line in response.iter_lines() if line]
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-inference-pod"] == "sim-0"
        assert response.headers["x-inference-namespace"] == "lab"
    assert lines[-1] == "data: [DONE]"


def test_models_health_and_bad_requests(sim) -> None:  # type: ignore[no-untyped-def]
    models = httpx.get(f"{sim.url}/v1/models").json()["data"]
    assert [(m["id"], m["parent"]) for m in models] == [("fake-llm", None), ("fake-llm-lora-a", "fake-llm")]
    assert httpx.get(f"{sim.url}/health").status_code == 200
    assert httpx.post(f"{sim.url}/v1/completions", content=b"{not json").status_code == 400
    too_long = httpx.post(
        f"{sim.url}/v1/completions", json={"model": "fake-llm", "prompt": "w " * 1020, "max_tokens": 10}
    )
    assert too_long.status_code == 400 and "maximum context length" in too_long.json()["error"]["message"]


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")


def test_queue_and_lora_gauges_move_under_load() -> None:
    config = SimConfig(port=0, loras=("lora-x",), max_num_seqs=1, time_to_first_token_ms=1000)
    with running_sim(config) as server:
        with requests_in_flight(server, "lora-x", 3):
            metrics = httpx.get(f"{server.url}/metrics").text
        after = httpx.get(f"{server.url}/metrics").text
    assert _metric(metrics, "vllm:num_requests_running") == 1
    assert _metric(metrics, "vllm:num_requests_waiting") == 2
    assert 'running_lora_adapters="lora-x"' in metrics and 'waiting_lora_adapters="lora-x"' in metrics
    assert _metric(after, "vllm:num_requests_running") == 0
    # Labelled by the base model, LoRA requests too, as vLLM and llm-d-inference-sim v0.10.2 do.
    assert 'vllm:request_success_total{model_name="fake-llm",finish_reason="length"} 3' in after
    assert _metric(after, "vllm:time_to_first_token_seconds_count") == 3
    assert 'vllm:time_to_first_token_seconds_bucket{model_name="fake-llm",le="0.75"} 0' in after
    assert 'vllm:time_to_first_token_seconds_bucket{model_name="fake-llm",le="1.0"} 3' in after
    assert _metric(after, "vllm:request_queue_time_seconds_sum") > 0, "two of them waited for the one slot"


def test_kv_cache_counts_prefix_hits_and_usage() -> None:
    prompt = " ".join(f"w{i}" for i in range(64))
    with running_sim(SimConfig(port=0, enable_kvcache=True, kv_cache_size=64, block_size=16)) as server:
        first = httpx.post(f"{server.url}/v1/completions", json={"model": "fake-llm", "prompt": prompt}).json()
        second = httpx.post(f"{server.url}/v1/completions", json={"model": "fake-llm", "prompt": prompt}).json()
        metrics = httpx.get(f"{server.url}/metrics").text
    assert first["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert second["usage"]["prompt_tokens_details"]["cached_tokens"] == 64
    assert _metric(metrics, "vllm:prefix_cache_hits") == 4
    assert _metric(metrics, "vllm:prefix_cache_queries") == 8


def test_the_sim_command_serves_until_stopped() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "igwlab", "sim", "--port", str(port), "--pod-name", "cli-sim"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{port}/v1/completions",
                    json={"model": "fake-llm", "prompt": "x", "max_tokens": 1},
                )
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "igwlab sim did not start"
                time.sleep(0.1)
        assert response.headers["x-inference-pod"] == "cli-sim"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_sim_command_reports_a_busy_port() -> None:
    with running_sim() as server:
        result = subprocess.run(
            [sys.executable, "-m", "igwlab", "sim", "--port", str(server.port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 2
    assert "cannot listen" in result.stderr
