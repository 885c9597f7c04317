"""The processes of `autograde grade`: the pool of workers that grade submissions, how
each worker is set up, and the one fork server of kernels the whole batch shares.

No process state lives in module globals: the batch's fork server is a `KernelServer`
value handed to every task with its submission, and the process that started it holds
it in a `ServerLease` for as long as the batch runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from ..report.records import Record
from ..run import forkserver, sandbox
from .submissions import Submission

__all__ = ["KernelServer", "ServerLease", "kernel_server", "run_pool", "runner", "threads_for"]


@dataclass(frozen=True)
class KernelServer:
    """Where a batch's kernels come from: the socket of its fork server (see
    the forkserver package) and the pid of the server first started there."""

    socket: Path
    pid: int


# What each worker needs, imported once in multiprocessing's fork server. A name that does
# not import is skipped there without a word, and every worker pays for it again
# (tests/test_layout.py imports each).
WORKER_PRELOAD = (
    "backprop_lab.gradebook.batch",
    "backprop_lab.report.records",
    "backprop_lab.pipeline",
    "backprop_lab.report.formats",
    "backprop_lab.report.feedback",
    "backprop_lab.report.pictures",
)


def runner(server: KernelServer | None) -> dict[str, Any]:
    """`grade`'s keywords for running a notebook from `server`, for either engine; none
    when there is no server or it has gone (`grade` then starts what it needs itself)."""
    if server is None or not forkserver.wait_until_ready(server.socket, server.pid):
        return {}
    return {"server": server.socket,
            "kernel_spec_manager": forkserver.forked_specs(server.socket)}  # fmt: skip


def threads_for(workers: int) -> int:
    """Threads per worker (and per kernel): the cores shared out."""
    return max(1, (os.cpu_count() or 1) // workers)


def _thread_env(threads: int) -> dict[str, str]:
    return {v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def _init_worker(threads: int) -> None:
    # Inherited by each notebook's kernel: N kernels each using every core would slow
    # all of them down.
    os.environ.update(_thread_env(threads))
    import torch

    torch.set_num_threads(threads)


def _worker_context():
    """Workers forked from multiprocessing's fork server, which has imported the grader
    (torch included) and done nothing else: no inherited threads, event loop or grading
    state, and no second of imports per worker. Spawned where there is no fork server."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return get_context("spawn")
    context = get_context("forkserver")
    context.set_forkserver_preload(list(WORKER_PRELOAD))
    return context


Done = Callable[[Submission, Record, bool], None]


def run_pool(
    task: Callable[[Submission], tuple[Record, bool]],
    subs: list[Submission],
    workers: int,
    done: Done,
    crashed: Callable[[Submission, str], Record],
    restart: Callable[[], None],
) -> list[Submission]:
    """Run `task` (picklable: it crosses to the workers) on each of `subs` in `workers`
    processes, reporting each outcome to `done`; return the submissions whose worker
    died under them. `crashed` records a task that failed outside the grading."""
    broken: list[Submission] = []
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_worker_context(),
        initializer=_init_worker,
        initargs=(threads_for(workers),),
    ) as pool:
        futures: dict[Future, Submission] = {pool.submit(task, s): s for s in subs}
        try:
            for future in as_completed(futures):
                sub = futures[future]
                try:
                    record, skipped = future.result()
                except BrokenProcessPool:
                    broken.append(sub)
                    continue
                except Exception as exc:  # pickling or the like: still one submission's
                    record, skipped = crashed(sub, repr(exc)), False
                restart()
                done(sub, record, skipped)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return broken


@dataclass
class ServerLease:
    """The batch's fork server in the process that started it: what to hand the tasks,
    and a way to start it again (same socket) if something killed it."""

    server: KernelServer | None = None
    restart: Callable[[], None] = lambda: None

    def wait(self) -> None:
        """Until the server is ready (it imports while the workers start)."""
        if self.server is not None:
            forkserver.wait_until_ready(self.server.socket, self.server.pid)


@contextlib.contextmanager
def kernel_server(wanted: bool, threads: int, kernels: bool) -> Iterator[ServerLease]:
    """One fork server for the whole batch, shared by every worker, closed at the end.
    Kernels start the ordinary way while it is down, or when it is not wanted or not
    available."""
    # what its children may see of this process's environment (nothing secret), and threads
    env = {**sandbox.allowed_environment(), **_thread_env(threads)}
    # Not waited for here: it imports while the workers start, which wait for it.
    server = forkserver.start(env=env, wait=False, kernels=kernels) if wanted else None
    if server is None:
        yield ServerLease()
        return
    folder = server.folder

    def restart() -> None:
        nonlocal server
        if server is None or not server.alive():
            if server is not None:
                server.close(remove=False)
            server = forkserver.start(folder, env=env, kernels=kernels)

    try:
        yield ServerLease(KernelServer(server.socket_path, server.process.pid), restart)
    finally:
        if server is not None:
            server.close(remove=False)
        shutil.rmtree(folder, ignore_errors=True)
