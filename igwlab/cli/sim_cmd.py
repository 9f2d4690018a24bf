"""`igwlab sim`: a local vLLM-compatible simulator, one process per port."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from igwlab.cli.options import JsonOption
from igwlab.cli.output import handle_errors, print_json


@handle_errors
def sim(
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).", min=0, max=65535)] = 8000,
    host: Annotated[str, typer.Option(help="Address to bind; keep 127.0.0.1 unless others must reach it.")] = (
        "127.0.0.1"
    ),
    model: Annotated[str, typer.Option(help="Base model name it serves.")] = "fake-llm",
    lora: Annotated[list[str] | None, typer.Option("--lora", help="A LoRA adapter name it serves (repeatable).")] = (
        None
    ),
    pod_name: Annotated[str | None, typer.Option(help="Sent back in the x-inference-pod header.")] = None,
    namespace: Annotated[str | None, typer.Option(help="Sent back in the x-inference-namespace header.")] = None,
    ttft_ms: Annotated[float, typer.Option("--ttft-ms", help="Time to first token, in milliseconds.", min=0)] = 0,
    itl_ms: Annotated[float, typer.Option("--itl-ms", help="Time between tokens, in milliseconds.", min=0)] = 0,
    max_num_seqs: Annotated[int, typer.Option(help="Requests served at once; more wait in the queue.", min=1)] = 5,
    max_loras: Annotated[int, typer.Option(help="Reported as max_lora in vllm:lora_requests_info.", min=1)] = 2,
    max_model_len: Annotated[int, typer.Option(help="Prompt plus max_tokens above this gets a 400.", min=1)] = 1024,
    kv_cache: Annotated[bool, typer.Option("--kv-cache", help="Simulate KV-cache blocks and prefix hits.")] = False,
    mode: Annotated[str, typer.Option(help="random words, or echo the prompt.")] = "random",
    json_output: JsonOption = False,
) -> None:
    """Run a vLLM-compatible simulator: completions, chat, streaming, /v1/models, /health, /metrics.

    Behaves like llm-d-inference-sim as clients and an endpoint picker see it: unknown models get
    an OpenAI-style 404, every answer names its pod in x-inference-pod, and /metrics exports
    vllm:num_requests_running/waiting, vllm:kv_cache_usage_perc and vllm:lora_requests_info.
    Runs until Ctrl-C. Example: igwlab sim --port 8000 --lora fake-llm-lora-a --pod-name sim-0
    """
    from igwlab.errors import UsageError

    if mode not in ("random", "echo"):
        raise UsageError(f"--mode {mode!r} is not random or echo")
    from igwlab.sim.config import SimConfig
    from igwlab.sim.process import serve_forever

    config = SimConfig(
        model=model,
        loras=tuple(lora or ()),
        pod_name=pod_name,
        namespace=namespace,
        host=host,
        port=port,
        time_to_first_token_ms=ttft_ms,
        inter_token_latency_ms=itl_ms,
        max_num_seqs=max_num_seqs,
        max_loras=max_loras,
        max_model_len=max_model_len,
        enable_kvcache=kv_cache,
        mode=mode,  # type: ignore[arg-type]
    )

    def ready(bound: int) -> None:
        url = f"http://{host}:{bound}" if ":" not in host else f"http://[{host}]:{bound}"
        if json_output:
            print_json({"url": url, "port": bound, "models": list(config.served_models()), "pod": pod_name})
            return
        print(
            f"igwlab sim: serving {', '.join(config.served_models())} on {url}"
            + (f" as pod {pod_name}" if pod_name else "")
            + "  (Ctrl-C stops it)",
            flush=True,
        )

    try:
        serve_forever(config, on_ready=ready)
    except OSError as error:
        raise UsageError(
            f"cannot listen on {host}:{port}: {error.strerror or error}",
            fix="pick another --port, or stop what uses this one",
        ) from error
    except KeyboardInterrupt:
        print("igwlab sim: stopped", file=sys.stderr)
