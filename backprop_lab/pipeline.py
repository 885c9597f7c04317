"""`grade(notebook, ...) -> GradeResult`: the one path every verb (check, grade, verify,
pytest, CI) takes. notebook -> plan -> execution in a kernel -> harvest -> score."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .course import Exercise, exercises_for
from .judge.answer_scan import scan_answers, scan_review
from .judge.notes import (
    broken_exercise_cells,
    device_findings,
    full_run_notes,
    harvest_notes,
    missing_answers_note,
    run_notes,
)
from .judge.shortcuts import shortcut_notes
from .kernel.wire import AUTOGRADER_TAG
from .options import (
    DEFAULT_SEED,
    SHARED_FLAGS,
    GradingError,
    Options,
    check_sandbox,
    resolve_seed,
    which_engine,
)
from .plan.cleanroom import clean_room, room_review
from .plan.course_tests import failed_course_tests, use_course_tests
from .plan.notebook import (
    NotebookError,
    cell_shas,
    detect_assignment,
    load_notebook,
    notebook_digest,
)
from .run.execute import Execution, run_notebook
from .run.notebook_process import NotebookProcess, sandbox_policy, start_processes

if TYPE_CHECKING:
    from .judge.curve import LossCurve
    from .judge.readback import Harvest, Speed
    from .judge.score import Score
    from .plan.calls import Plan

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
    curve: LossCurve | None = None  # fit on the digits, epoch by epoch (training assignment)
    # (function, torch call, line) for tensors the student's code puts on the CPU whatever
    # the inputs' device: works on a CPU, fails on a GPU
    device_findings: tuple[tuple[str, str, str], ...] = ()
    kernel_died: bool = False  # see execute.Execution.kernel_died
    # None where student code ran in the full sandbox; otherwise what was not isolated
    isolation_warning: str | None = None
    # Why a person should look before the score is final (each a sentence); the score
    # stands as computed. A batch records such a grading as `review`.
    review: tuple[str, ...] = ()


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


def grade(
    notebook: Path,
    options: Options = Options(),
    *,
    kernel_spec_manager: Any = None,
    server: Path | None = None,
) -> GradeResult:
    """Grade one notebook. Raises NotebookError when the file is not a gradeable notebook
    and GradingError for a bad option; every problem in the student's code is a score.
    `server` is a running fork server's socket (the forkserver package): the in-process
    engine forks the notebook's process from it, and without one from this process's own.
    `kernel_spec_manager` says how the kernel engine starts a kernel."""
    started = time.perf_counter()
    check_device(options.device)
    sandbox_warning = check_sandbox(options)
    inprocess = which_engine(options) == "inprocess"
    if not inprocess or (server is not None and not Path(server).exists()):
        server = None  # not wanted, or that server has gone
    notebook = Path(notebook)
    nb, digest = load_notebook(notebook)
    assignment, exercises = _exercises(nb, notebook, options)
    # The points come from the clean room (the course's notebook with only the student's
    # answer cells); the notebook as it is runs too only where it would run differently.
    room = clean_room(nb, assignment)
    use_course_tests(room.notebook, assignment)  # the instructor's, hidden tests included
    runs = [room.notebook] + ([nb] if room.needs_full_run and not room.unmatched else [])
    timings: dict[str, float] = {}
    from .run.sandbox import host_folder

    with tempfile.TemporaryDirectory(prefix="autograde-", dir=host_folder()) as tmp:
        # Each run's notebook has its own folder (in the sandbox, a tmpfs of its own); its
        # kernel's connection file and sockets live beside it.
        places = []
        for name in ("clean", "full")[: len(runs)]:
            workdir = Path(tmp) / name / "notebook"
            workdir.mkdir(parents=True)
            places.append((workdir, sandbox_policy(options, workdir, Path(tmp) / name / "kernel")))
        t = time.perf_counter()
        processes = start_processes(inprocess, server, places, kernel_spec_manager)
        done: list[_Run] = []
        try:
            for run_nb, (workdir, policy), process in zip(runs, places, processes, strict=True):
                done.append(_run(run_nb, exercises, options, workdir, policy, process,
                                 kernel_spec_manager, timings if not done else {}, since=t,
                                 plan=done[0].plan if done else None))  # fmt: skip
        finally:
            for process in processes[len(done) + 1 :]:  # never started: nothing else stops it
                process.stop()
        clean, full = done[0], (done[1] if len(done) > 1 else None)
        t = time.perf_counter()
        findings = device_findings(clean.plan, clean.harvest)
        # the student's own cells' errors, from the notebook as they wrote it
        notes = run_notes((full or clean).execution, options.cell_timeout)
        notes += missing_answers_note(room.missing)
        notes += shortcut_notes(nb, exercises)
        scanned = scan_answers(room.notebook)
        notes += tuple(f"Integrity: {f.sentence()}." for f in scanned)
        notes += harvest_notes(nb, assignment, clean.plan, clean.harvest, findings, clean.why)
        if full is not None:
            notes += full_run_notes(full.plan, full.harvest, full.why, notes)
        from .judge.curve import loss_curve
        from .judge.score import score

        result_score = score(exercises, clean.plan, clean.harvest, not_graded=clean.why,
                             notes=notes,
                             broken_cells=broken_exercise_cells(clean.execution),
                             course_failures=failed_course_tests(clean.execution.notebook,
                                                                 exercises))  # fmt: skip
        review = room_review(room, exercises, result_score.by_exercise(),
                             _full_points(exercises, full))  # fmt: skip
        review += scan_review(scanned)
        curve = loss_curve(clean.plan, clean.harvest)
        timings["score"] = time.perf_counter() - t
        if full is not None:
            timings["full run"] = full.execution.seconds
        executed = _keep_executed(options, (full or clean).execution)
        shutil.rmtree(tmp, ignore_errors=True)
    return GradeResult(notebook, assignment, result_score, options.seed, options.device,
                       time.perf_counter() - started,
                       sum(r.execution.seconds for r in done), digest,
                       executed=executed, timings=timings,
                       speed=clean.harvest.speed if clean.harvest is not None else None,
                       curve=curve,
                       device_findings=findings, kernel_died=clean.execution.kernel_died,
                       isolation_warning=sandbox_warning, review=review)  # fmt: skip


@dataclass(frozen=True)
class _Run:
    """One execution of a notebook in a grading, and what its grader's cell sent back
    (`harvest` None, and `why`, when nothing came back)."""

    plan: Plan
    execution: Execution
    harvest: Harvest | None
    why: str | None


def _run(
    run_nb: Any,
    exercises: tuple[Exercise, ...],
    options: Options,
    workdir: Path,
    policy: dict[str, Any],
    process: NotebookProcess,
    kernel_spec_manager: Any,
    timings: dict[str, float],
    since: float,
    plan: Plan | None,
) -> _Run:
    plan, prepared = _prepare(run_nb, exercises, options, process, timings, since, plan)
    process.ready()
    execution = _execute(prepared, plan, options, workdir, policy, process, kernel_spec_manager)
    timings.update(_execution_timings(execution))
    harvest, why = _harvest(execution)
    return _Run(plan, execution, harvest, why)


def _full_points(exercises: tuple[Exercise, ...], full: _Run | None) -> dict[str, tuple[int, int]]:
    """Points per exercise in the notebook as the student ran it ({} when it was not run)."""
    if full is None:
        return {}
    from .judge.score import score

    return score(exercises, full.plan, full.harvest, not_graded=full.why).by_exercise()


def _exercises(nb: Any, notebook: Path, options: Options) -> tuple[str, tuple[Exercise, ...]]:
    assignment = options.assignment or detect_assignment(nb, notebook)
    try:
        return assignment, exercises_for(assignment)
    except KeyError as exc:
        raise GradingError(str(exc.args[0])) from None


def _prepare(
    nb: Any,
    exercises: tuple[Exercise, ...],
    options: Options,
    process: NotebookProcess,
    timings: dict[str, float],
    since: float,
    plan: Plan | None = None,
) -> tuple[Plan, Any]:
    """The plan of calls (made here unless given: every run of a grading gets the same
    inputs) and the notebook carrying it. The process is stopped if this fails: nothing
    else would stop it."""
    try:
        # Imported here, after the notebook's process has started, so the two overlap.
        from .plan.calls import inject, make_plan
    except BaseException:
        process.stop()
        raise
    timings["start"] = time.perf_counter() - since
    t = time.perf_counter()
    if plan is None:
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
    return plan, prepared


def _execute(
    prepared: Any,
    plan: Plan,
    options: Options,
    workdir: Path,
    policy: dict[str, Any],
    process: NotebookProcess,
    kernel_spec_manager: Any,
) -> Execution:
    return run_notebook(
        prepared,
        # the students' seed, so the notebook's own cells run as the student saw them: the
        # grading seed stays here (its inputs arrive, made, in the grader's last cell)
        parameters={
            "seed": DEFAULT_SEED,
            "device": options.device,
            "data_path": options.data_path,
        },
        workdir=workdir,
        # backstops: the kernel enforces the real limits, cell by cell and call by call
        cell_timeout=options.cell_timeout,
        tagged_timeout=options.call_timeout * len(plan.calls),
        grace=_GRACE,
        total_timeout=options.notebook_timeout,
        skip_tag=AUTOGRADER_TAG,
        kernel_spec_manager=kernel_spec_manager,
        sandbox=policy,
        km=process.km,
        server=process.server,
        output_kb=options.output_kb,
    )


def _execution_timings(execution: Execution) -> dict[str, float]:
    """How long the notebook ran, its student's cells, the grader's calls (its last
    cell), and the engine's own parts."""
    timings = {"execute": execution.seconds}
    student, grader = 0.0, []
    for cell in execution.notebook.cells if execution.notebook is not None else ():
        seconds = cell.get("metadata", {}).get("papermill", {}).get("duration")
        if not isinstance(seconds, int | float):
            continue
        if AUTOGRADER_TAG in cell.get("metadata", {}).get("tags", []):
            grader.append(float(seconds))
        else:
            student += float(seconds)
    if execution.notebook is not None:
        timings.update({"notebook cells": student, "grader calls": grader[-1] if grader else 0.0})
    return {**timings, **execution.details}


