"""`igwlab load` and `igwlab top`: watch the endpoint picker at work."""

from __future__ import annotations

from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from igwlab.cli.options import JsonOption, examples, finite, text, texts
from igwlab.cli.output import Column, handle_errors, print_json, print_table, stderr, stdout
from igwlab.wording import counted

# igwlab/observe/load.py holds the same bounds (MAX_RPS, MAX_CONCURRENCY); the CLI states them in
# --help without importing the load engine (httpx), which keeps --help fast.
MAX_RPS = 1000
MAX_CONCURRENCY = 256
MAX_PREFIXES = 256
MAX_PROMPT_TOKENS = 16_384
MAX_TOKENS = 65_536

LabFlag = Annotated[
    str | None,
    typer.Option(
        "--lab",
        "-l",
        help="Lab whose model and objective to use; default: the lab `up` recorded, else agentgateway-fake-llm.",
        metavar="LAB",
        callback=text,
    ),
]
LOAD_EXAMPLES = examples(
    "igwlab load --rps 20 --duration 2m",
    "igwlab load --rps 5,10,20,40 --duration 30s --arrival poisson --slo ttft=200ms --out load/",
    "igwlab load --concurrency 8 --prefixes 4 --prompt-tokens 512 --json",
    "igwlab load --url http://127.0.0.1:8000 --lab kgateway-fake-llm --rps 5 --duration 10s",
)
TOP_EXAMPLES = examples(
    "igwlab top",
    "igwlab top --once --json",
    "igwlab top --url sim-0=http://127.0.0.1:8000 --url sim-1=http://127.0.0.1:8001",
)
DASHBOARD_EXAMPLES = examples("igwlab dashboard", "igwlab dashboard --port 3001")


class Arrival(str, Enum):
    constant = "constant"
    poisson = "poisson"


