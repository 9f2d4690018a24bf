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


RECORD_FIELDS: dict[str, tuple[type, ...]] = {
    "lab": (str,),
    "lab_file": (str, type(None)),
    "selection": (dict, type(None)),
    "cluster": (str, type(None)),
    "context": (str, type(None)),
    "kubeconfig": (str, type(None)),
    "url": (str, type(None)),
    "status": (str, type(None)),
    "port_forward": (dict, type(None)),
    "ownership": (dict, type(None)),  # absent in records igwlab wrote before it recorded ownership
}
"""The fields `up` writes into current.json (igwlab/lifecycle.py) and the types each may hold."""


def read_current_lab() -> dict[str, Any] | None:
    """What the last `up` recorded (lab name, gateway URL, status...), or None when the file does not exist.

    Raises DamagedRecordError (exit 2) when the file exists but is not what `up` writes (not JSON, not an
    object, a field of the wrong type): a damaged record never passes for "no lab is up", which would
    let `teardown` leave a cluster behind.
    """
    path = current_lab_file()
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):  # no file, or no state directory at all
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise _damaged(path, f"it cannot be read: {getattr(error, 'strerror', None) or error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise _damaged(
            path, f"it is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
        ) from None
    if not isinstance(data, dict):
        raise _damaged(path, f"it holds a JSON {type(data).__name__}, not the object `up` writes")
    wrong = [
        f"{name} is {'missing' if name not in data else type(data[name]).__name__}"
        for name, types in RECORD_FIELDS.items()
        if (name == "lab" and name not in data) or not isinstance(data.get(name), types)
    ]
    if wrong:
        raise _damaged(path, f"fields of the wrong type: {', '.join(wrong)}")
    return data


def _damaged(path: Path, what: str) -> Exception:
    from igwlab.errors import DamagedRecordError

    return DamagedRecordError(
        f"the record of the lab that is up, {path}, is damaged: {what}",
        why="`igwlab up` writes it and every command that works on the lab reads it; something else changed it "
        "since, so igwlab cannot tell which lab (and which cluster) is up",
        fix="look at the file: if a lab is still up, remove it by hand (`k3d cluster delete NAME` for a k3d "
        "lab; on your own cluster, `kubectl delete namespace NAMESPACE` and `helm uninstall` its releases), "
        "then delete the file; or run `igwlab up` with the same flags after deleting it to record the lab again",
    )


def names_recorded_lab(record: dict[str, Any], reference: str) -> bool:
    """Whether `reference` (a preset name or a lab file path, as `--lab` takes) names the lab `up`
    recorded in `record` (read_current_lab): its name, or the file it was loaded from."""
    if reference == record.get("lab"):
        return True
    recorded_file = record.get("lab_file")
    return isinstance(recorded_file, str) and Path(reference).expanduser().resolve() == Path(recorded_file)
