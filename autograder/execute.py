"""The only module that starts a kernel: run a notebook with papermill, with the grader's
parameters and time limits, and say what happened (cell errors, a timeout, a dead kernel)
without ever raising for the student's mistakes."""

from __future__ import annotations

import functools
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbformat import NotebookNode

from . import engine
from .engine import OutputLimit

__all__ = [
    "KERNEL_ARGUMENTS",
    "CellError",
    "Execution",
    "kernel_spec_manager",
    "run_notebook",
    "start_kernel",
]


@dataclass(frozen=True)
class CellError:
    index: int  # position in the student's own file, from 1 (0: not known)
    ename: str
    evalue: str
    heading: str = ""  # the nearest heading above the cell
    exercise: str | None = None  # the exercise whose solution cell this is

    def where(self) -> str:
        return cell_place(self.index, self.heading, self.exercise)


def cell_place(index: int, heading: str, exercise: str | None) -> str:
    """A cell as the student finds it: `cell 14 (relu_grad's cell)`, or
    `cell 29 (under "How fast is it?")`."""
    if exercise:
        return f"cell {index} ({exercise}'s cell)"
    under = f" (under \u201c{heading}\u201d)" if heading else ""
    return f"cell {index}{under}"


# What the kernel prints once a cell's output passes the cap (kernel._capped).
OUTPUT_CAP_MARK = "[autograder: output beyond "


def _capped_cells(nb: NotebookNode) -> tuple[tuple[str, float | None], ...]:
    """(where, seconds it ran) for each student cell whose printing passed the cap."""
    found = []
    for cell in nb.cells:
        place = cell.get("metadata", {}).get("autograde_place")
        if not place:
            continue
        outputs = cell.get("outputs", [])
        if any(OUTPUT_CAP_MARK in str(o.get("text", "")) for o in outputs):
            seconds = cell.metadata.get("papermill", {}).get("duration")
            where = cell_place(place["position"], place.get("heading", ""), place.get("exercise"))
            found.append((where, seconds if isinstance(seconds, int | float) else None))
    return tuple(found)


@dataclass(frozen=True)
class Execution:
    notebook: NotebookNode | None
    seconds: float
    cell_errors: tuple[CellError, ...] = ()
    # Set when execution stopped early: the kernel died, a cell ran out of time, or the
    # kernel could not start. Points then come only from what the harvest recorded.
    stopped: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # The kernel's process ended before the notebook did: a student's os._exit, a crash,
    # or something outside killing it. Worth one more try before a person looks.
    kernel_died: bool = False
    # (where, seconds) of the cells whose printing passed the output cap
    capped: tuple[tuple[str, float | None], ...] = ()


def _cell_errors(nb: NotebookNode, skip_tag: str) -> tuple[CellError, ...]:
    """The errors in the student's cells, each placed where the student sees its cell
    (harvest.inject notes that in the cell's metadata before adding its own cells)."""
    errors = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if skip_tag in tags or "injected-parameters" in tags or "papermill-error-cell-tag" in tags:
            continue
        place = cell.get("metadata", {}).get("autograde_place", {})
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "error":
                errors.append(CellError(
                    place.get("position", 0), out.get("ename", ""), out.get("evalue", ""),
                    place.get("heading", ""), place.get("exercise"),
                ))  # fmt: skip
    return tuple(errors)


def _kill(km) -> bool:
    """Kill the kernel's process; True if it was running."""
    process = getattr(getattr(km, "provisioner", None), "process", None)
    if process is None or process.poll() is not None:
        return False
    process.kill()
    return True


def _timeouts(cell_timeout: float, tagged_timeout: float, tag: str):
    def timeout(cell: NotebookNode) -> int:
        tagged = tag in cell.get("metadata", {}).get("tags", [])
        return int(tagged_timeout if tagged else cell_timeout) + 1

    return timeout


