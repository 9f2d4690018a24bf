"""YAML in and out, with libyaml's C parser and emitter when PyYAML was built with it.

The pure-Python loader costs several times the C one on the catalog and lab files, which made
light commands (`igwlab labs`, `plan`) slow; the output of both emitters is the same YAML.
Only the safe loader and dumper are used: no tags beyond plain data.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml
from yaml import YAMLError

try:
    from yaml import CSafeDumper as SafeDumper
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeDumper, SafeLoader  # type: ignore[assignment]

__all__ = ["SafeDumper", "SafeLoader", "YAMLError", "load", "load_all"]


def load(text: str) -> Any:
    """One YAML document as plain data (dicts, lists, str, int, float, bool, None)."""
    return yaml.load(text, Loader=SafeLoader)


def load_all(text: str) -> Iterator[Any]:
    return yaml.load_all(text, Loader=SafeLoader)
