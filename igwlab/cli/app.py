"""The `igwlab` command. Commands are thin: parse, call the core, render, exit.

Heavy modules (pydantic, jinja2, kubernetes, httpx) are imported inside the commands, so
`igwlab --help` stays fast. `IgwlabGroup.main` is the outermost guard: whatever happens — a bad
flag, a bug, Ctrl-C — the user gets a message and a documented exit code, never a traceback,
and with --json a parseable envelope (igwlab/result.py) on stdout.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

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
from igwlab.cli.output import crash, invocation, print_envelope, reader_left, stderr, stdout


def _command_path(group: Any, argv: Sequence[str]) -> str:
    """`labs show` for `igwlab labs show X --json`: the command names among the arguments."""
    names: list[str] = []
    current = group
    for token in argv:
        if token == "--":
            break
        if token.startswith("-"):
            continue
        commands = getattr(current, "commands", None)
        if not commands or token not in commands:
            break
        names.append(token)
        current = commands[token]
    return " ".join(names)


def _json_requested(argv: Sequence[str]) -> bool:
    options = argv[: list(argv).index("--")] if "--" in argv else argv
    return "--json" in options


class IgwlabGroup(TyperGroup):
    """The root group: runs the command and maps everything that escapes it to an exit code."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        # Consoles read the terminal's width and NO_COLOR when made: make them afresh for each run.
        stdout.cache_clear()
        stderr.cache_clear()
        invocation.command = _command_path(self, argv)
        invocation.argv = argv
        json_output = _json_requested(argv)
        try:
            code = super().main(
                args=argv, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra
            )
            sys.stdout.flush()  # a reader that left shows here, not in the interpreter's last flush
        except BrokenPipeError:
            code = reader_left()
        except typer.TyperException as error:
            if type(error).__name__ == "NoArgsIsHelpError":  # a bare command group: its help, as a success
                print(error.ctx.get_help())  # type: ignore[attr-defined]
                code = 0
            else:  # the parser refused a flag or an argument: exit 2
                code = _parser_error(error, json_output)
        except typer.Abort:
            print("aborted: nothing was changed", file=sys.stderr)
            code = 1
        except Exception as error:
            code = crash(error, json_output).exit_code
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


def _parser_error(error: typer.TyperException, json_output: bool) -> int:
    """A flag or argument the parser refused: the igwlab error format on stderr (and the envelope)."""
    from igwlab.result import usage_failure

    command = invocation.command
    message = error.format_message() if hasattr(error, "format_message") else str(error)
    # Typer validates through pydantic, whose messages start with "Value error, ".
    message = message.replace("Value error, ", "")
    hint = f"`{' '.join(['igwlab', *command.split(), '-h'])}` lists the options and the values they take"
    if json_output:
        print_envelope(usage_failure(command, message, hint, error.exit_code))
    from igwlab.urls import redact_userinfo

    print(redact_userinfo(f"error: {message}\nnext: {hint}"), file=sys.stderr)
    return int(error.exit_code)


def _keep_words_whole() -> None:
    """Help text wraps at spaces only: `agentgateway-fake-llm` and URLs are never split at a hyphen."""
    try:
        from typer._click import _textwrap
    except ImportError:  # another Typer layout: its default wrapping still works
        return
    base = _textwrap.TextWrapper

    class WholeWords(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["break_on_hyphens"] = False
            super().__init__(*args, **kwargs)

    _textwrap.TextWrapper = WholeWords  # type: ignore[misc]


_keep_words_whole()

app = typer.Typer(
    name="igwlab",
    cls=IgwlabGroup,
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
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("up", epilog=lifecycle_cmds.UP_EXAMPLES)(lifecycle_cmds.up)
app.command("status", epilog=lifecycle_cmds.STATUS_EXAMPLES)(lifecycle_cmds.status)
app.command("teardown", epilog=lifecycle_cmds.TEARDOWN_EXAMPLES)(lifecycle_cmds.teardown)
app.command("doctor", epilog=lifecycle_cmds.DOCTOR_EXAMPLES)(lifecycle_cmds.doctor)
app.command("diagnose", epilog=lifecycle_cmds.DIAGNOSE_EXAMPLES)(lifecycle_cmds.diagnose)
app.add_typer(labs_cmd.app, name="labs")
app.command("plan", epilog=plan_cmd.PLAN_EXAMPLES)(plan_cmd.plan)
app.command("render", epilog=render_cmd.RENDER_EXAMPLES)(render_cmd.render)
app.command("verify", epilog=verify_cmd.VERIFY_EXAMPLES)(verify_cmd.verify)
app.command("load", epilog=observe_cmds.LOAD_EXAMPLES)(observe_cmds.load)
app.command("top", epilog=observe_cmds.TOP_EXAMPLES)(observe_cmds.top)
app.command("dashboard", epilog=observe_cmds.DASHBOARD_EXAMPLES)(observe_cmds.dashboard)
app.command("sim", epilog=sim_cmd.SIM_EXAMPLES)(sim_cmd.sim)
app.add_typer(mirror_cmd.app, name="mirror")


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print igwlab's version and exit.", is_eager=True),
) -> None:
    if version:
        from igwlab import __version__

        print(f"igwlab {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        # Bare `igwlab`: the help, on stdout, as a success.
        print(ctx.get_help())
        raise typer.Exit()


def main() -> None:
    _stop_on_sigterm()
    app()


def _stop_on_sigterm() -> None:
    """SIGTERM (`kill`, `timeout`, a service manager or CI ending the job) stops igwlab the way Ctrl-C
    does: steps cancelled, child processes stopped, partial files removed, the `interrupted` result
    (exit 130). Without it Python would die on the spot and leave all that behind."""
    import signal

    def as_interrupt(signum: int, frame: Any) -> None:
        # Whoever handles Ctrl-C at this moment handles this too: an asyncio run cancels its task (its
        # requests end cleanly), elsewhere Python's default raises KeyboardInterrupt.
        on_sigint = signal.getsignal(signal.SIGINT)
        if callable(on_sigint) and on_sigint is not signal.default_int_handler:
            on_sigint(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, as_interrupt)
