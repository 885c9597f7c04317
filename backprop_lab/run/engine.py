"""How a notebook's cells are executed, chosen in one place, and the in-process engine:
the grader's side of cellrunner.py.

Two engines run a graded notebook, both through papermill (parameters, per-cell
metadata, errors kept in their cells):
- `inprocess` (the default on Linux): the fork server (forkserver/), which has imported
  torch and IPython once, forks a child per notebook; the child enters the sandbox and
  runs the cells in an IPython shell of its own (cellrunner.py), sending each cell's
  outputs back over a socket. No Jupyter kernel, no messaging: a notebook costs its own
  cells plus tens of milliseconds.
- `kernel`: a Jupyter kernel per notebook (forked from the same server, or started from
  scratch), as nbgrader and papermill run them.
Everything after execution (the harvest, the comparison, the reports) is the same: both
give the same executed notebook.

Import-light: only the standard library at import time (papermill and nbclient are
imported when a notebook runs).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .cellrunner import read_message, write_message
from .notebookchild import Child, start_child

__all__ = [
    "ENGINES",
    "INPROCESS",
    "KERNEL",
    "Child",
    "OutputLimit",
    "available",
    "register",
    "resolve",
    "run_cells",
    "start_child",
]

INPROCESS, KERNEL = "inprocess", "kernel"
ENGINES = ("auto", INPROCESS, KERNEL)
PAPERMILL_NAME = "autograde-inprocess"
# A cell's outputs come back as one message; past this many bytes, for one cell or the whole
# notebook, the notebook is stopped (the kernel code caps printing at far less; this is for
# code that removed that cap).
MESSAGE_LIMIT = 64 << 20


class OutputLimit(RuntimeError):
    """A cell's outputs were too large to keep: the run stops, and the message says why."""


def available() -> bool:
    """The in-process engine needs fork and file-descriptor passing: Linux."""
    return sys.platform.startswith("linux") and hasattr(socket, "send_fds")


