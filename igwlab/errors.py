"""One error hierarchy for igwlab, and the one place where errors become exit codes.

Every error carries what happened (`what`), why (`why`) and what to do next (`fix`), so the
CLI prints a message a user can act on, never a traceback. Each class has a stable `code`
(the `error.code` of the JSON envelope, see igwlab/result.py) and an exit code:

    0 ok · 1 failed · 2 bad usage or invalid input · 3 prerequisites missing · 4 timed out · 130 interrupted

Raise the most specific class; add a subclass (with its own `code`) when scripts need to tell a
new kind of failure apart. `data` optionally carries what the command found before it failed
(for example verify's report when a check failed): `--json` prints it as the envelope's `data`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


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
    code: str = "failed"

    def __init__(self, what: str, *, why: str | None = None, fix: str | None = None, data: Any = None) -> None:
        super().__init__(what)
        self.what = what
        self.why = why
        self.fix = fix
        self.data = data

    def as_dict(self) -> dict[str, Any]:
        """The envelope's `error` object: code, exit_code, message, why, hint."""
        return {
            "code": self.code,
            "exit_code": int(self.exit_code),
            "message": self.what,
            "why": self.why,
            "hint": self.fix,
        }


class UsageError(IgwlabError):
    """Bad flags or arguments."""

    exit_code = ExitCode.USAGE
    code = "usage"


class LabNotFoundError(UsageError):
    """A --lab value names neither a preset nor a readable file."""

    code = "lab-not-found"


class LabFileError(UsageError):
    """A lab file exists but is not a valid lab."""

    code = "invalid-lab"

    def __init__(self, path: str, problems: list[str], *, fix: str | None = None) -> None:
        self.path = path
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"invalid lab file {path}:\n{listing}",
            fix=fix
            or "fix the fields named above; every preset is a valid example (`igwlab labs show kv-cache-aware`)",
        )


class InvalidLabError(UsageError):
    """A lab (preset, file or flags) that cannot work once rendered: clashing names or ports."""

    code = "invalid-lab"


class UnsupportedCombinationError(UsageError):
    """The catalog knows no working stack for the requested provider, GIE version or workload."""

    code = "unsupported-combination"


class CannotWriteError(UsageError):
    """A path the user named (or the state directory) cannot be written."""

    code = "cannot-write"


class DamagedRecordError(UsageError):
    """The record of the lab that is up (`current.json` in the state directory) exists but cannot be
    read as `up` wrote it: not JSON, not an object, or a field of the wrong type."""

    code = "damaged-record"


class CatalogError(IgwlabError):
    """The packaged catalog itself is broken: a bug in igwlab, not in the user's input."""

    code = "catalog"


class PrerequisiteError(IgwlabError):
    exit_code = ExitCode.PREREQUISITES
    code = "prerequisites"


class ClusterUnreachableError(PrerequisiteError):
    """The lab's cluster does not answer (refused, reset, or silent past the request timeout, also when it
    stops mid-command), or its kubeconfig cannot be used (exit 3)."""

    code = "cluster-unreachable"


class StepTimeoutError(IgwlabError):
    exit_code = ExitCode.TIMEOUT
    code = "timeout"


class ChecksFailedError(IgwlabError):
    """The command ran, and what it measured failed (a verify check, every load request, every top target)."""

    code = "checks-failed"


class Interrupted(IgwlabError):
    """Ctrl-C: what was running stopped; re-running continues where it stopped."""

    exit_code = ExitCode.INTERRUPTED
    code = "interrupted"


INTERNAL_ERROR_CODE = "internal"
"""The envelope's error code for an unexpected exception: a bug in igwlab (exit 1)."""


def exit_code_for(error: BaseException) -> ExitCode:
    """Map any exception to the exit code the CLI returns for it."""
    if isinstance(error, IgwlabError):
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    return ExitCode.FAILED
