"""Crash files: where the full traceback of an unexpected exception goes, so the user sees one line.

`write_crash_file` writes `crashes/YYYYMMDDTHHMMSSffffffZ-COMMAND.txt` under the state directory
(igwlab/state.py), or under the system's temporary directory when the state directory cannot be
written, and keeps the newest `KEEP` files. It never raises: a crash while reporting a crash
would hide the first one.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import traceback
from datetime import datetime, timezone
from pathlib import Path

from igwlab.state import state_dir

KEEP = 20
_SECRET_FLAG = re.compile(r"(?i)(token|password|secret|key)")


def redact_argv(argv: list[str] | tuple[str, ...]) -> list[str]:
    """argv with the value of every flag that looks secret (`--litellm-key`, `--hf-token=...`) as `***`."""
    redacted: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            redacted.append("***")
            hide_next = False
            continue
        if arg.startswith("--") and _SECRET_FLAG.search(arg.split("=", 1)[0]):
            if "=" in arg:
                redacted.append(arg.split("=", 1)[0] + "=***")
                continue
            hide_next = True
        redacted.append(arg)
    return redacted


def write_crash_file(command: str, error: BaseException, argv: list[str] | None = None) -> Path | None:
    """The path of the file holding `error`'s traceback, or None when nothing could be written."""
    from igwlab import __version__

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    slug = re.sub(r"[^a-z0-9]+", "-", command.lower()).strip("-") or "igwlab"
    from igwlab.urls import redact_userinfo

    text = redact_userinfo(
        f"igwlab {__version__} on Python {sys.version.split()[0]}\n"
        f"command: igwlab {' '.join(redact_argv(argv)) if argv is not None else command}\n\n"
        + "".join(traceback.format_exception(type(error), error, error.__traceback__))
    )
    for folder in (state_dir() / "crashes", Path(tempfile.gettempdir()) / f"igwlab-crashes-{os.getuid()}"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{stamp}-{slug}.txt"
            path.write_text(text, encoding="utf-8", errors="backslashreplace")
        except OSError:
            continue
        _rotate(folder)
        return path
    return None


def _rotate(folder: Path) -> None:
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix == ".txt")
        for old in files[:-KEEP]:
            old.unlink(missing_ok=True)
    except OSError:
        pass
