"""`grade(notebook, ...) -> GradeResult`: the one path every verb (check, grade, verify,
pytest, CI) takes. notebook -> plan -> execution in a kernel -> harvest -> score."""

from __future__ import annotations

import atexit
import contextlib
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .execute import run_notebook, start_kernel, stop_kernel
from .exercises import exercises_for
from .integrity import tampering
from .notebook import NotebookError, cell_shas, detect_assignment, load_notebook
from .options import (
    DEFAULT_SEED,
    SHARED_FLAGS,
    GradingError,
    Options,
    check_sandbox,
    notebook_digest,
    resolve_seed,
    which_engine,
)

if TYPE_CHECKING:
    from .harvest import Speed
    from .score import Score

__all__ = [
    "DEFAULT_SEED",
    "SHARED_FLAGS",
    "GradeResult",
    "GradingError",
    "Options",
    "grade",
    "notebook_digest",
    "resolve_seed",
]

# How long past a limit the executor waits for the kernel to enforce it before it gives
# up on the whole notebook (code stuck in C that never sees the kernel's alarm).
_GRACE = 30.0


@dataclass(frozen=True)
class GradeResult:
    notebook: Path
    assignment: str
    score: Score
    seed: int
    device: str
    seconds: float
    execution_seconds: float
    digest: str  # of the notebook's bytes: a re-run with the same digest can be skipped
    grader_version: str = __version__
    executed: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    speed: Speed | None = None  # matmul timings in the student's kernel (matmul assignment)
    # (function, torch call, line) for tensors the student's code puts on the CPU whatever
    # the inputs' device: works on a CPU, fails on a GPU
    device_findings: tuple[tuple[str, str, str], ...] = ()
    kernel_died: bool = False  # see execute.Execution.kernel_died
    # None where student code ran in the full sandbox; otherwise what was not isolated
    isolation_warning: str | None = None


def check_device(device: str) -> None:
    if device == "cpu":
        return  # always there; and this way checking it costs no torch import
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise GradingError(f"unknown device {device!r}: use cpu or cuda") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GradingError(
            "--device cuda was asked for, but torch sees no CUDA device here: grade on a "
            "machine with a GPU, or use --device cpu"
        )
    if dev.type not in ("cpu", "cuda"):
        raise GradingError(f"unsupported device {device!r}: use cpu or cuda")


def sandbox_policy(options: Options, workdir: Path, sockets: Path) -> dict[str, Any]:
    """The sandbox of one grading's kernel (see sandbox.py)."""
    import os

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


def _notes(execution, cell_timeout: float) -> tuple[str, ...]:
    notes = []
    if execution.stopped:
        notes.append(f"Execution stopped: {execution.stopped}.")
    for err in execution.cell_errors[:10]:
        where = _capitalised(err.where())
        if err.ename in ("CellTimeout", "KeyboardInterrupt"):  # a cell over its limit
            notes.append(
                f"{where} ran longer than the {cell_timeout:g} s limit and was "
                "stopped: look for a loop that never ends, or work on far more data than needed"
            )
            continue
        notes.append(f"{where} failed with {error_line(err)}")
    for where, seconds in execution.capped:
        took = f" it ran for {seconds:.1f} s, much of it printing," if seconds else ""
        notes.append(
            f"{_capitalised(where)} printed more than the output limit keeps:{took} and the "
            "rest was dropped. Print a shape or a few values instead of whole tensors."
        )
    return tuple(notes)


def _capitalised(where: str) -> str:
    """`cell 14 (...)` at the start of a sentence."""
    return where[:1].upper() + where[1:]


_SOURCE_LINE = re.compile(r"\s*\((?:[^()]*), line (\d+)\)$")


def error_line(err) -> str:
    """`SyntaxError: invalid syntax on line 3`: the error's first line, with the line in
    the cell for a syntax error (IPython names the cell's temporary file instead)."""
    first = err.evalue.splitlines()[0][:200] if err.evalue else ""
    found = _SOURCE_LINE.search(first)
    if found:
        first = f"{first[: found.start()]} on line {found.group(1)}"
    return f"{err.ename}: {first}" if first else err.ename


def _broken_exercise_cells(execution) -> dict[str, str]:
    """exercise -> why its solution cell failed, for the checks that find its function
    missing: the cause, not "the notebook defines no relu_grad"."""
    return {
        err.exercise: f"{_capitalised(err.where())} failed with {error_line(err)}"
        for err in execution.cell_errors
        if err.exercise
    }


def _grading_cell_finished(executed) -> bool:
    from .harvest import AUTOGRADER_TAG

    if executed is None or not executed.cells:
        return False
    last = executed.cells[-1]
    return (
        AUTOGRADER_TAG in last.get("metadata", {}).get("tags", [])
        and last.get("execution_count") is not None
        and not any(o.get("output_type") == "error" for o in last.get("outputs", []))
    )


