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
