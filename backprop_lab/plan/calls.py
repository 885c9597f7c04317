"""Between the grader and the kernel: the plan of calls, and the cells that carry it and
the kernel code (`backprop_lab.kernel`) into the notebook. What comes back is read by
`readback.py`.

The grader makes every input itself (seeded) and carries them, `torch.save`d, in the source
of its last cell: nothing on a disk the notebook can reach holds them. The answers come
back as that cell's one results message (see `kernel.wire`), read from the executed
notebook with `torch.load(weights_only=True)` and `json`: plain tensors and data, never a
pickled object from the student's process.
"""

from __future__ import annotations

import base64
import functools
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import torch
from nbformat import NotebookNode

from .. import kernel
from ..course import Case, Check, Exercise, Inputs, get, make_inputs
from ..kernel.wire import AUTOGRADER_TAG, KernelPlan, PlannedCall, SpeedSpec
from .notebook import COURSE_TEST_KEY, is_test_cell, mark_places

__all__ = [
    "AUTOGRADER_TAG",
    "SPEED_SHAPE",
    "Call",
    "Plan",
    "inject",
    "make_plan",
    "strip_injected",
]

# A student's matmul still running after this many seconds on the speed shape is stopped:
# the lesson's triple loop takes about a second a call, and "over 0.1 s" ranks it. Each
# other rung gets SPEED_BUDGET seconds of runs, at least three: the best of them ranks it
# (the slowest, the elementwise one at ~1 ms, gets about twenty).
SPEED_CAP = 0.1
SPEED_BUDGET = 0.02


