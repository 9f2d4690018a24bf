"""Counted nouns in what igwlab prints: `1 thing`, `2 things`, never `1 things` or `item(s)`."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`count` and `noun`, in the plural unless count is 1: counted(1, "CRD") == "1 CRD",
    counted(3, "CRD") == "3 CRDs", counted(2, "Helm values file") == "2 Helm values files";
    `plural` for nouns that do not take an s (counted(2, "entry", "entries"))."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
