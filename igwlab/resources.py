"""Where packaged data lives: in a wheel under igwlab/_data, in a source checkout at the repo root."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def data_dir(name: str) -> Path:
    """Return the directory `labs` or `manifests`, whichever way igwlab was installed."""
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"igwlab's packaged '{name}' directory is missing; reinstall igwlab")


def catalog_path() -> Path:
    return _PACKAGE_DIR / "catalog.yaml"