# Papermill's nbclient engine, keeping hold of the notebook it executes (per thread) so
# that the cells that ran before a kernel died or a limit struck can still be reported,
# without papermill writing the whole notebook to disk twice a cell (which cost more CPU
# than the student's code).
_ENGINE = "autograde-recording"
_RUNNING = threading.local()


def _papermill(nb: NotebookNode, *, parameters: dict[str, Any], kernel_name: str,
               engine_name: str, **engine_kwargs: Any) -> NotebookNode:  # fmt: skip
    """`papermill.execute_notebook` for a notebook in memory, less what grading does not
    use and pays for on every submission: papermill serialises the notebook to JSON and
    parses it back to load it, and serialises it once more at the end to write it
    nowhere (a fifth of the grader's CPU per submission, measured), and it adds Markdown
    cells that point at errors, which the grader finds itself. The rest is papermill's own:
    the parameters cell, its metadata, the engine API."""
    from papermill.engines import papermill_engines
    from papermill.parameterize import parameterize_notebook

    nb.metadata["papermill"] = {"default_parameters": {}, "parameters": {},
                                "environment_variables": {}}  # fmt: skip
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])
        cell.metadata.setdefault("papermill", {})
    if parameters:
        nb = parameterize_notebook(nb, parameters, kernel_name=kernel_name, language="python",
                                   engine_name=engine_name)  # fmt: skip
    return papermill_engines.execute_notebook_with_engine(
        engine_name, nb, input_path=None, output_path=None, kernel_name=kernel_name,
        progress_bar=False, log_output=False, **engine_kwargs,
    )  # fmt: skip


def _remember(nb: NotebookNode) -> None:
    _RUNNING.nb = nb


@functools.cache
def _register_engine() -> None:
    from papermill.engines import NBClientEngine, papermill_engines

    class RecordingEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            _RUNNING.nb = nb_man.nb
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register(_ENGINE, RecordingEngine)


# Given to every kernel: history kept in memory (nothing written to the user's IPython
# profile, as nbclient does), and torch imported while the kernel starts, so that the
# import overlaps with the grader's own start-up. The notebook imports it anyway, and
# the name is not left in its namespace.
KERNEL_ARGUMENTS = (
    "--HistoryManager.hist_file=:memory:",
    "--IPKernelApp.exec_lines=import torch; del torch",
)


def kernel_spec_manager(argv: list[str], display_name: str) -> Any:
    """A kernel spec manager whose `python3` kernel runs `argv` (still named `python3`,
    so that Jupyter treats it as the ipykernel it is)."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

    class Specs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            if kernel_name != "python3":
                return super().get_kernel_spec(kernel_name)
            return KernelSpec(
                argv=argv,
                display_name=display_name,
                language="python",
                interrupt_mode="signal",
                metadata={"debugger": False},
            )

    return Specs()


def sandboxed_kernel_spec_manager() -> Any:
    """Plain kernels (no fork server): ipykernel started by the sandbox's launcher, which
    puts it in the sandbox that $AUTOGRADE_SANDBOX describes before exec'ing it."""
    from .sandbox import LAUNCHER

    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    launcher = [sys.executable, "-I", "-S", LAUNCHER, "--", *kernel]
    return kernel_spec_manager(launcher, "Python 3 (sandboxed by autograde)")


