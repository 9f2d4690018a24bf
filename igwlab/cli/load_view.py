"""How `igwlab load` prints its report: a section per stage, and a table across stages."""

from __future__ import annotations

from typing import Any

from igwlab.cli.output import stderr, stdout

LATENCY_ROWS = (
    ("total", "latency_s"),
    ("first token (TTFT)", "ttft_s"),
    ("between tokens (ITL)", "itl_s"),
    ("per output token (TPOT)", "tpot_s"),
)


def progress(message: str) -> None:
    from rich.markup import escape

    stderr().print(f"[dim]{escape(message)}[/]")


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    milliseconds = value * 1000
    return f"{milliseconds:.1f} ms" if milliseconds < 10 else f"{milliseconds:.0f} ms"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_load(result: dict[str, Any]) -> None:
    from rich.markup import escape

    out = stdout()
    workers = result["workers"]
    out.print(
        f"[bold]igwlab load[/]: {escape(result['model'])} at {escape(result['url'])}, {result['mode']}, "
        f"{workers} worker process{'es' if workers > 1 else ''}, seed {result['seed']}"
    )
    for stage in result["stages"]:
        print_stage(stage, len(result["stages"]))
    if len(result["stages"]) > 1:
        out.print(stages_table(result["stages"]))


def print_stage(stage: dict[str, Any], total: int) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = stdout()
    status = ", ".join(f"{code}: {count}" for code, count in stage["status"].items()) or "none sent"
    out.print()
    out.print(
        f"[bold]stage {stage['stage']}/{total}[/] — {stage['label']} for {stage['duration_s']:g}s: "
        f"{stage['requests']} sent, {stage['succeeded']} succeeded ({status})"
    )
    for outcome, message in stage["errors"].items():
        out.print(f"  [red]{escape(outcome)}[/]: {escape(message)}")
    pacing = stage["pacing"]
    line = f"pacing: achieved {_rate(pacing['achieved_rps'])} req/s"
    if pacing["target_rps"] is not None:
        line += f" of {pacing['target_rps']:g}"
    lag = pacing["send_lag_s"]
    if lag:
        line += f"; send lag p50 {ms(lag['p50'])}, p99 {ms(lag['p99'])} (trustworthy up to {ms(pacing['lag_limit_s'])})"
    line += f"; {stage['connections_opened']} new connections"
    out.print(line)
    if pacing["warning"]:
        out.print(f"[yellow]warning:[/] {escape(pacing['warning'])}")
    latency = Table(title="latency", title_justify="left")
    for column in ("", "mean", "p50", "p90", "p99", "max"):
        latency.add_column(column, justify="right")
    for label, key in LATENCY_ROWS:
        row = stage[key] or {}
        latency.add_row(label, *(ms(row.get(p)) for p in ("mean", "p50", "p90", "p99", "max")))
    out.print(latency)
    throughput = stage["throughput"]
    out.print(
        f"throughput: {_rate(throughput['requests_per_s'])} req/s answered, "
        f"{_rate(throughput['output_tokens_per_s'])} output tokens/s "
        f"(server usage report for {throughput['usage_reported']} of {stage['succeeded']})"
    )
    goodput = stage["goodput"]
    if goodput:
        objectives = ", ".join(f"{name} ≤ {ms(limit)}" for name, limit in goodput["objectives_s"].items())
        met = ", ".join(f"{name} {count}" for name, count in goodput["met"].items())
        out.print(
            f"goodput ({objectives}): {goodput['good']} of {stage['requests']} ({goodput['share']:.0%}), "
            f"{_rate(goodput['rps'])} req/s; within each: {met}"
        )
    if len(stage["by_class"]) > 1:
        for klass, data in stage["by_class"].items():
            outcomes = ", ".join(f"{k}: {v}" for k, v in data["outcomes"].items())
            p50 = ms((data["latency_s"] or {}).get("p50"))
            out.print(f"  {klass}: {data['requests']} requests ({outcomes}); total p50 {p50}")
    pods = Table(title="which pods served each prefix", title_justify="left")
    pods.add_column("prefix")
    pods.add_column("top pod share", justify="right")
    pods.add_column("pods (requests)", overflow="fold")
    for prefix, data in stage["per_prefix"].items():
        pods.add_row(prefix, f"{data['top_pod_share']:.0%}", ", ".join(f"{p} {n}" for p, n in data["pods"].items()))
    out.print(pods)


def _target(stage: dict[str, Any]) -> str:
    target = stage["target"]
    if target.get("rps") is not None:
        return f"{target['rps']:g}/s"
    return f"{target['concurrency']} conc"


def stages_table(stages: list[dict[str, Any]]) -> Any:
    from rich import box
    from rich.table import Table

    poisson = any(stage["target"].get("arrival") == "poisson" for stage in stages)
    table = Table(
        title=f"stages{' (Poisson arrivals)' if poisson else ''}: latency p50/p99 and TTFT p50; "
        "! = pacing not trustworthy",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in ("#", "target", "sent/s", "lag p99", "p50", "p99", "TTFT", "tok/s"):
        table.add_column(column, justify="right", no_wrap=True)
    with_goodput = any(stage["goodput"] for stage in stages)
    if with_goodput:
        table.add_column("goodput", justify="right", no_wrap=True)
    for stage in stages:
        lag = stage["pacing"]["send_lag_s"]
        cells = [
            str(stage["stage"]),
            _target(stage),
            _rate(stage["pacing"]["achieved_rps"]),
            (ms(lag["p99"]) + ("" if stage["pacing"]["trustworthy"] else " !")) if lag else "-",
            ms((stage["latency_s"] or {}).get("p50")),
            ms((stage["latency_s"] or {}).get("p99")),
            ms((stage["ttft_s"] or {}).get("p50")),
            f"{stage['throughput']['output_tokens_per_s']:.0f}" if stage["throughput"]["output_tokens_per_s"] else "-",
        ]
        if with_goodput:
            cells.append(f"{stage['goodput']['share']:.0%}" if stage["goodput"] else "-")
        table.add_row(*cells)
    return table
