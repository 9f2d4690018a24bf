"""Console output and the error guard shared by every command.

Data goes to stdout, messages and errors to stderr. A command:

    @handle_errors
    def mycommand(..., json_output: JsonOption = False) -> None:
        data = core.do_it(...)               # raises IgwlabError subclasses on failure
        if json_output:
            print_json(data)                 # the versioned envelope of igwlab/result.py
        else:
            stdout().print(table_of(data))

`handle_errors` turns an `IgwlabError` into the message (what, why, next) on stderr — plus the
envelope on stdout with --json — and the error's exit code; Ctrl-C into exit 130; any other
exception into one line naming the crash file that holds the traceback, exit 1. The app's group
(igwlab/cli/app.py) does the same for what happens outside a command (bad flags: exit 2, with
the envelope when --json is among the arguments).

Also for every command (tests/test_cli_contract.py checks them): register it with
`epilog=examples(...)` (igwlab/cli/options.py); give each option a metavar (`URL`, `SECONDS`...) and
a callback that refuses what its type lets through (`finite`, `text`); print tables with
`print_table([Column("name"), Column("note", "note")], rows)`, which never splits a name or URL; put
no outside text (lab files, server answers) into rich markup — use `Text`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import IO, TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, cast

import typer

from igwlab.errors import IgwlabError, Interrupted
from igwlab.result import Envelope, failure, internal_failure, success

if TYPE_CHECKING:
    from rich.console import Console

DEBUG_ENV = "IGWLAB_DEBUG"


@dataclass
class Invocation:
    """What the group's `main` saw: set before a command runs, read by the guard and `print_json`."""

    command: str = ""
    argv: list[str] = field(default_factory=list)


invocation = Invocation()


def _styles_off() -> bool:
    # https://no-color.org: present and not empty disables colour; igwlab drops every style then.
    return bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb"


def _width() -> int | None:
    """The terminal's width as rich finds it, unless $COLUMNS says something unusable (0, negative, tiny):
    then 80, so that nothing, errors included, is swallowed."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        return None
    return 80 if columns < 20 else None


@cache
def stdout() -> Console:
    """The console for results; rich loads on first use, which keeps `--help` fast."""
    from rich.console import Console

    class ResultConsole(Console):
        def on_broken_pipe(self) -> None:
            # rich would exit 1; a reader that left is no failure: the guard ends the command with exit 0.
            self.quiet = True
            raise BrokenPipeError

    return ResultConsole(
        file=cast("IO[str]", _Redacting("stdout")),
        highlight=False,
        soft_wrap=False,
        width=_width(),
        color_system=None if _styles_off() else "auto",
    )


class _Redacting:
    """sys.stdout or sys.stderr as they are at each write (tests swap them), with the userinfo of every URL
    redacted: a password given in --url is sent, never printed."""

    def __init__(self, name: Literal["stdout", "stderr"]) -> None:
        self.name = name

    @property
    def stream(self) -> Any:
        return getattr(sys, self.name)

    def write(self, text: str) -> int:
        from igwlab.urls import redact_userinfo

        return int(self.stream.write(redact_userinfo(text)))

    def __getattr__(self, attribute: str) -> Any:  # isatty, fileno, flush, encoding: the stream's own
        return getattr(self.stream, attribute)


@cache
def stderr() -> Console:
    from rich.console import Console

    return Console(
        file=cast("IO[str]", _Redacting("stderr")),
        highlight=False,
        soft_wrap=True,
        width=_width(),
        color_system=None if _styles_off() else "auto",
    )


@dataclass(frozen=True)
class Column:
    """A table column: `name` cells (names, URLs, statuses, numbers) are never wrapped or cut; `note`
    cells fold to the width that is left."""

    header: str
    kind: Literal["name", "note"] = "name"
    justify: Literal["left", "right"] = "left"


def print_table(
    columns: list[Column], rows: list[list[Any]], title: str | None = None, console: Console | None = None
) -> None:
    """Rows as a table when the terminal is wide enough to show every name whole; otherwise one
    block per row (`name`, then `header: value` lines), so no name or URL is ever split or cut.
    Cells are strings or rich Text, never markup."""
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    console = console or stdout()
    cells = [[cell if isinstance(cell, Text) else Text(str(cell)) for cell in row] for row in rows]
    # Names need their whole length; notes their longest word (they wrap at spaces, so no word is split).
    widths = [
        max(
            [
                cell_len(column.header),
                *(
                    cell_len(row[i].plain)
                    if column.kind == "name"
                    else max(map(cell_len, row[i].plain.split() or [""]))
                    for row in cells
                ),
            ]
        )
        for i, column in enumerate(columns)
    ]
    if sum(widths) + 3 * len(columns) + 1 <= console.width:
        table = Table(title=title, title_justify="left")
        for column in columns:
            if column.kind == "name":
                table.add_column(column.header, no_wrap=True, justify=column.justify)
            else:
                table.add_column(column.header, overflow="fold", justify=column.justify)
        for row in cells:
            table.add_row(*row)
        console.print(table)
        return
    if title:
        console.print(Text(title, style="italic"))
    for row in cells:
        heading = row[0].copy()
        heading.stylize("bold")
        console.print(heading, soft_wrap=True)
        for column, cell in zip(columns[1:], row[1:], strict=True):
            if cell.plain:
                console.print(Text.assemble(f"  {column.header}: ", cell), soft_wrap=True)


P = ParamSpec("P")
R = TypeVar("R")


def print_json(data: Any) -> None:
    """Print `data` as the command's successful result, inside the versioned envelope."""
    _write_stdout(success(invocation.command, data).to_json())


