"""The `igwlab` command. Commands are thin: parse, call the core, render, exit.

Heavy modules (pydantic, jinja2, and later kubernetes, httpx) are imported inside the commands,
so `igwlab --help` stays fast.
"""

from __future__ import annotations

import typer

from igwlab.cli import (
    labs_cmd,
    lifecycle_cmds,
    mirror_cmd,
    observe_cmds,
    plan_cmd,
    render_cmd,
    sim_cmd,
    verify_cmd,
)

app = typer.Typer(
    name="igwlab",
    help=(
        "Labs for the Kubernetes Gateway API Inference Extension.\n\n"
        "`igwlab up` brings a lab up on a new k3d cluster (or an existing one with --context), "
        "`igwlab verify` proves inference routing works, `igwlab teardown` removes it. Pick a lab "
        "with --lab, or a gateway with --provider; `igwlab labs` lists the presets and `igwlab plan` "
        "shows every step `up` runs."
    ),
    epilog=(
        "Examples:  igwlab up --provider kgateway  ·  igwlab verify  ·  igwlab teardown --yes  ·  "
        "igwlab up --context my-cluster --lab kv-cache-aware"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("up")(lifecycle_cmds.up)
app.command("status")(lifecycle_cmds.status)
app.command("teardown")(lifecycle_cmds.teardown)
app.command("doctor")(lifecycle_cmds.doctor)
app.command("diagnose")(lifecycle_cmds.diagnose)
app.add_typer(labs_cmd.app, name="labs")
app.command("plan")(plan_cmd.plan)
app.command("render")(render_cmd.render)
app.command("verify")(verify_cmd.verify)
app.command("load")(observe_cmds.load)
app.command("top")(observe_cmds.top)
app.command("dashboard")(observe_cmds.dashboard)
app.command("sim")(sim_cmd.sim)
app.add_typer(mirror_cmd.app, name="mirror")


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print igwlab's version and exit.", is_eager=True),
) -> None:
    if version:
        from igwlab import __version__

        print(f"igwlab {__version__}")
        raise typer.Exit()


def main() -> None:
    app()