def _device_findings(plan, harvest) -> tuple[tuple[str, str, str], ...]:
    found: list[tuple[str, str, str]] = []
    for key, result in harvest.calls.items() if harvest is not None else ():
        for entry in result.facts.get("device_unaware", ()):
            if not isinstance(entry, dict):
                continue
            item = (plan.calls[key].target, str(entry.get("call")), str(entry.get("line")))
            if item not in found:
                found.append(item)
    return tuple(found)


def _device_notes(findings: tuple[tuple[str, str, str], ...]) -> tuple[str, ...]:
    """The same bug a GPU run reports as a device error, found on the CPU."""
    notes = []
    for target, call, line in findings:
        if call.startswith("torch."):
            what = f"`{line}` makes a tensor with {call} and no `device=`"
            fix = "take the device from the inputs: `device=a.device` (or `a.new_zeros(...)`)"
        else:
            what = f"`{line}` moves a tensor to the CPU ({call})"
            fix = "keep every tensor on the inputs' device"
        notes.append(
            f"Device readiness: in {target}, {what}. That works on a CPU, but with inputs on "
            f"a GPU the tensor stays on the CPU and the function fails: {fix}."
        )
    return tuple(notes)


def _integrity_notes(nb, assignment: str, plan, harvest) -> tuple[str, ...]:
    """Reported for a person to judge; none of it changes the score."""
    findings = list(tampering(nb, assignment))
    if harvest is not None:
        findings += harvest.integrity
        users = sorted(
            {plan.calls[k].target for k, c in harvest.calls.items() if c.facts.get("autograd")}
        )
        findings += [
            f"{t} calls PyTorch's autograd (backward / torch.autograd): the exercise is to "
            "write the gradients by hand"
            for t in users
        ]
    return tuple(f"Integrity: {f}." for f in findings)


def _cell_seconds(executed: Any, grader_tag: str) -> dict[str, float]:
    """How long the student's cells and the grader's calls (its last cell) ran."""
    if executed is None:
        return {}
    student, grader = 0.0, []
    for cell in executed.cells:
        seconds = cell.get("metadata", {}).get("papermill", {}).get("duration")
        if not isinstance(seconds, int | float):
            continue
        if grader_tag in cell.get("metadata", {}).get("tags", []):
            grader.append(float(seconds))
        else:
            student += float(seconds)
    return {"notebook cells": student, "grader calls": grader[-1] if grader else 0.0}


def _fork_here(workdir: Path, policy: dict[str, Any] | None):
    from . import engine, sandbox

    return engine.fork_here(workdir, sandbox.environment(policy))


# This process's own fork server, for gradings that cannot fork here (see
# `_notebook_process`): started by the first, kept for the next (`verify`, the pytest
# form, a program that grades in a loop). It stops when this process exits.
_OWN_SERVER: Any = None


def _own_server() -> Path | None:
    global _OWN_SERVER
    from . import forkserver

    if _OWN_SERVER is None or not _OWN_SERVER.alive():
        _OWN_SERVER = forkserver.start(kernels=False)
        if _OWN_SERVER is not None:
            atexit.register(_OWN_SERVER.close)
    return _OWN_SERVER.socket_path if _OWN_SERVER is not None else None


def _notebook_process(workdir: Path, policy: dict[str, Any] | None):
    """(server, child) for an in-process run without the batch's server: a child forked
    from this process now, before it makes its first tensor, which enters the sandbox
    while the inputs are made here; or, where forking here is not safe (torch's threads
    have started in this process), this process's own fork server. (None, None) if
    neither could start: a kernel, started the ordinary way."""
    from . import forkserver

    if forkserver.fork_safe():
        with contextlib.suppress(OSError):
            return None, _fork_here(workdir, policy)
    return _own_server(), None