def resolve(name: str) -> str:
    """The engine that will run: `auto` is `inprocess` where it can run, else `kernel`.
    ValueError for `inprocess` where it cannot, or an unknown name."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
    if name == KERNEL:
        return KERNEL
    if available():
        return INPROCESS
    if name == INPROCESS:
        raise ValueError(
            "--engine inprocess needs Linux (fork, descriptor passing); use --engine kernel here"
        )
    return KERNEL


def _receive(child: Child, deadline: float, limit: int = MESSAGE_LIMIT) -> dict[str, Any] | None:
    """The child's next message, or None if the deadline passed first. EOFError when the
    child has gone; ValueError for a message over `limit` bytes (nothing of it is read)."""
    left = deadline - time.monotonic()
    child.channel.settimeout(None if left == float("inf") else max(left, 0.001))
    try:
        return read_message(child.channel, limit)
    except TimeoutError:
        return None


def run_cells(
    nb_man: Any,
    *,
    cwd: Path,
    server: Path | None = None,
    child: Child | None = None,
    env: dict[str, str],
    execution_timeout: float | None = None,
    timeout_func: Callable[[Any], float] | None = None,
    allow_errors: bool = False,
    start_timeout: float = 60.0,
    output_bytes: int | None = None,
    children: list[Child] | None = None,
    started: Callable[[Any], None] | None = None,
    timings: dict[str, float] | None = None,
) -> None:
    """Run `nb_man.nb`'s cells in `child`, or a child of `server`, filling in each cell's
    outputs and papermill's metadata as a kernel's run would. Raises what nbclient raises
    for the same events (CellTimeoutError, DeadKernelError, RuntimeError when nothing could
    run),
    so callers treat both engines alike. The child is appended to `children` as soon as
    it exists (a watchdog elsewhere may kill it); `started` is given the notebook being
    filled in, which holds what ran if the run stops early. `timings` gets the seconds of
    the fork ("fork": request to process id) and of the child's set-up ("child set-up":
    the sandbox and the shell, until its first cell starts)."""
    import nbformat
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    nb = nb_man.nb
    if started is not None:
        started(nb)
    timings = {} if timings is None else timings
    t = time.perf_counter()
    if child is None:
        if server is None:
            raise RuntimeError("the in-process engine needs a fork server or a forked child")
        child = start_child(server, cwd, env, start_timeout)
        timings["fork"] = time.perf_counter() - t
        t = time.perf_counter()
    if children is not None:
        children.append(child)
    started_any = False
    received = 0  # bytes of outputs kept so far

    def died() -> Exception:
        status = child.exit_status(wait=5.0)
        how = f" (exit status {status})" if status is not None else ""
        if not started_any:
            sandbox = " : the sandbox could not be set up" if status == 3 else ""
            return RuntimeError(f"the notebook's process ended before its first cell{how}{sandbox}")
        return DeadKernelError(f"Kernel died{how}")

    try:
        try:
            write_message(child.channel, {"output_bytes": output_bytes or 1 << 20})
        except OSError as exc:
            raise died() from exc
        for index, cell in enumerate(nb.cells):
            nb_man.cell_start(cell, index)
            if cell.cell_type != "code":
                nb_man.cell_complete(cell, index)
                continue
            limit = timeout_func(cell) if timeout_func else execution_timeout
            try:
                # one cell at a time, as a kernel gets them: the grader's last cell, with
                # its inputs, reaches the child only once the student's cells have run
                write_message(child.channel, {"run": index, "source": cell.source})
                message = _receive(child, time.monotonic() + start_timeout)
                if message is None or message.get("start") != index:
                    raise EOFError("no start")
                if not started_any:
                    timings["child set-up"] = time.perf_counter() - t
                started_any = True
                deadline = time.monotonic() + limit if limit else float("inf")
                # the whole notebook's outputs, not only each cell's, are capped here, in
                # the grader: code in the notebook can lift any cap kept in its own process
                message = _receive(child, deadline, max(MESSAGE_LIMIT - received, 4096))
                if message is not None:
                    received += len(json.dumps(message.get("outputs") or []))
            except (EOFError, OSError) as exc:
                raise died() from exc
            except json.JSONDecodeError as exc:
                child.kill()
                raise DeadKernelError("the notebook's process sent something unreadable") from exc
            except ValueError as exc:
                child.kill()
                raise OutputLimit(
                    f"the output of a cell could not be kept ({exc}): the notebook was "
                    "stopped there; print less"
                ) from exc
            if message is None:
                child.kill()
                raise CellTimeoutError(
                    f"A cell timed out while it was being executed, after {limit} seconds."
                )
            outputs, count = message.get("outputs"), message.get("execution_count")
            if (
                message.get("done") != index
                or not isinstance(outputs, list)
                or not all(isinstance(o, dict) and isinstance(o.get("output_type"), str)
                           for o in outputs)
                or not isinstance(count, int | None)
            ):  # fmt: skip
                child.kill()
                raise DeadKernelError("the notebook's process sent something out of order")
            cell.outputs = [nbformat.from_dict(o) for o in outputs]
            cell.execution_count = count
            nb_man.cell_complete(cell, index)
            failed = any(o.get("output_type") == "error" for o in cell.outputs)
            if (
                failed
                and not allow_errors
                and "raises-exception" not in cell.metadata.get("tags", [])
            ):
                nb_man.cell_exception(cell, cell_index=index)
                break
        with contextlib.suppress(OSError):
            write_message(child.channel, {"end": True})
    finally:
        child.kill()  # it has sent everything it will: nothing of it may outlive the run
        child.close()


@functools.cache
def register() -> str:
    """Register the in-process engine with papermill (once per process) and return its
    name for `papermill.execute_notebook(engine_name=...)`. Its keyword arguments are
    `run_cells`'s (`server`, `env`, `children`, ...), and `folder` for its `cwd`."""
    from papermill.engines import Engine, papermill_engines

    class InProcessEngine(Engine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            wanted = ("server", "child", "env", "execution_timeout", "timeout_func", "allow_errors",
                      "start_timeout", "output_bytes", "children", "started",
                      "timings")  # fmt: skip
            options = {k: v for k, v in kwargs.items() if k in wanted and v is not None}
            # papermill runs engines inside its own `cwd`; `folder` says it outright
            cwd = Path(kwargs.get("folder") or os.getcwd())
            return run_cells(nb_man, cwd=cwd, **options)

    papermill_engines.register(PAPERMILL_NAME, InProcessEngine)
    return PAPERMILL_NAME
