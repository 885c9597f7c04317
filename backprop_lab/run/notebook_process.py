"""Where one grading's notebook runs: a child forked for the in-process engine from a fork
server (the batch's, or this process's own), or a Jupyter kernel; and the sandbox it runs
in."""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..options import Options
from .execute import start_kernel, stop_kernel

__all__ = ["NotebookProcess", "sandbox_policy", "start_processes"]


def sandbox_policy(options: Options, workdir: Path, sockets: Path) -> dict[str, Any]:
    """The sandbox of one grading's kernel (see the sandbox package). Makes its `sockets`
    folder, where the kernel's sockets and the sandbox's notes to the grader go."""
    from . import sandbox

    sockets.mkdir(mode=0o700, exist_ok=True)
    return sandbox.policy(
        scratch=str(workdir),
        sockets=str(sockets),
        read=sandbox.kernel_reads(options.data_path),
        listable=sandbox.kernel_lists(),
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
    """At most one of `km` and `server` is set; none means `run_notebook` starts a kernel
    itself."""

    km: Any = None  # a started kernel's manager
    server: Path | None = None  # a fork server's socket to fork a child from
    starting: Any = None  # that server, still importing (forkserver.ForkServer)

    def ready(self) -> None:
        """Wait for a fork server that is still starting (it imported while this process
        prepared the inputs); where it could not start, a kernel starts the ordinary way."""
        if self.starting is not None:
            from . import forkserver

            path, pid = self.starting.socket_path, self.starting.process.pid
            if not forkserver.wait_until_ready(path, pid):
                self.server = None
            self.starting = None

    def stop(self) -> None:
        """For a grading that fails before the notebook runs."""
        if self.km is not None:
            stop_kernel(self.km)


def start_processes(
    inprocess: bool,
    server: Path | None,
    places: list[tuple[Path, dict[str, Any]]],
    kernel_spec_manager: Any = None,
) -> list[NotebookProcess]:
    """One notebook process per (workdir, sandbox policy) of one grading (the clean room's
    run, and the notebook as it is where that differs), started now: each boots while
    this process imports torch and prepares the inputs, so on two cores the start-ups
    overlap. The in-process engine forks them from a fork server (the batch's, or this
    process's own), never from this process: a child forked from the grader would hold the
    grader's memory (its environment, its options, the grading seed), which code in the
    child can read however the sandbox confines it."""
    starting = None
    if inprocess and server is None:
        starting = _own_server()
        server = starting.socket_path if starting is not None else None
    processes = [_start(inprocess, server, workdir, policy, kernel_spec_manager)
                 for workdir, policy in places]  # fmt: skip
    for process in processes:
        process.starting = starting if process.server is not None else None
    return processes


def _start(
    inprocess: bool,
    server: Path | None,
    workdir: Path,
    policy: dict[str, Any],
    kernel_spec_manager: Any,
) -> NotebookProcess:
    if inprocess and server is not None:
        return NotebookProcess(server=server)
    try:  # also where the fork server could not start: a kernel, the ordinary way
        return NotebookProcess(
            km=start_kernel(workdir, kernel_spec_manager=kernel_spec_manager, sandbox=policy)
        )
    except Exception:  # run_notebook tries again, and reports why it cannot
        return NotebookProcess()


# This process's own fork server, for gradings without the batch's: started by the first,
# kept for the next (`check`, `verify`, the pytest form, a program that grades in a loop),
# stopped when this process exits. Process-wide state by nature: one server per process.
_OWN_SERVER: Any = None


def _own_server() -> Any:
    """This process's own fork server (forkserver.ForkServer), started now if it is not
    running, and not waited for (see NotebookProcess.ready); None where there can be none."""
    global _OWN_SERVER
    from . import forkserver

    if _OWN_SERVER is None or not _OWN_SERVER.alive():
        _OWN_SERVER = forkserver.start(kernels=False, wait=False)
        if _OWN_SERVER is not None:
            atexit.register(_OWN_SERVER.close)
    return _OWN_SERVER