@handle_errors
def load(
    lab: LabFlag = None,
    url: Annotated[
        str | None,
        typer.Option(help="Gateway base URL; default: the URL `up` recorded.", metavar="URL", show_default=False),
    ] = None,
    rps: Annotated[
        str | None,
        typer.Option(
            metavar="RATE[,RATE...]",
            help=f"Open loop: start this many requests per second (more than 0, at most {MAX_RPS}); several rates "
            "run as stages, one after the other.",
            callback=text,
        ),
    ] = None,
    concurrency: Annotated[
        str | None,
        typer.Option(
            metavar="N[,N...]",
            help=f"Closed loop: keep this many requests in flight (1 to {MAX_CONCURRENCY}); several numbers run "
            "as stages.",
            callback=text,
        ),
    ] = None,
    duration: Annotated[
        str,
        typer.Option(
            help="How long each stage sends: 30s, 2m, 1m30s (all stages together at most 30m).",
            metavar="DURATION",
            callback=text,
        ),
    ] = "60s",
    arrival: Annotated[
        Arrival | None,
        typer.Option(
            help="Open loop (--rps) only: requests evenly spaced, or a Poisson process of the same mean rate. "
            "(default: constant)",
            show_default=False,
        ),
    ] = None,
    prefixes: Annotated[
        int,
        typer.Option(
            help=f"Shared long prompt prefixes, cycled through; 0 = every prompt unique (at most {MAX_PREFIXES}).",
            min=0,
            max=MAX_PREFIXES,
            metavar="K",
        ),
    ] = 0,
    prompt_tokens: Annotated[
        int,
        typer.Option(
            help=f"Words per prompt prefix (1 to {MAX_PROMPT_TOKENS}).", min=1, max=MAX_PROMPT_TOKENS, metavar="N"
        ),
    ] = 256,
    model: Annotated[
        str | None,
        typer.Option(
            help="Model name to request; default: the lab's first.", metavar="MODEL", show_default=False, callback=text
        ),
    ] = None,
    max_tokens: Annotated[
        int, typer.Option(help=f"max_tokens of each request (1 to {MAX_TOKENS}).", min=1, max=MAX_TOKENS, metavar="N")
    ] = 16,
    stream: Annotated[
        bool,
        typer.Option("--stream/--no-stream", help="Stream answers (measures time to first token and between tokens)."),
    ] = True,
    usage: Annotated[
        bool | None,
        typer.Option(
            "--usage/--no-usage",
            help="Ask streams for the server's token count (stream_options.include_usage); without it, "
            "output tokens are counted as chunks. Streams only. (default: --usage)",
            show_default=False,
        ),
    ] = None,
    slo: Annotated[
        str | None,
        typer.Option(
            metavar="NAME=TIME[,...]",
            callback=text,
            help="Latency objectives for goodput, each a ceiling per request: ttft (first token), tpot (per "
            "output token), itl (longest gap between tokens), e2e (total); e.g. ttft=200ms,tpot=50ms.",
        ),
    ] = None,
    sheddable: Annotated[
        float,
        typer.Option(
            help="Share of requests sent as sheddable (the objective header), beside critical ones: 0 to 1.",
            min=0,
            max=1,
            metavar="SHARE",
            callback=finite,
        ),
    ] = 0.0,
    sheddable_objective: Annotated[
        str | None,
        typer.Option(
            help="Objective name sheddable requests carry, with --sheddable (default: sheddable).",
            metavar="NAME",
            callback=text,
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(help="Seconds per request (0.1 to 3600).", min=0.1, max=3600, metavar="SECONDS", callback=finite),
    ] = 60,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Client processes sending the load (1 to 16); default: one per 100 req/s of the highest rate, "
            "at most one per CPU.",
            min=1,
            max=16,
            metavar="N",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Seed of the Poisson schedule and of the class mix.", metavar="N", show_default=False),
    ] = None,
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
    from igwlab.selection import resolve_lab
    from igwlab.verify.run import VerifyOptions, resolve_target

    options = LoadOptions(
        url="",
        model="",
        duration_s=parse_duration(duration),
        rps=parse_rates(rps) if rps is not None else None,
        concurrency=parse_counts(concurrency) if concurrency is not None else None,
        arrival=arrival.value if arrival is not None else None,
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
    selection, gateway = resolve_target(VerifyOptions(lab=lab, url=url), command="load")
    resolved = resolve_lab(selection)
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
        from igwlab.observe.load import no_success_error

        raise no_success_error(result, options.timeout_s)
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
            metavar="[NAME=]URL",
            show_default=False,
            callback=texts,
        ),
    ] = None,
    interval: Annotated[
        float | None,
        typer.Option(
            help="Seconds between refreshes of the live view (0.2 to 3600; not with --once). (default: 2)",
            min=0.2,
            max=3600,
            metavar="SECONDS",
            callback=finite,
            show_default=False,
        ),
    ] = None,
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
    if once and interval is not None:
        raise UsageError(
            "--interval cannot be used with --once",
            why="--once prints one sample; --interval spaces the refreshes of the live view",
            fix="drop --interval, or drop --once for the live view",
        )
    interval = 2.0 if interval is None else interval
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
            print_table(TOP_COLUMNS, _top_rows(samples), title="igwlab top")
        if all(s.error for s in samples):
            from igwlab.errors import ChecksFailedError

            raise ChecksFailedError(
                f"none of the {counted(len(samples), 'model server')} answered on /metrics",
                why="; ".join(f"{s.pod}: {s.error}" for s in samples),
                fix="check each URL serves /metrics (`igwlab sim` does)"
                if url
                else "`igwlab status` shows the lab's pods; `igwlab diagnose` collects their events and logs "
                "(the API server reads /metrics through its pod proxy, which some clusters turn off)",
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


TOP_COLUMNS = [
    Column("pod"),
    Column("running", justify="right"),
    Column("waiting", justify="right"),
    Column("KV cache", justify="right"),
    Column("LoRA running", "note"),
    Column("LoRA waiting", "note"),
    Column("served", justify="right"),
    Column("note", "note"),
]


def _top_rows(samples: list[Any]) -> list[list[Any]]:
    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    return [
        [
            s.pod,
            number(s.running),
            number(s.waiting),
            "-" if s.kv_cache_usage is None else f"{s.kv_cache_usage:.0%}",
            s.running_loras or "-",
            s.waiting_loras or "-",
            number(s.requests_served),
            s.error,
        ]
        for s in samples
    ]


def _top_table(samples: list[Any]) -> Any:
    """The live view's table (redrawn in place, so it is always a table)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="igwlab top (Ctrl-C stops)", title_justify="left")
    for column in TOP_COLUMNS:
        table.add_column(column.header, justify=column.justify, no_wrap=column.kind == "name", overflow="fold")
    for row in _top_rows(samples):
        table.add_row(*(Text(cell) for cell in row))
    return table


@handle_errors
def dashboard(
    port: Annotated[
        int, typer.Option(help="Local port for the dashboard (1024 to 65535).", min=1024, max=65535, metavar="PORT")
    ] = 3000,
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
