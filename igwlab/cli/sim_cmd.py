"""`igwlab sim`: a local vLLM-compatible simulator, one process per port."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated

import typer

from igwlab.cli.options import JsonOption, examples, finite, kube_name, text, texts
from igwlab.cli.output import handle_errors, print_json

SIM_EXAMPLES = examples(
    "igwlab sim --port 8000 --model fake-llm --lora fake-llm-lora-a --pod-name sim-0",
    "igwlab sim --port 0 --json",
    "igwlab sim --ttft-ms 200 --itl-ms 20 --kv-cache --max-num-seqs 2",
)


class Mode(str, Enum):
    random = "random"
    echo = "echo"


@handle_errors
def sim(
    port: Annotated[
        int, typer.Option(help="Port to listen on (0 picks a free one).", min=0, max=65535, metavar="PORT")
    ] = 8000,
    host: Annotated[
        str,
        typer.Option(
            help="Address to bind; keep 127.0.0.1 unless others must reach it.", metavar="ADDRESS", callback=text
        ),
    ] = "127.0.0.1",
    model: Annotated[str, typer.Option(help="Base model name it serves.", metavar="MODEL", callback=text)] = (
        "fake-llm"
    ),
    lora: Annotated[
        list[str] | None,
        typer.Option(
            "--lora",
            help="A LoRA adapter name it serves (repeatable).",
            metavar="NAME",
            show_default=False,
            callback=texts,
        ),
    ] = None,
    pod_name: Annotated[
        str | None,
        typer.Option(
            help="Sent back in the x-inference-pod header (a Kubernetes pod name).",
            metavar="POD",
            show_default=False,
            callback=kube_name,
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            help="Sent back in the x-inference-namespace header.",
            metavar="NAMESPACE",
            show_default=False,
            callback=kube_name,
        ),
    ] = None,
    ttft_ms: Annotated[
        float,
        typer.Option(
            "--ttft-ms",
            help="Time to first token, in milliseconds (0 to 600000).",
            min=0,
            max=600_000,
            metavar="MS",
            callback=finite,
        ),
    ] = 0,
    itl_ms: Annotated[
        float,
        typer.Option(
            "--itl-ms",
            help="Time between tokens, in milliseconds (0 to 60000).",
            min=0,
            max=60_000,
            metavar="MS",
            callback=finite,
        ),
    ] = 0,
    max_num_seqs: Annotated[
        int,
        typer.Option(
            help="Requests served at once; more wait in the queue (1 to 10000).", min=1, max=10_000, metavar="N"
        ),
    ] = 5,
    max_loras: Annotated[
        int,
        typer.Option(help="Reported as max_lora in vllm:lora_requests_info (1 to 1000).", min=1, max=1000, metavar="N"),
    ] = 2,
    max_model_len: Annotated[
        int,
        typer.Option(
            help="Prompt plus max_tokens above this gets a 400 (1 to 10000000).",
            min=1,
            max=10_000_000,
            metavar="TOKENS",
        ),
    ] = 1024,
    kv_cache: Annotated[bool, typer.Option("--kv-cache", help="Simulate KV-cache blocks and prefix hits.")] = False,
    mode: Annotated[Mode, typer.Option(help="Answer with random words, or echo the prompt.")] = Mode.random,
    json_output: JsonOption = False,
) -> None:
    """Run a vLLM-compatible simulator: completions, chat, streaming, /v1/models, /health, /metrics.

    Behaves like llm-d-inference-sim as clients and an endpoint picker see it: unknown models get
    an OpenAI-style 404, every answer names its pod in x-inference-pod, and /metrics exports
    vllm:num_requests_running/waiting, vllm:kv_cache_usage_perc and vllm:lora_requests_info.
    Runs until Ctrl-C (exit 0). With --json it prints one JSON document once it listens (the URL,
    the port it picked), then serves.
    """
    from igwlab.errors import UsageError
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
        mode=mode.value,
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
    except (OSError, UnicodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise UsageError(
            f"cannot listen on {host}:{port}: {reason}",
            fix="pick another --port, or stop what uses this one; --host must be an address of this machine",
        ) from error
    except KeyboardInterrupt:
        print("igwlab sim: stopped", file=sys.stderr)