def print_envelope(envelope: Envelope) -> None:
    _write_stdout(envelope.to_json())


def _write_stdout(text: str) -> None:
    # Plain print: rich would wrap long lines and break the JSON for pipes.
    from igwlab.urls import redact_userinfo

    print(redact_userinfo(text), flush=True)


def report_error(error: IgwlabError) -> None:
    from rich.markup import escape

    stderr().print(f"[bold red]error:[/] {escape(error.what)}")
    if error.why:
        stderr().print(f"[dim]why:[/] {escape(error.why)}")
    if error.fix:
        stderr().print(f"[green]next:[/] {escape(error.fix)}")


def fail(error: IgwlabError, json_output: bool) -> typer.Exit:
    """Report `error` (and print its envelope with --json); return the Exit to raise."""
    if json_output:
        print_envelope(failure(invocation.command, error))
    report_error(error)
    return typer.Exit(int(error.exit_code))


def interrupted(json_output: bool) -> typer.Exit:
    """Ctrl-C in a command: the hint names that command (`igwlab verify`, `igwlab mirror save`...)."""
    name = f"igwlab {invocation.command}" if invocation.command else "igwlab"
    return fail(Interrupted("interrupted", fix=f"run `{name}` again"), json_output)


def crash(error: BaseException, json_output: bool) -> typer.Exit:
    """An exception nobody expected: one line for the user, the traceback in a crash file, exit 1."""
    from igwlab.crashes import write_crash_file

    path = write_crash_file(invocation.command or "igwlab", error, invocation.argv)
    summary = " ".join(f"{type(error).__name__}: {error}".split())[:300]
    where = f"the full traceback is in {path}" if path else "the traceback could not be written anywhere"
    if json_output:
        print_envelope(
            internal_failure(
                invocation.command,
                f"unexpected {summary}",
                "this is a bug in igwlab",
                f"{where}; please report it with that file",
            )
        )
    if os.environ.get(DEBUG_ENV):
        import traceback

        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    from igwlab.urls import redact_userinfo

    message = f"error: unexpected {summary} — this is a bug in igwlab; {where} (please report it)"
    print(redact_userinfo(message), file=sys.stderr)
    return typer.Exit(1)


def reader_left() -> int:
    """stdout's reader closed the pipe (`igwlab plan | head -1`): stop quietly with exit 0, as other
    command-line tools do; what is still buffered goes nowhere instead of failing at exit."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """The guard every command wears: igwlab errors, Ctrl-C and bugs become a message and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        json_output = bool(kwargs.get("json_output"))
        try:
            return command(*args, **kwargs)
        except IgwlabError as error:
            raise fail(error, json_output) from None
        except KeyboardInterrupt:
            raise interrupted(json_output) from None
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except BrokenPipeError:
            raise typer.Exit(reader_left()) from None
        except Exception as error:
            raise crash(error, json_output) from None

    return wrapper
