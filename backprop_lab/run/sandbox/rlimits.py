"""The third layer: hard resource limits the kernel cannot raise (data size, file size,
processes, CPU time, no core dumps)."""

from __future__ import annotations

import resource
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .rules import Policy


def apply(p: Policy, namespaced: bool) -> None:
    """Hard limits: soft and hard set together, so the kernel can lower but never raise
    them (raising a hard limit needs a capability it does not have). The process count
    only in a user namespace of its own: outside one, RLIMIT_NPROC counts every process of
    the user's, and would starve a desktop session's kernel of threads."""
    mb = 2**20
    wanted = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, p["file_mb"] * mb)]
    if namespaced:
        wanted.append((resource.RLIMIT_NPROC, p["processes"]))
    if p.get("memory_mb"):
        wanted.append((resource.RLIMIT_DATA, p["memory_mb"] * mb))
    if p.get("cpu_seconds"):
        wanted.append((resource.RLIMIT_CPU, int(p["cpu_seconds"])))
    for which, value in wanted:
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))
