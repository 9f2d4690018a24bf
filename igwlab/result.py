"""The one versioned JSON envelope every `igwlab COMMAND --json` prints, on success and on failure.

Shape (`igwlab_result_version` 1)::

    {
      "igwlab_result_version": 1,
      "command": "labs show",       # the command after `igwlab`, subcommands joined by a space
      "ok": true,                   # true exactly when the exit code is 0
      "error": null,                # or {"code", "exit_code", "message", "why", "hint"}
      "data": {...}                 # the command's result; null when it failed before it had one
    }

Rules every command keeps:

- stdout holds the envelope and nothing else (progress and messages go to stderr), so
  `igwlab X --json | jq .data` always parses — errors included, bad flags included.
- `ok` is false exactly when the exit code is not 0, and then `error` is set: `exit_code` is
  the process's exit code (0 ok · 1 failed · 2 usage · 3 prerequisites · 4 timeout · 130
  interrupted), `code` a stable word scripts can match (igwlab/errors.py: `usage`,
  `lab-not-found`, `invalid-lab`, `unsupported-combination`, `cannot-write`, `prerequisites`,
  `timeout`, `checks-failed`, `interrupted`, `failed`, and `internal` for a bug in igwlab).
- `data` may be present on failure too: verify's report with its failed checks, load's figures
  when no request succeeded.
- Long-running commands (`sim`, `dashboard`) print their envelope once, when they are ready.

How a command uses it (igwlab/cli/output.py does the printing; this module never imports Typer):
decorate the command with `@cli_command`, give it the shared `JsonOption`, call
`emit(data)` for the result, and raise an `IgwlabError` (with `data=` when there is a partial
result) for a failure; the decorator prints the envelope or the human message and exits with
the error's code. Unexpected exceptions become an `internal` error (see igwlab/crashes.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from igwlab.errors import INTERNAL_ERROR_CODE, ExitCode, IgwlabError

RESULT_VERSION = 1
VERSION_FIELD = "igwlab_result_version"


@dataclass(frozen=True)
class ErrorInfo:
    """The envelope's `error` object."""

    code: str
    exit_code: int
    message: str
    why: str | None = None
    hint: str | None = None

    @classmethod
    def of(cls, error: IgwlabError) -> ErrorInfo:
        return cls(error.code, int(error.exit_code), error.what, error.why, error.fix)

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "exit_code": self.exit_code,
            "message": self.message,
            "why": self.why,
            "hint": self.hint,
        }


@dataclass(frozen=True)
class Envelope:
    """One command's result: `as_dict()` is what `--json` prints."""

    command: str
    data: Any = None
    error: ErrorInfo | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def exit_code(self) -> int:
        return int(ExitCode.OK) if self.error is None else self.error.exit_code

    def as_dict(self) -> dict[str, Any]:
        return {
            VERSION_FIELD: RESULT_VERSION,
            "command": self.command,
            "ok": self.ok,
            "error": None if self.error is None else self.error.as_dict(),
            "data": self.data,
        }

    def to_json(self) -> str:
        # default=str: a path or an enum in the data never turns a result into a crash.
        return json.dumps(self.as_dict(), indent=2, default=str)


def success(command: str, data: Any) -> Envelope:
    return Envelope(command, data)


def failure(command: str, error: IgwlabError) -> Envelope:
    return Envelope(command, error.data, ErrorInfo.of(error))


def usage_failure(command: str, message: str, hint: str | None = None, exit_code: int = ExitCode.USAGE) -> Envelope:
    """A flag or argument the parser refused (exit 2)."""
    return Envelope(command, None, ErrorInfo("usage", int(exit_code), message, None, hint))


def internal_failure(command: str, message: str, why: str, hint: str) -> Envelope:
    """An unexpected exception: a bug in igwlab (exit 1)."""
    return Envelope(command, None, ErrorInfo(INTERNAL_ERROR_CODE, int(ExitCode.FAILED), message, why, hint))
