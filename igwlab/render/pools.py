"""One pool of a lab at a time: the builders see the lab with that pool in the place of its own."""

from __future__ import annotations

from dataclasses import replace

from igwlab.labs import Backend
from igwlab.selection import ResolvedLab


def scoped(resolved: ResolvedLab, backend: Backend) -> ResolvedLab:
    """The lab with this pool (workload, pool, models) in the place of its own, so one set of builders
    serves every pool."""
    lab = resolved.lab.model_copy(update={"workload": backend.workload, "pool": backend.pool, "models": backend.models})
    return replace(resolved, lab=lab)


def pools(resolved: ResolvedLab) -> list[ResolvedLab]:
    """The lab scoped to each of its pools, its own first."""
    return [scoped(resolved, backend) for backend in resolved.lab.backends()]
