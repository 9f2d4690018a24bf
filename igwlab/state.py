"""igwlab's state directory: run records and what `up` left for later commands (the gateway URL)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def state_dir() -> Path:
    """`$IGWLAB_STATE_DIR`, else `$XDG_STATE_HOME/igwlab`, else `~/.local/state/igwlab`."""
    override = os.environ.get("IGWLAB_STATE_DIR")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "igwlab"


def ensure_writable() -> Path:
    """The state directory, created; CannotWriteError (exit 2) when it cannot be written.

    `up` and `teardown` call this before they change anything, so a read-only or mistyped
    `$IGWLAB_STATE_DIR` stops them with the fix instead of half-way through.
    """
    from igwlab.errors import CannotWriteError

    directory = state_dir()
    probe = directory / ".write-test"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_text("", encoding="utf-8")
        probe.unlink()
    except OSError as error:
        source = "$IGWLAB_STATE_DIR" if os.environ.get("IGWLAB_STATE_DIR") else "igwlab's state directory"
        raise CannotWriteError(
            f"cannot write {source} {directory}: {error.strerror or error}",
            why="igwlab keeps run records, kubeconfigs and the lab that is up there",
            fix="set IGWLAB_STATE_DIR to a directory you can write",
        ) from None
    return directory


def current_lab_file() -> Path:
    return state_dir() / "current.json"


def read_current_lab() -> dict[str, Any] | None:
    """What the last `up` recorded (lab name, gateway URL), or None when nothing is up."""
    path = current_lab_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def names_recorded_lab(record: dict[str, Any], reference: str) -> bool:
    """Whether `reference` (a preset name or a lab file path, as `--lab` takes) names the lab `up`
    recorded in `record` (read_current_lab): its name, or the file it was loaded from."""
    if reference == record.get("lab"):
        return True
    recorded_file = record.get("lab_file")
    return isinstance(recorded_file, str) and Path(reference).expanduser().resolve() == Path(recorded_file)
