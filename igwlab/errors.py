"""One error hierarchy for igwlab, and the one place where errors become exit codes.

Every error carries what happened, why, and what to do next, so the CLI can print a
message a user can act on without a traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    PREREQUISITES = 3
    TIMEOUT = 4
    INTERRUPTED = 130


class IgwlabError(Exception):
    """Base of every error igwlab reports to a user."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, what: str, *, why: str | None = None, fix: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.why = why
        self.fix = fix

    def as_dict(self) -> dict[str, object]:
        return {
            "type": type(self).__name__,
            "message": self.what,
            "why": self.why,
            "fix": self.fix,
            "exit_code": int(self.exit_code),
        }


class UsageError(IgwlabError):
    """Bad flags or arguments."""

    exit_code = ExitCode.USAGE


class LabNotFoundError(UsageError):
    """A --lab value names neither a preset nor a readable file."""


class LabFileError(UsageError):
    """A lab file exists but is not a valid lab."""

    def __init__(self, path: str, problems: list[str], *, fix: str | None = None) -> None:
        self.path = path
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"invalid lab file {path}:\n{listing}",
            fix=fix or "fix the fields named above; `igwlab labs show <preset>` prints a valid example",
        )


class UnsupportedCombinationError(UsageError):
    """The catalog knows no working stack for the requested provider, GIE version or workload."""


class CatalogError(IgwlabError):
    """The packaged catalog itself is broken: a bug in igwlab, not in the user's input."""


class PrerequisiteError(IgwlabError):
    exit_code = ExitCode.PREREQUISITES


class StepTimeoutError(IgwlabError):
    exit_code = ExitCode.TIMEOUT


def exit_code_for(error: BaseException) -> ExitCode:
    """Map any exception to the exit code the CLI returns for it."""
    if isinstance(error, IgwlabError):
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    return ExitCode.FAILED
