"""Human-readable (rich) views of lab details, plans and verify reports.

Every cell holds `Text`, never markup: lab files and servers supply these strings, and a `[` in
them must print as itself. Names and URLs sit in columns that do not wrap; notes fold instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text

from igwlab.cli.output import Column, print_table, stdout

if TYPE_CHECKING:  # `labs show` needs neither: importing plan would load the renderer and jinja2
    from igwlab.plan import Plan
    from igwlab.verify.report import Report


def print_lab_details(details: dict[str, Any]) -> None:
    stack = details["stack"]
    stdout().print(Text(f"{details['name']}: {details['title']}", style="bold"))
    if details["description"]:
        stdout().print(Text(details["description"]))
    stdout().print()
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
        stdout().print(Text.assemble((f"{label:<14}", "dim"), value), soft_wrap=True)

    print_table(
        [
            Column("client model name"),
            Column("object"),
            Column("criticality"),
            Column("priority"),
            Column("targets", "note"),
        ],
        [
            [
                model["name"],
                model["object"],
                model["criticality"],
                model["priority"],
                ", ".join(f"{t['name']} ({t['weight']})" for t in model["targets"]) or "-",
            ]
            for model in details["models"]
        ],
        title="models",
    )
    stdout().print(Text.assemble(("verify checks: ", "dim"), ", ".join(details["checks"]) or "-"))
    for note in stack["notes"]:
        stdout().print(Text.assemble(("note: ", "yellow"), note))


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
        stdout().print(Text.assemble(("override: ", "yellow"), override))
    mirrors = {str(o.mirror) for step in plan.steps for o in step.artifacts if o.mirror is not None}
    for mirror in sorted(mirrors):
        what = "CRDs, charts and images" if any(s.kind == "images" for s in plan.steps) else "CRDs and charts"
        missing = sum(o.missing for step in plan.steps for o in step.artifacts)
        note = Text(f"mirror {mirror}: {what} come from its files, each verified by sha256 before use")
        if missing:
            note.append("; ").append(f"{missing} MISSING", style="bold red")
            note.append(" (`igwlab mirror check` names the fix)")
        stdout().print(note, soft_wrap=True)
    # Steps as blocks, not table cells: commands and URLs print whole on their own lines (a terminal
    # may wrap them visually, but they copy as one line).
    out = stdout()
    for wave in plan.waves():
        together = " (these run concurrently)" if len(wave) > 1 else ""
        out.print(Text(f"wave {wave[0].wave}{together}", style="bold"))
        for step in wave:
            out.print(Text.assemble("  ", (step.id, "cyan"), f" - {step.title}"), soft_wrap=True)
            lines: list[str] = []
            if step.command:
                lines.append("$ " + " ".join(step.command))
            lines += [f"apply {url}" for url in step.urls]
            for release in step.releases:
                source = f"{release['repo']} {release['chart']}" if "repo" in release else release["chart"]
                lines.append(f"helm chart {source} {release['version']}, values {release['values_file']}")
            lines += [f"  {origin.short()}" for origin in step.artifacts if origin.from_mirror]
            lines += [f"apply {ref}" for ref in step.objects]
            lines += [f"waits for {condition}" for condition in step.waits_for]
            for entry in lines:
                out.print(Text("    " + entry), soft_wrap=True)
    stdout().print(Text.assemble(("gateway URL once up: ", "dim"), plan.url))
    stdout().print(Text.assemble(("objects and values as YAML: ", "dim"), f"igwlab render --lab {plan.lab} --out DIR"))


_STATUS_STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "skip": "dim"}


def print_verify_report(report: Report) -> None:
    stdout().print(Text(f"igwlab verify: lab {report.lab} at {report.url}", style="bold"))
    print_table(
        [Column("check"), Column("result"), Column("detail", "note")],
        [
            [check.name, Text(check.status.upper(), style=_STATUS_STYLE[check.status]), check.detail]
            for check in report.checks
        ],
    )
    # Hints hold kubectl commands and names: whole lines below the table, never folded inside a cell.
    for check in report.checks:
        if check.hint and check.status in ("fail", "warn"):
            label = Text(f"hint {check.name}: ", style=_STATUS_STYLE[check.status])
            stdout().print(Text.assemble(label, check.hint), soft_wrap=True)
    counts = report.counts()
    summary = f"{counts['pass']} passed, {counts['fail']} failed, {counts['warn']} warned, {counts['skip']} skipped"
    if report.passed:
        stdout().print(Text(f"PASSED: {summary}", style="bold green"))
    else:
        stdout().print(Text(f"FAILED: {summary}", style="bold red"))
