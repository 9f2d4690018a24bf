"""`igwlab labs` and `igwlab labs show LAB`."""

from __future__ import annotations

from typing import Annotated

import typer

from igwlab.cli.options import JsonOption
from igwlab.cli.output import handle_errors, print_json, stdout

app = typer.Typer(
    help="List lab presets; `igwlab labs show LAB` shows one.",
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
    from rich.table import Table

    table = Table(title="igwlab lab presets", title_justify="left")
    for column in ("name", "provider", "workload", "GIE", "title"):
        table.add_column(column, overflow="fold")
    for summary in summaries:
        table.add_row(
            summary["name"], summary["provider"], summary["workload"], summary["gie_version"], summary["title"]
        )
    stdout().print(table)
    stdout().print("Show one: igwlab labs show NAME   ·   Plan one: igwlab plan --lab NAME")


@app.command("show")
@handle_errors
def show(
    lab: Annotated[str, typer.Argument(help="Preset name or path of a lab file.")],
    json_output: JsonOption = False,
    gie_version: Annotated[str | None, typer.Option("--gie-version", help="Show it on this GIE version.")] = None,
) -> None:
    """Show one lab in full: what it demonstrates, its stack, models, routing and checks."""
    from igwlab.inventory import describe_lab

    details = describe_lab(lab, gie_version=gie_version)
    if json_output:
        print_json(details)
        return
    from igwlab.cli.render_text import print_lab_details

    print_lab_details(details)