def start_kernel(
    workdir: Path,
    *,
    kernel_name: str = "python3",
    kernel_spec_manager: Any = None,
    sandbox: dict[str, Any] | None = None,
) -> Any:
    """Start a kernel in `workdir` now and return its (async) kernel manager, without
    waiting for it: it boots while the grader prepares the notebook. `run_notebook`
    takes it over. `kernel_spec_manager`: where the kernel's command comes from (a fork
    server's, see forkserver.py); sandbox.py's launcher by default. `sandbox`: the policy
    (sandbox.policy) the kernel is confined by; its `sockets` folder holds the kernel's
    connection file and sockets."""
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync

    from . import sandbox as sandboxing

    sockets = Path(sandbox["sockets"]) if sandbox else workdir.parent / "kernel"
    sockets.mkdir(mode=0o700, exist_ok=True)
    env = sandboxing.environment(sandbox)
    # IPC sockets, in a folder of their own beside the notebook's: reachable by nothing
    # off this machine (and from a network namespace with no interface), and no "running
    # over TCP without encryption" warning. The async manager, not the blocking one: with
    # a blocking client nbclient's reads block its event loop, so a cell that never ends
    # is never timed out.
    km = AsyncKernelManager(
        kernel_name=kernel_name,
        transport="ipc",
        ip=str(sockets / "k"),
        connection_file=str(sockets / "kernel.json"),
        kernel_spec_manager=kernel_spec_manager or sandboxed_kernel_spec_manager(),
    )
    run_sync(km.start_kernel)(cwd=str(workdir), extra_arguments=list(KERNEL_ARGUMENTS), env=env)
    return km


def stop_kernel(km: Any) -> None:
    from jupyter_core.utils import run_sync

    if km.has_kernel:
        run_sync(km.shutdown_kernel)(now=True)


def run_notebook(
    nb: NotebookNode,
    *,
    parameters: dict[str, Any],
    workdir: Path,
    cell_timeout: float,
    skip_tag: str,
    tagged_timeout: float | None = None,
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
    `child` (engine.fork_here) or a child of the fork server `server` (engine.py), or else
    (also when that server has gone) in a fresh kernel (`km`, from `start_kernel`, or one
    started here). Every cell runs even after errors, as the
    student would see them in order (an error stays in its cell's outputs, graded like any
    other outcome). The executed notebook is returned, as far as it got, also when
    execution stopped early. `nb` itself is filled in: pass a copy to keep it. The kernel or
    child is gone in the end."""
    # Imported here: papermill costs about a second to import, and only grading needs it.
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    started = time.perf_counter()
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
            "children": children, "folder": str(workdir), "started": _remember,
            "timings": details,
            "output_bytes": output_kb * 1024 if output_kb else None,
        }  # fmt: skip

        def kill() -> bool:
            for child in children:
                child.kill()
            return bool(children)
    else:
        _register_engine()
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
        how = {"engine_name": _ENGINE, "km": km}

        def kill() -> bool:
            return _kill(km)

    # The whole notebook's limit: past it the kernel is killed, and what the grader had
    # recorded by then is all there is.
    fired = threading.Event()
    watchdog = None
    if total_timeout:
        watchdog = threading.Timer(total_timeout, lambda: kill() and fired.set())
        watchdog.daemon = True
        watchdog.start()
    try:
        executed = _papermill(
            nb,
            parameters=parameters,
            kernel_name=kernel_name,
            allow_errors=True,
            # The last resort, for code that ignores signals: the kernel itself stops a
            # student's cell at its limit (see kernel.py), so that the notebook goes on and
            # the grader's calls still run. Interrupting the kernel from here instead races
            # with its message loop (an interrupt can land in the next cell) and can leave
            # nbclient waiting forever on a zero-timeout poll.
            execution_timeout=cell_timeout,
            timeout_func=_timeouts(cell_timeout, tagged_timeout or cell_timeout, skip_tag),
            start_timeout=120,
            **how,
        )
    except CellTimeoutError:
        stopped = f"a cell ran longer than the {cell_timeout:.0f} s limit"
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
        # papermill leaves a kernel it did not create running: shut it down here.
        if km is not None:
            stop_kernel(km)
    seconds = time.perf_counter() - started
    if executed is None:  # stopped early: what had run by then
        executed = getattr(_RUNNING, "nb", None)
    _RUNNING.nb = None
    errors = _cell_errors(executed, skip_tag) if executed is not None else ()
    return Execution(
        executed, seconds, errors, stopped, details, kernel_died=died and not fired.is_set(),
        capped=_capped_cells(executed) if executed is not None else (),
    )  # fmt: skip