def _harvest(execution: Execution) -> tuple[Harvest | None, str | None]:
    """The kernel's results, or None and why there are none."""
    from .judge.readback import HarvestError, read_harvest

    if not _grading_cell_finished(execution.notebook):
        # Results are trusted only when the grader's own cell produced them; any found
        # otherwise were left by something else.
        why = execution.stopped or "the grader's cell at the end of the notebook did not finish"
        return None, why
    try:
        return read_harvest(execution.notebook), None
    except HarvestError as exc:
        return None, execution.stopped or str(exc)


def _grading_cell_finished(executed: Any) -> bool:
    if executed is None or not executed.cells:
        return False
    last = executed.cells[-1]
    return (
        AUTOGRADER_TAG in last.get("metadata", {}).get("tags", [])
        and last.get("execution_count") is not None
        and not any(o.get("output_type") == "error" for o in last.get("outputs", []))
    )


def _keep_executed(options: Options, execution: Execution) -> Path | None:
    """The executed notebook, as the student wrote it, where the options ask for it."""
    if options.keep_executed is None or execution.notebook is None:
        return None
    import nbformat

    from .plan.calls import strip_injected

    options.keep_executed.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(strip_injected(execution.notebook), options.keep_executed)
    return options.keep_executed


__all__ += ["NotebookError", "check_device"]
