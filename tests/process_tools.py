"""Helpers for the tests that leave processes behind on purpose: finding them."""

from __future__ import annotations

import os
from pathlib import Path


def processes_with(marker: str) -> list[int]:
    """The processes on this machine whose command line contains `marker`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


def sandbox_for(workdir: Path) -> dict:
    """The sandbox the grader gives a notebook run in `workdir` (its kernel's sockets in
    a folder beside it): a fork server forks no child without one."""
    from backprop_lab.options import Options
    from backprop_lab.run.notebook_process import sandbox_policy

    sockets = workdir.parent / f"{workdir.name}-sockets"
    sockets.mkdir(mode=0o700, exist_ok=True)
    return sandbox_policy(Options(), workdir, sockets)