@dataclass(frozen=True)
class Call:
    """One call of student code on one case. Several checks may share it (lin_grad's
    inp.g, w.g and b.g checks read the same call)."""

    key: str
    target: str
    protocol: str
    case: Case
    cell: str  # the exercise's nbgrader grade_id, to pick the right definition
    rung: int  # which definition of `target` this is, in notebook order (matmul's ladder)
    rungs: int  # how many exercises define `target`
    inputs: Inputs = field(repr=False, compare=False)
    # The reference's answers on these inputs, by the values asked for: computed once per
    # plan, and a plan serves a whole batch (see `make_plan`).
    expected: dict[tuple[str, ...], Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Plan:
    calls: dict[str, Call]
    # (exercise cell, check name) -> the keys of its calls, one per case, in case order
    checks: dict[tuple[str, str], tuple[str, ...]]
    device: str
    seed: int
    # what `inject` carries into every notebook of the batch: the inputs, saved once
    memo: dict[str, str] = field(default_factory=dict, repr=False, compare=False)


def call_key(exercise: Exercise, check: Check, case: Case) -> str:
    return f"{exercise.cell}/{check.target}/{check.protocol}/{case.name}"


SPEED_SHAPE = (5, 784, 10)  # the lesson's matmul: 5 images of 784 pixels @ 784 x 10 weights


@functools.lru_cache(maxsize=8)
def make_plan(exercises: tuple[Exercise, ...], *, seed: int, device: str) -> Plan:
    """The calls of student code a grading makes, each with its inputs (seeded). The same
    for every submission of a batch (same exercises, seed and device): made once per
    process and shared, read-only, by every grading."""
    # Exercises that grade the same name in turn (matmul's rungs) are told apart by cell,
    # and by order when a student's cell lost its nbgrader metadata.
    by_target: dict[str, list[str]] = {}
    for ex in exercises:
        for check in ex.checks:
            cells = by_target.setdefault(check.target, [])
            if ex.cell not in cells:
                cells.append(ex.cell)
    calls: dict[str, Call] = {}
    checks: dict[tuple[str, str], tuple[str, ...]] = {}
    for ex in exercises:
        for check in ex.checks:
            keys = []
            for case in check.cases:
                key = call_key(ex, check, case)
                if key not in calls:
                    cells = by_target[check.target]
                    calls[key] = Call(
                        key,
                        check.target,
                        check.protocol.name,
                        case,
                        ex.cell,
                        cells.index(ex.cell),
                        len(cells),
                        make_inputs(check.protocol, case, seed, key),
                    )
                keys.append(key)
            checks[(ex.cell, check.name)] = tuple(keys)
    return Plan(calls, checks, device, seed)


def _code_cell(source: str) -> NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = [AUTOGRADER_TAG]
    return cell


def _protected() -> list[str]:
    """The project's package folder, the grader's and the reference's: a notebook that
    loads code from it (but for the course's data) is reported, whatever name it imports
    it under."""
    from .. import __file__ as package_init

    return [str(Path(package_init).parent.resolve())]


def inject(
    nb: NotebookNode,
    plan: Plan,
    *,
    call_timeout: float,
    cell_shas: dict[str, str],
    limits: dict[str, float | None] | None = None,
) -> NotebookNode:
    """A copy of `nb` with the grader's two cells, the last carrying the plan and its
    inputs. `cell_shas` maps an exercise cell's grade_id to the hash of its source in
    this notebook; `limits` are the kernel's own (see `kernel.recording.start`: cell_timeout,
    memory_mb, output_kb, confine_writes)."""
    if "inputs" not in plan.memo:
        buffer = io.BytesIO()
        torch.save({k: c.inputs for k, c in plan.calls.items()}, buffer)
        plan.memo["inputs"] = base64.b64encode(buffer.getvalue()).decode()
    inputs_b64 = plan.memo["inputs"]
    rung_cells: dict[str, set[str]] = {}
    for c in plan.calls.values():
        rung_cells.setdefault(c.target, set()).add(c.cell)
    calls = tuple(
        PlannedCall(
            c.key,
            c.target,
            c.protocol,
            get(c.protocol).recipe,
            call_timeout,
            c.cell,
            cell_shas.get(c.cell),
            c.rung,
            c.rungs,
            # the cells of the other exercises that define the same name (matmul's rungs)
            tuple(sorted(cell_shas[x] for x in rung_cells[c.target] - {c.cell} if x in cell_shas)),
        )
        for c in plan.calls.values()
    )
    # the lesson's timing: the student's matmuls against torch on 5x784 @ 784x10
    speed = SpeedSpec(SPEED_SHAPE, SPEED_BUDGET, SPEED_CAP)
    plan_json = KernelPlan(
        plan.device,
        calls,
        speed if any(get(c.protocol).recipe.timed for c in plan.calls.values()) else None,
        tuple(_protected()),
    ).to_json()
    targets = sorted({c.target for c in plan.calls.values()})
    start = (
        "# Added by the autograder (not part of your notebook): records your definitions.\n"
        f"__autograde__ = {{}}\nexec(compile({kernel.SOURCE!r}, {kernel.GRADER_FILE!r}, 'exec'),"
        " __autograde__)\n"
        f"__autograde__['start']({targets!r}, **{dict(limits or {})!r})"
    )
    finish = (
        "# Added by the autograder: calls your functions on the grader's inputs.\n"
        f"__autograde_harvest__ = {{}}\nexec(compile({kernel.SOURCE!r}, "
        f"{kernel.GRADER_FILE!r}, 'exec'), __autograde_harvest__)\n"
        "__autograde_harvest__['adopt'](__autograde__.get('_State'))\n"
        f"__autograde_harvest__['harvest']({plan_json!r}, {inputs_b64!r})"
    )
    out = nbformat.from_dict(nb)  # a deep copy
    mark_places(out)  # cells the clean room placed keep their places
    # the notebook's own test cells run only where they are the course's (the clean room's)
    cells = [c for c in out.cells if not is_test_cell(c) or COURSE_TEST_KEY in c.metadata]
    out.cells = [_code_cell(start), *cells, _code_cell(finish)]
    return out


def strip_injected(nb: NotebookNode) -> NotebookNode:
    """The executed notebook as the student wrote it: without the grader's cells."""
    nb.cells = [
        c
        for c in nb.cells
        if AUTOGRADER_TAG not in c.get("metadata", {}).get("tags", [])
        and "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])
    ]
    return nb
