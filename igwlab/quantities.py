"""Kubernetes resource quantities ("100m", "12", "256Mi", "8Gi", "1G") as numbers.

Source: the Kubernetes API reference, Quantity (k8s.io/apimachinery/pkg/api/resource): decimal SI
suffixes (m, k, M, G, T, P, E) and binary ones (Ki, Mi, Gi, Ti, Pi, Ei), or a plain number.
"""

from __future__ import annotations

import re

_SUFFIXES = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 1024.0,
    "Mi": 1024.0**2,
    "Gi": 1024.0**3,
    "Ti": 1024.0**4,
    "Pi": 1024.0**5,
    "Ei": 1024.0**6,
}
_QUANTITY = re.compile(r"^\s*([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)\s*(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?\s*$")

GIB = 1024.0**3


def quantity(value: str | float | int) -> float:
    """A quantity as a number of base units (cores for CPU, bytes for memory); ValueError if unreadable."""
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(str(value))
    if match is None:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    number, suffix = match.groups()
    return float(number) * _SUFFIXES[suffix or ""]


def cpu_text(cores: float) -> str:
    return f"{cores:g}" if cores >= 1 else f"{cores * 1000:.0f}m"


def memory_text(size: float) -> str:
    return f"{size / GIB:.1f}Gi" if size >= GIB else f"{size / 1024**2:.0f}Mi"
