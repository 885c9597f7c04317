"""Where one grading's notebook runs: a child forked for the in-process engine (from a fork
server, or from this process), or a Jupyter kernel; and the sandbox it runs in."""

from __future__ import annotations

import atexit
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .execute import start_kernel, stop_kernel
from .options import Options

__all__ = ["NotebookProcess", "sandbox_policy", "start_processes"]


def sandbox_policy(options: Options, workdir: Path, sockets: Path) -> dict[str, Any]:
    """The sandbox of one grading's kernel (see the sandbox package)."""
    from . import sandbox

    return sandbox.policy(
        scratch=str(workdir),
        sockets=str(sockets),
        read=sandbox.kernel_reads(options.data_path),
        # CUDA maps large regions of address space: the memory limit is for CPU grading
        memory_mb=options.memory_mb if options.device == "cpu" else None,
        # a backstop for code stuck where no alarm reaches: the whole notebook's time on
        # every core
        cpu_seconds=int(options.notebook_timeout * (os.cpu_count() or 1)) + 60,
        require=options.require_sandbox,
        devices=sandbox.gpu_devices() if options.device != "cpu" else None,
    )


@dataclass
class NotebookProcess:
    """At most one of these is set; none means `run_notebook` starts a kernel itself."""

    km: Any = None  # a started kernel's manager
    server: Path | None = None  # a fork server's socket to fork a child from
    child: Any = None  # a child already forked (engine.Child)

    def stop(self) -> None:
        """For a grading that fails before the notebook runs."""
        if self.km is not None:
            stop_kernel(self.km)
        if self.child is not None:
            self.child.kill()
            self.child.close()


def start_processes(
    inprocess: bool,
    server: Path | None,
    places: list[tuple[Path, dict[str, Any]]],
    kernel_spec_manager: Any = None,
) -> list[NotebookProcess]:
    """One notebook process per (workdir, sandbox policy) of one grading (the clean room's
    run, and the notebook as it is where that differs), started now: each boots (importing
    torch) while this process imports torch and prepares the inputs, so on two cores the
    start-ups overlap. Where this process may fork them itself, it forks them all now,
    before its first tensor."""
    from . import forkserver

    fork_here = forkserver.grading_begins(fork_here=inprocess and server is None)
    return [
        _start(inprocess, server, workdir, policy, kernel_spec_manager, fork_here)
        for workdir, policy in places
    ]


def _start(
    inprocess: bool,
    server: Path | None,
    workdir: Path,
    policy: dict[str, Any],
    kernel_spec_manager: Any,
    fork_here: bool,
) -> NotebookProcess:
    if inprocess and server is not None:
        return NotebookProcess(server=server)
    if inprocess:
        server, child = _fork_or_own_server(workdir, policy, fork_here)
        if server is not None or child is not None:
            return NotebookProcess(server=server, child=child)
    try:
        return NotebookProcess(
            km=start_kernel(workdir, kernel_spec_manager=kernel_spec_manager, sandbox=policy)
        )
    except Exception:  # run_notebook tries again, and reports why it cannot
        return NotebookProcess()


def _fork_or_own_server(workdir: Path, policy: dict[str, Any] | None, fork_here: bool):
    """(server, child) for an in-process run without the batch's server: a child forked
    from this process now (`fork_here`: this process's first grading, before it makes its
    first tensor), which enters the sandbox while the inputs are made here; otherwise this
    process's own fork server. (None, None) if neither could start: a kernel, started the
    ordinary way."""
    from . import engine, sandbox

    if fork_here:
        with contextlib.suppress(OSError):
            return None, engine.fork_here(workdir, sandbox.environment(policy))
    return _own_server(), None


# This process's own fork server, for gradings that cannot fork here: started by the
# first, kept for the next (`verify`, the pytest form, a program that grades in a loop),
# stopped when this process exits. Process-wide state by nature: one server per process.
_OWN_SERVER: Any = None


def _own_server() -> Path | None:
    global _OWN_SERVER
    from . import forkserver

    if _OWN_SERVER is None or not _OWN_SERVER.alive():
        _OWN_SERVER = forkserver.start(kernels=False)
        if _OWN_SERVER is not None:
            atexit.register(_OWN_SERVER.close)
    return _OWN_SERVER.socket_path if _OWN_SERVER is not None else None
