"""Human-readable (rich) views of lab details and plans."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from igwlab.cli.output import stdout
from igwlab.plan import Plan
from igwlab.verify.report import Report


def print_lab_details(details: dict[str, Any]) -> None:
    stack = details["stack"]
    stdout().print(Text(f"{details['name']}: {details['title']}", style="bold"))
    if details["description"]:
        stdout().print(details["description"])
    stdout().print()
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    gateway_api = stack["gateway_api"]
    for label, value in (
        ("provider", f"{details['provider']} {stack['provider_version']} (GatewayClass {stack['gateway_class']})"),
        ("GIE", f"{stack['gie_version']} ({stack['api_era']} era: {stack['pool_api']}, {stack['model_object']})"),
        (
            "Gateway API",
            f"{gateway_api['version']} {gateway_api['channel']} (installed by {gateway_api['installed_by']})",
        ),
        ("workload", _workload_line(details["workload"], stack["simulator"])),
        ("pool", details["pool"]["name"]),
        ("namespace", details["namespace"]),
        ("URL after up", details["url"]),
    ):
        facts.add_row(label, value)
    stdout().print(facts)

    models = Table(title="models", title_justify="left")
    for column in ("client model name", "object", "criticality", "priority", "targets"):
        models.add_column(column)
    for model in details["models"]:
        targets = ", ".join(f"{t['name']} ({t['weight']})" for t in model["targets"]) or "-"
        models.add_row(model["name"], model["object"], model["criticality"], str(model["priority"]), targets)
    stdout().print(models)
    stdout().print(f"[dim]verify checks:[/] {', '.join(details['checks']) or '-'}")
    for note in stack["notes"]:
        stdout().print(f"[yellow]note:[/] {note}")


def _workload_line(workload: dict[str, Any], simulator_image: str) -> str:
    kind = "llm-d-inference-sim" if workload["kind"] == "sim" else "vLLM CPU"
    loras = [lora["name"] for lora in workload["loras"]]
    line = f"{workload['replicas']} x {kind} serving {workload['served_model']}"
    if loras:
        line += f" + LoRA {', '.join(loras)}"
    if workload["kind"] == "sim":
        line += f" [{simulator_image}]"
    return line


def print_plan(plan: Plan) -> None:
    stdout().print(
        Text(
            f"Plan for lab {plan.lab}: {plan.provider} ({plan.stack}), GIE {plan.gie_version}, "
            f"Gateway API {plan.gateway_api}, workload {plan.workload}",
            style="bold",
        )
    )
    for override in plan.overrides:
        stdout().print(f"[yellow]override:[/] {override}")
    mirrors = {str(o.mirror) for step in plan.steps for o in step.artifacts if o.mirror is not None}
    for mirror in sorted(mirrors):
        what = "CRDs, charts and images" if any(s.kind == "images" for s in plan.steps) else "CRDs and charts"
        missing = sum(o.missing for step in plan.steps for o in step.artifacts)
        line = f"mirror {mirror}: {what} come from its files, each verified by sha256 before use"
        if missing:
            line += f"; [bold red]{missing} MISSING[/] (`igwlab mirror check` names the fix)"
        stdout().print(line)
    table = Table(show_lines=True)
    table.add_column("wave", justify="right")
    table.add_column("step", no_wrap=True)
    table.add_column("does", overflow="fold")
    table.add_column("waits for", overflow="fold")
    for step in plan.steps:
        does = [step.title]
        if step.command:
            does.append("$ " + " ".join(step.command))
        does += [f"apply {url}" for url in step.urls]
        for release in step.releases:
            source = f"{release['repo']} {release['chart']}" if "repo" in release else release["chart"]
            does.append(f"chart {source} {release['version']}, values {release['values_file']}")
        does += [f"  {origin.short()}" for origin in step.artifacts if origin.from_mirror]
        does += [f"apply {ref}" for ref in step.objects]
        table.add_row(str(step.wave), step.id, "\n".join(does), "\n".join(step.waits_for))
    stdout().print(table)
    parallel = [", ".join(s.id for s in wave) for wave in plan.waves() if len(wave) > 1]
    if parallel:
        stdout().print("[dim]steps that may run concurrently:[/] " + " | ".join(parallel))
    stdout().print(f"[dim]gateway URL once up:[/] {plan.url}")
    stdout().print("[dim]objects and values as YAML:[/] igwlab render --lab " + plan.lab + " --out DIR")


_STATUS_STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "skip": "dim"}


def print_verify_report(report: Report) -> None:
    stdout().print(Text(f"igwlab verify: lab {report.lab} at {report.url}", style="bold"))
    table = Table(show_lines=False)
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("detail", overflow="fold")
    table.add_column("hint", overflow="fold")
    for check in report.checks:
        style = _STATUS_STYLE[check.status]
        table.add_row(check.name, Text(check.status.upper(), style=style), check.detail, check.hint)
    stdout().print(table)
    counts = report.counts()
    summary = f"{counts['pass']} passed, {counts['fail']} failed, {counts['warn']} warned, {counts['skip']} skipped"
    if report.passed:
        stdout().print(Text(f"PASSED: {summary}", style="bold green"))
    else:
        stdout().print(Text(f"FAILED: {summary}", style="bold red"))
