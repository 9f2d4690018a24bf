"""`igwlab load` and `igwlab top`: watch the endpoint picker at work."""

from __future__ import annotations

from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from igwlab.cli.options import JsonOption
from igwlab.cli.output import handle_errors, print_json, stderr, stdout

LabFlag = Annotated[
    str | None,
    typer.Option(
        "--lab",
        "-l",
        help="Lab whose model and objective to use; default: the lab `up` recorded, else agentgateway-fake-llm.",
    ),
]


class Arrival(str, Enum):
    constant = "constant"
    poisson = "poisson"


@handle_errors
def load(
    lab: LabFlag = None,
    url: Annotated[str | None, typer.Option(help="Gateway base URL; default: the URL `up` recorded.")] = None,
    rps: Annotated[
        str | None,
        typer.Option(
            metavar="RATE[,RATE...]",
            help="Open loop: start this many requests per second (at most 1000); several rates run as stages, "
            "one after the other.",
        ),
    ] = None,
    concurrency: Annotated[
        str | None,
        typer.Option(
            metavar="N[,N...]",
            help="Closed loop: keep this many requests in flight (at most 256); several numbers run as stages.",
        ),
    ] = None,
    duration: Annotated[
        str, typer.Option(help="How long each stage sends: 30s, 2m, 1m30s (all stages together at most 30m).")
    ] = "60s",
    arrival: Annotated[
        Arrival, typer.Option(help="Open loop: requests evenly spaced, or a Poisson process of the same mean rate.")
    ] = Arrival.constant,
    prefixes: Annotated[
        int, typer.Option(help="Shared long prompt prefixes, cycled through; 0 = every prompt unique.", min=0)
    ] = 0,
    prompt_tokens: Annotated[int, typer.Option(help="Words per prompt prefix.", min=1)] = 256,
    model: Annotated[str | None, typer.Option(help="Model name to request; default: the lab's first.")] = None,
    max_tokens: Annotated[int, typer.Option(help="max_tokens of each request.", min=1)] = 16,
    stream: Annotated[
        bool,
        typer.Option("--stream/--no-stream", help="Stream answers (measures time to first token and between tokens)."),
    ] = True,
    usage: Annotated[
        bool,
        typer.Option(
            "--usage/--no-usage",
            help="Ask streams for the server's token count (stream_options.include_usage); without it, "
            "output tokens are counted as chunks.",
        ),
    ] = True,
    slo: Annotated[
        str | None,
        typer.Option(
            metavar="NAME=TIME[,...]",
            help="Latency objectives for goodput, each a ceiling per request: ttft (first token), tpot (per "
            "output token), itl (longest gap between tokens), e2e (total); e.g. ttft=200ms,tpot=50ms.",
        ),
    ] = None,
    sheddable: Annotated[
        float,
        typer.Option(
            help="Share of requests sent as sheddable (the objective header), beside critical ones.", min=0, max=1
        ),
    ] = 0.0,
    sheddable_objective: Annotated[str, typer.Option(help="Objective name sheddable requests carry.")] = "sheddable",
    timeout: Annotated[float, typer.Option(help="Seconds per request.", min=0.1)] = 60,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Client processes sending the load; default: one per 100 req/s of the highest rate, at most "
            "one per CPU.",
            min=1,
            max=16,
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the Poisson schedule and of the class mix.")] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Also write each stage as JSON (stage-N-....json) and a plot, load.png: latency percentiles "
            "against the achieved rate, and each pod's share of every prefix.",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Send bounded load through the gateway and report what the endpoint picker did with it.

    Give --rps (open loop) or --concurrency (closed loop); a comma-separated list runs one stage
    per value, to find where latency bends. Each stage reports its pacing (intended against
    actual send times, with a warning when the client itself fell behind), latency, time to
    first token, time between tokens and per output token, output tokens/s, goodput against
    --slo, outcomes per class, and which pods served each shared prefix (--prefixes K). Stops by
    itself after --duration per stage.
    """
    from igwlab.cli.load_view import print_load, progress
    from igwlab.observe.load import LoadOptions, parse_counts, parse_duration, parse_rates, run_load
    from igwlab.observe.metrics import parse_slo
    from igwlab.selection import LabSelection, resolve_lab
    from igwlab.verify.run import VerifyOptions, resolve_target

    options = LoadOptions(
        url="",
        model="",
        duration_s=parse_duration(duration),
        rps=parse_rates(rps) if rps is not None else None,
        concurrency=parse_counts(concurrency) if concurrency is not None else None,
        arrival=arrival.value,
        prefixes=prefixes,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        stream=stream,
        include_usage=usage,
        sheddable_share=sheddable,
        sheddable_objective=sheddable_objective,
        timeout_s=timeout,
        seed=seed,
        workers=workers,
        slo=parse_slo(slo) if slo is not None else None,
    )
    options.validate()
    if out is not None:
        from igwlab.observe.plot import prepare_out_dir

        prepare_out_dir(out)
    lab_reference, gateway = resolve_target(VerifyOptions(lab=lab, url=url))
    resolved = resolve_lab(LabSelection(lab=lab_reference))
    first = resolved.lab.models[0]
    options = replace(
        options,
        url=gateway,
        model=model or first.name,
        critical_objective=first.object_name if resolved.gie.model_object == "InferenceObjective" else None,
    )
    result = run_load(options, progress=progress).as_dict()
    if out is not None:
        from igwlab.observe.plot import write_outputs

        written = write_outputs(result, out)
        progress("wrote " + ", ".join(str(path) for path in written))
    if not json_output:
        print_load(result)
    if result["succeeded"] == 0:
        from igwlab.errors import ChecksFailedError

        outcomes: dict[str, int] = {}
        for stage in result["stages"]:
            for code, count in stage["status"].items():
                outcomes[code] = outcomes.get(code, 0) + count
        listed = ", ".join(f"{code}: {count}" for code, count in outcomes.items()) or "none sent"
        raise ChecksFailedError(
            f"no request succeeded: {result['requests']} sent to {result['url']} ({listed})",
            why="every request failed, so there are no latencies or pods to report",
            fix=f"check the gateway answers: igwlab verify --url {result['url']}",
            data=result,
        )
    if json_output:
        print_json(result)


@handle_errors
def top(
    lab: LabFlag = None,
    url: Annotated[
        list[str] | None,
        typer.Option(
            "--url",
            help="A model server's base URL to scrape (repeatable; "
            "NAME=URL names it). Default: the pods of the lab that is up, "
            "through the Kubernetes API.",
        ),
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.", min=0.2)] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Print one sample and exit.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Live view of each model-server pod: running and waiting requests, KV-cache use, LoRA
    adapters, requests served — from the pods' /metrics. Runs until Ctrl-C; --once --json prints
    one sample as data."""
    import asyncio
    import time

    from igwlab.errors import UsageError
    from igwlab.observe.top import sample, sample_dict, targets_from_cluster, targets_from_urls

    if json_output and not once:
        raise UsageError(
            "--json needs --once",
            why="a live view cannot be printed as one JSON document",
            fix="igwlab top --once --json",
        )
    kube = None
    if url:
        targets = targets_from_urls(url)
    else:
        from igwlab.lifecycle import Environment, current_lab

        current = current_lab()
        if lab and not current.is_lab(lab):
            raise UsageError(
                f"lab {lab} is not the lab that is up ({current.resolved.lab.name})",
                fix="drop --lab, or pass --url for each model server",
            )
        kube = current.kube(Environment())
        workload = current.resolved.lab
        targets = targets_from_cluster(
            kube, workload.namespace, workload.workload.selector_labels, workload.pool.target_port
        )
        if not targets:
            raise UsageError(
                f"no pods labelled app={workload.workload.name} in namespace {workload.namespace}",
                fix="`igwlab status` shows whether the workload is up",
            )
    if once:
        samples = asyncio.run(sample(targets, kube))
        if not json_output:
            stdout().print(_top_table(samples))
        if all(s.error for s in samples):
            from igwlab.errors import ChecksFailedError

            raise ChecksFailedError(
                f"none of the {len(samples)} model servers answered on /metrics",
                why="; ".join(f"{s.pod}: {s.error}" for s in samples),
                fix="check the URLs (`igwlab sim` serves /metrics), or `igwlab status` for the lab's pods",
                data=sample_dict(samples),
            )
        if json_output:
            print_json(sample_dict(samples))
        return
    from rich.live import Live

    try:
        with Live(_top_table([]), console=stdout(), refresh_per_second=4) as live:
            while True:
                live.update(_top_table(asyncio.run(sample(targets, kube))))
                time.sleep(interval)
    except KeyboardInterrupt:
        return


def _top_table(samples: list[Any]) -> Any:
    from rich.table import Table

    table = Table(title="igwlab top (Ctrl-C stops)", title_justify="left")
    for column in ("pod", "running", "waiting", "KV cache", "LoRA running", "LoRA waiting", "served", "note"):
        table.add_column(column, justify="right" if column in ("running", "waiting", "KV cache", "served") else "left")
    for s in samples:

        def number(value: float | None) -> str:
            return "-" if value is None else f"{value:.0f}"

        kv = "-" if s.kv_cache_usage is None else f"{s.kv_cache_usage:.0%}"
        table.add_row(
            s.pod,
            number(s.running),
            number(s.waiting),
            kv,
            s.running_loras or "-",
            s.waiting_loras or "-",
            number(s.requests_served),
            s.error,
        )
    return table


@handle_errors
def dashboard(
    port: Annotated[int, typer.Option(help="Local port for the dashboard.", min=1024, max=65535)] = 3000,
    json_output: JsonOption = False,
) -> None:
    """Open the lab's Grafana dashboard (needs `igwlab up --with observability`) through a
    port-forward igwlab runs until Ctrl-C: per-pod queues and KV-cache use, requests per pod and per
    target model, and what the endpoint picker reports."""
    from rich.markup import escape

    from igwlab.lifecycle import dashboard_forward
    from igwlab.tools.proc import run_until_interrupted

    argv, url = dashboard_forward(port)
    if json_output:
        print_json({"url": url, "port": port})
    else:
        stdout().print(f"dashboard: {url}   (Ctrl-C stops the port-forward)")
    code = run_until_interrupted(argv, on_output=lambda line: stderr().print(f"[dim]{escape(line)}[/]"))
    if code != 0:
        from igwlab.errors import IgwlabError

        raise IgwlabError(
            f"the port-forward to Grafana stopped (kubectl exit code {code})",
            why="kubectl's messages above say why",
            fix="`igwlab status` shows whether the lab's Grafana is running",
        )
