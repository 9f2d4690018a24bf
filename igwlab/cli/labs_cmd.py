"""`igwlab labs` and `igwlab labs show LAB`."""

from __future__ import annotations

from typing import Annotated

import typer

from igwlab.cli.options import JsonOption, examples, text
from igwlab.cli.output import Column, handle_errors, print_json, print_table, stdout

app = typer.Typer(
    help="List lab presets; `igwlab labs show LAB` shows one.",
    epilog=examples("igwlab labs", "igwlab labs --json", "igwlab labs show kgateway-fake-llm"),
    invoke_without_command=True,
    no_args_is_help=False,
)


@app.callback()
@handle_errors
def labs(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List the lab presets: provider, workload and GIE version of each."""
    if ctx.invoked_subcommand is not None:
        return
    from igwlab.inventory import list_labs

    summaries = list_labs()
    if json_output:
        print_json(summaries)
        return
    columns = [Column("name"), Column("provider"), Column("workload"), Column("GIE"), Column("title", "note")]
    rows = [[s[key] for key in ("name", "provider", "workload", "gie_version", "title")] for s in summaries]
    print_table(columns, rows, title="igwlab lab presets")
    stdout().print("Show one: igwlab labs show NAME   ·   Plan one: igwlab plan --lab NAME")


@app.command(
    "show",
    epilog=examples(
        "igwlab labs show kgateway-fake-llm",
        "igwlab labs show ./my-lab.yaml --json",
        "igwlab labs show istio-fake-llm --gie-version v1.5.0",
    ),
)
@handle_errors
def show(
    lab: Annotated[str, typer.Argument(help="Preset name or path of a lab file.", metavar="LAB", callback=text)],
    json_output: JsonOption = False,
    gie_version: Annotated[
        str | None,
        typer.Option("--gie-version", help="Show it on this GIE version.", metavar="VERSION", callback=text),
    ] = None,
) -> None:
    """Show one lab in full: what it demonstrates, its stack, models, routing and checks."""
    from igwlab.inventory import describe_lab

    details = describe_lab(lab, gie_version=gie_version)
    if json_output:
        print_json(details)
        return
    from igwlab.cli.render_text import print_lab_details

    print_lab_details(details)
