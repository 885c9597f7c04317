"""The only module that runs a notebook: with papermill, in a forked child (engine.py) or
a Jupyter kernel (kernelstart.py), with the grader's parameters and time limits, saying
what happened (cell errors, a timeout, a dead kernel; executed.py) without ever raising
for the student's mistakes."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from nbformat import NotebookNode

from . import engine
from .engine import OutputLimit
from .executed import (
    CellError,
    Execution,
    capped_cells,
    cell_errors,
    cell_place,
    past_its_limit,
    stopped_by_keeper,
)
from .kernelstart import (
    KERNEL_ARGUMENTS,
    kill_kernel,
    sandboxed_specs,
    specs_running,
    start_kernel,
    stop_kernel,
)
from .papermillrun import execute, last_notebook, register_recording, remember, timeouts
from .sandbox.keeper import stop_note
from .sandbox.layers import REFUSED

__all__ = [
    "KERNEL_ARGUMENTS",
    "CellError",
    "Execution",
    "cell_place",
    "run_notebook",
    "sandboxed_specs",
    "specs_running",
    "start_kernel",
    "stop_kernel",
]


def _output_budget():
    """For a Jupyter kernel: nbclient's hook after each cell, which stops the run once the
    whole notebook's outputs pass engine.MESSAGE_LIMIT (the in-process engine counts them
    as it reads them; a cap kept in the notebook's own process can be lifted there)."""
    import json

    kept = [0]

    def after_cell(cell: NotebookNode, cell_index: int, **_: Any) -> None:
        kept[0] += len(json.dumps(cell.get("outputs") or []))
        if kept[0] > engine.MESSAGE_LIMIT:
            cell.outputs = []
            raise OutputLimit(
                f"the notebook's outputs passed {engine.MESSAGE_LIMIT >> 20} MB at cell "
                f"{cell_index} and could not be kept: the notebook was stopped there; print less"
            )

    return after_cell


def run_notebook(
    nb: NotebookNode,
    *,
    parameters: dict[str, Any],
    workdir: Path,
    cell_timeout: float,
    skip_tag: str,
    tagged_timeout: float | None = None,
    grace: float = 0.0,
    total_timeout: float | None = None,
    kernel_name: str = "python3",
    kernel_spec_manager: Any = None,
    sandbox: dict[str, Any] | None = None,
    km: Any = None,
    server: Path | None = None,
    child: Any = None,
    output_kb: int | None = None,
) -> Execution:
    """Execute `nb` (already carrying the grader's cells) in `workdir`: in-process in
    `child` (engine.start_child) or a child of the fork server `server` (engine.py), or else
    (also when that server has gone) in a fresh kernel (`km`, from `start_kernel`, or one
    started here). Every cell runs even after errors, as the
    student would see them in order (an error stays in its cell's outputs, graded like any
    other outcome). The executed notebook is returned, as far as it got, also when
    execution stopped early. `nb` itself is filled in: pass a copy to keep it. The kernel or
    child is gone in the end. `cell_timeout` (and `tagged_timeout`, for cells tagged
    `skip_tag`) are the limits in force, which the kernel enforces; this side gives up on a
    cell `grace` seconds after its limit."""
    # Imported here: papermill costs about a second to import, and only grading needs it.
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    started = time.perf_counter()
    tagged_limit = tagged_timeout or cell_timeout
    stopped, executed, died = None, None, False
    details: dict[str, Any] = {}
    if server is not None and child is None:
        from . import sandbox as sandboxing

        try:
            child = engine.start_child(server, workdir, sandboxing.environment(sandbox))
            details["fork"] = time.perf_counter() - started
        except RuntimeError:
            child = None  # the server has gone: a kernel, started the ordinary way
    if child is not None:
        children: list[Any] = []
        how = {
            "engine_name": engine.register(), "child": child, "env": {},
            "children": children, "folder": str(workdir), "started": remember,
            "timings": details,
            "output_bytes": output_kb * 1024 if output_kb else None,
        }  # fmt: skip

        def kill() -> bool:
            for child in children:
                child.kill()
            return bool(children)
    else:
        recording = register_recording()
        if km is None:
            try:
                km = start_kernel(
                    workdir,
                    kernel_name=kernel_name,
                    kernel_spec_manager=kernel_spec_manager,
                    sandbox=sandbox,
                )
            except Exception as exc:  # no such kernel, or it could not be launched
                why = f"the notebook could not be run: the kernel did not start ({exc})"
                return Execution(None, time.perf_counter() - started, (), why)
        how = {"engine_name": recording, "km": km, "on_cell_executed": _output_budget()}

        def kill() -> bool:
            return kill_kernel(km)

    # The whole notebook's limit: past it the kernel is killed, and what the grader had
    # recorded by then is all there is.
    fired = threading.Event()
    watchdog = None
    if total_timeout:

        def kill_past_the_limit() -> None:
            if kill():
                fired.set()

        watchdog = threading.Timer(total_timeout, kill_past_the_limit)
        watchdog.daemon = True
        watchdog.start()
    try:
        executed = execute(
            nb,
            parameters=parameters,
            kernel_name=kernel_name,
            allow_errors=True,
            # The last resort, for code that ignores signals: the kernel itself stops a
            # student's cell at its limit (see kernel/limits.py), so that the notebook goes on and
            # the grader's calls still run. Interrupting the kernel from here instead races
            # with its message loop (an interrupt can land in the next cell) and can leave
            # nbclient waiting forever on a zero-timeout poll.
            execution_timeout=cell_timeout + grace,
            timeout_func=timeouts(cell_timeout + grace, tagged_limit + grace, skip_tag),
            start_timeout=120,
            **how,
        )
    except CellTimeoutError:
        stopped = past_its_limit(last_notebook(), cell_timeout, tagged_limit, skip_tag)
    except DeadKernelError:
        stopped = "the kernel died (the process running the notebook exited or crashed)"
        died = True
    except OutputLimit as exc:
        stopped = str(exc)
    except RuntimeError as exc:  # nbclient: kernel failed to start, or its channels broke
        stopped = f"the notebook could not be run: {exc}"
    finally:
        if watchdog is not None:
            watchdog.cancel()
        if fired.is_set():
            stopped = f"the notebook ran past its total limit of {total_timeout:g} s"
        kept = stop_note(sandbox["sockets"]) if sandbox else None
        if kept:  # the keeper killed the notebook's processes: say why, not "it died"
            stopped, died = stopped_by_keeper(kept), False
        refused = stop_note(sandbox["sockets"], REFUSED) if sandbox else None
        if refused:
            stopped, died = f"the notebook could not be run: {refused}", False
        # papermill leaves a kernel it did not create running: shut it down here.
        if km is not None:
            stop_kernel(km)
    seconds = time.perf_counter() - started
    if executed is None:  # stopped early: what had run by then
        executed = last_notebook()
    remember(None)
    errors = cell_errors(executed, skip_tag) if executed is not None else ()
    return Execution(
        executed, seconds, errors, stopped, details, kernel_died=died and not fired.is_set(),
        capped=capped_cells(executed) if executed is not None else (),
    )  # fmt: skip
