"""Console output shared by the commands: data to stdout, messages and errors to stderr."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer

from igwlab.errors import IgwlabError, exit_code_for

if TYPE_CHECKING:
    from rich.console import Console


@cache
def stdout() -> Console:
    """The console for results; rich loads on first use, which keeps `--help` fast."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


@cache
def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


P = ParamSpec("P")
R = TypeVar("R")


def print_json(data: Any) -> None:
    # Plain print: rich would wrap long lines and break the JSON for pipes.
    print(json.dumps(data, indent=2))


def report_error(error: IgwlabError) -> None:
    from rich.markup import escape

    stderr().print(f"[bold red]error:[/] {escape(error.what)}")
    if error.why:
        stderr().print(f"[dim]why:[/] {escape(error.why)}")
    if error.fix:
        stderr().print(f"[green]next:[/] {escape(error.fix)}")


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn igwlab errors into a message and the exit code of DESIGN.md; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except IgwlabError as error:
            report_error(error)
            raise typer.Exit(int(error.exit_code)) from None
        except KeyboardInterrupt:
            stderr().print("interrupted")
            raise typer.Exit(int(exit_code_for(KeyboardInterrupt()))) from None

    return wrapper