def grade(
    notebook: Path,
    options: Options = Options(),
    *,
    kernel_spec_manager: Any = None,
    server: Path | None = None,
) -> GradeResult:
    """Grade one notebook. Raises NotebookError when the file is not a gradeable notebook
    and GradingError for a bad option; every problem in the student's code is a score.
    `server` is a running fork server's socket (forkserver.py): the in-process engine forks
    the notebook's process from it, and without one forks it from this process.
    `kernel_spec_manager` says how the kernel engine starts a kernel."""
    started = time.perf_counter()
    check_device(options.device)
    sandbox_warning = check_sandbox(options)
    inprocess = which_engine(options) == "inprocess"
    if not inprocess or (server is not None and not Path(server).exists()):
        server = None  # not wanted, or that server has gone
    notebook = Path(notebook)
    nb, digest = load_notebook(notebook)
    assignment = options.assignment or detect_assignment(nb, notebook)
    try:
        exercises = exercises_for(assignment)
    except KeyError as exc:
        raise GradingError(str(exc.args[0])) from None
    timings: dict[str, float] = {}
    from .sandbox import host_folder

    with tempfile.TemporaryDirectory(prefix="autograde-", dir=host_folder()) as tmp:
        # The notebook runs in its own folder (in the sandbox, a tmpfs of its own); the
        # kernel's connection file and sockets live beside it.
        workdir = Path(tmp) / "notebook"
        workdir.mkdir()
        policy = sandbox_policy(options, workdir, Path(tmp) / "kernel")
        # The kernel starts first and boots (importing torch) while this process imports
        # torch and prepares the inputs: on two cores the two start-ups overlap.
        t = time.perf_counter()
        km, child = None, None
        if inprocess and server is None:
            server, child = _notebook_process(workdir, policy)
        if server is None and child is None:
            try:
                km = start_kernel(workdir, kernel_spec_manager=kernel_spec_manager, sandbox=policy)
            except Exception:  # run_notebook tries again, and reports why it cannot
                km = None
        try:
            # Imported here, after the kernel's start, for the same reason.
            from .harvest import (
                AUTOGRADER_TAG,
                HarvestError,
                inject,
                make_plan,
                read_harvest,
                strip_injected,
            )
            from .score import score
        except BaseException:
            if km is not None:
                stop_kernel(km)
            if child is not None:
                child.kill()
                child.close()
            raise
        timings["start"] = time.perf_counter() - t
        t = time.perf_counter()
        plan = make_plan(exercises, seed=options.seed, device=options.device)
        prepared = inject(
            nb,
            plan,
            call_timeout=options.call_timeout,
            cell_shas=cell_shas(nb),
            limits={
                "cell_timeout": options.cell_timeout,
                # CUDA maps large regions of address space: the limit is for CPU grading
                "memory_mb": options.memory_mb if options.device == "cpu" else None,
                "output_kb": options.output_kb,
                "confine_writes": options.confine_writes,
            },
        )
        timings["plan"] = time.perf_counter() - t
        params = {"seed": options.seed, "device": options.device, "data_path": options.data_path}
        execution = run_notebook(
            prepared,
            parameters=params,
            workdir=workdir,
            # backstops: the kernel enforces the real limits, cell by cell and call by call
            cell_timeout=options.cell_timeout + _GRACE,
            tagged_timeout=options.call_timeout * len(plan.calls) + _GRACE,
            total_timeout=options.notebook_timeout,
            skip_tag=AUTOGRADER_TAG,
            kernel_spec_manager=kernel_spec_manager,
            sandbox=policy,
            km=km,
            server=server,
            child=child,
            output_kb=options.output_kb,
        )
        timings["execute"] = execution.seconds
        timings.update(_cell_seconds(execution.notebook, AUTOGRADER_TAG))
        timings.update(execution.details)
        t = time.perf_counter()
        harvest, why = None, None
        if not _grading_cell_finished(execution.notebook):
            # Results files are trusted only when the grader's own cell wrote them; any
            # found otherwise were left by something else.
            why = execution.stopped or "the grader's cell at the end of the notebook did not finish"
        else:
            try:
                harvest = read_harvest(execution.notebook)
            except HarvestError as exc:
                why = execution.stopped or str(exc)
        notes = _notes(execution, options.cell_timeout)
        if why and "results messages" in why:
            notes += (f"Integrity: {why}.",)
        orders = {
            tuple(c.facts["arg_order"])
            for c in (harvest.calls.values() if harvest is not None else ())
            if c.facts.get("arg_order")
        }
        for order in sorted(orders):
            notes += (
                f"Model's constructor takes ({', '.join(order)}), not the lesson's "
                "(w1, b1, w2, b2): the grader passed the weights by name, so it cost nothing, "
                "but code that calls Model(w1, b1, w2, b2) would give it the wrong tensors.",
            )
        device_findings = _device_findings(plan, harvest)
        notes += _device_notes(device_findings)
        notes += _integrity_notes(nb, assignment, plan, harvest)
        if harvest is not None and harvest.debugger_calls:
            notes += (
                f"The grader skipped {harvest.debugger_calls} debugger call(s) (breakpoint(), "
                "pdb or ipdb set_trace): they cost nothing, but remove them before you submit.",
            )
        result_score = score(exercises, plan, harvest, not_graded=why, notes=notes,
                             broken_cells=_broken_exercise_cells(execution))  # fmt: skip
        timings["score"] = time.perf_counter() - t
        executed = None
        if options.keep_executed is not None and execution.notebook is not None:
            import nbformat

            options.keep_executed.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(strip_injected(execution.notebook), options.keep_executed)
            executed = options.keep_executed
        shutil.rmtree(tmp, ignore_errors=True)
    return GradeResult(
        notebook,
        assignment,
        result_score,
        options.seed,
        options.device,
        time.perf_counter() - started,
        execution.seconds,
        digest,
        executed=executed,
        timings=timings,
        speed=harvest.speed if harvest is not None else None,
        device_findings=device_findings,
        kernel_died=execution.kernel_died,
        isolation_warning=sandbox_warning,
    )


__all__ += ["NotebookError", "check_device"]
