"""Between the grader and the kernel: the plan of calls, the cells that carry it into the
notebook, and the reader of what comes back.

The grader makes every input itself (seeded) and carries them, `torch.save`d, in the source
of its last cell: nothing on a disk the notebook can reach holds them. The answers come
back as that cell's one results message (see kernel.py), read from the executed notebook
with `torch.load(weights_only=True)` and `json`: plain tensors and data, never a pickled
object from the student's process.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import torch
from nbformat import NotebookNode
from torch import Tensor

from . import kernel
from .exercises import Case, Check, Exercise
from .protocols import Inputs, make_inputs

__all__ = [
    "AUTOGRADER_TAG",
    "SPEED_SHAPE",
    "Call",
    "CallResult",
    "Harvest",
    "HarvestError",
    "Plan",
    "Speed",
    "Value",
    "inject",
    "make_plan",
    "read_harvest",
    "strip_injected",
]

AUTOGRADER_TAG = "autograder"
# A student's matmul still running after this many seconds on the speed shape is stopped:
# the lesson's triple loop takes about a second a call, and "over 0.1 s" ranks it. Each
# other rung gets SPEED_BUDGET seconds of runs, at least three: the best of them ranks it
# (the slowest, the elementwise one at ~1 ms, gets about twenty).
SPEED_CAP = 0.1
SPEED_BUDGET = 0.02
_KERNEL_SOURCE = Path(kernel.__file__).read_text(encoding="utf-8")


class HarvestError(RuntimeError):
    """The kernel's results are missing or not plain data."""


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
    """The grader's and the reference's folders: a notebook that loads code from them is
    reported, whatever name it imports it under."""
    import reference

    from . import __file__ as grader_init

    return [str(Path(grader_init).parent.resolve()), str(Path(reference.__file__).parent.resolve())]


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
    this notebook; `limits` are the kernel's own (see `kernel.start`: cell_timeout,
    memory_mb, output_kb, confine_writes)."""
    if "inputs" not in plan.memo:
        buffer = io.BytesIO()
        torch.save({k: c.inputs for k, c in plan.calls.items()}, buffer)
        plan.memo["inputs"] = base64.b64encode(buffer.getvalue()).decode()
    inputs_b64 = plan.memo["inputs"]
    rung_cells: dict[str, set[str]] = {}
    for c in plan.calls.values():
        rung_cells.setdefault(c.target, set()).add(c.cell)
    calls = [
        {
            "key": c.key,
            "target": c.target,
            "protocol": c.protocol,
            "timeout": call_timeout,
            "cell": c.cell,
            "cell_sha": cell_shas.get(c.cell),
            "index": c.rung,
            "rungs": c.rungs,
            # the cells of the other exercises that define the same name (matmul's rungs)
            "other_shas": sorted(
                cell_shas[x] for x in rung_cells[c.target] - {c.cell} if x in cell_shas
            ),
        }
        for c in plan.calls.values()
    ]
    plan_json = json.dumps(
        {
            "device": plan.device,
            "calls": calls,
            # the lesson's timing: the student's matmuls against torch on 5x784 @ 784x10
            "speed": {"shape": list(SPEED_SHAPE), "budget": SPEED_BUDGET, "cap": SPEED_CAP}
            if any(c.protocol == "matmul" for c in plan.calls.values())
            else None,
            "protected": _protected(),
        }
    )
    targets = sorted({c.target for c in plan.calls.values()})
    start = (
        "# Added by the autograder (not part of your notebook): records your definitions.\n"
        f"__autograde__ = {{}}\nexec(compile({_KERNEL_SOURCE!r}, {kernel.GRADER_FILE!r}, 'exec'),"
        " __autograde__)\n"
        f"__autograde__['start']({targets!r}, **{dict(limits or {})!r})"
    )
    finish = (
        "# Added by the autograder: calls your functions on the grader's inputs.\n"
        f"__autograde_harvest__ = {{}}\nexec(compile({_KERNEL_SOURCE!r}, "
        f"{kernel.GRADER_FILE!r}, 'exec'), __autograde_harvest__)\n"
        "__autograde_harvest__['adopt'](__autograde__.get('_State'))\n"
        f"__autograde_harvest__['harvest']({plan_json!r}, {inputs_b64!r})"
    )
    out = nbformat.from_dict(nb)  # a deep copy
    _mark_places(out)
    cells = [c for c in out.cells if not _is_test_cell(c)]
    out.cells = [_code_cell(start), *cells, _code_cell(finish)]
    return out


PLACE_KEY = "autograde_place"  # cell metadata: where the student sees this cell


def _mark_places(nb: NotebookNode) -> None:
    """Note on each cell where the student sees it, before the grader adds or removes
    cells: its position in their file (from 1), the nearest heading above it, and the
    exercise whose solution it holds; messages about a cell use these."""
    heading = ""
    for position, cell in enumerate(nb.cells, start=1):
        if cell.get("cell_type") == "markdown":
            titles = [ln.lstrip("#").strip() for ln in cell.source.splitlines()
                      if ln.startswith("#")]  # fmt: skip
            heading = titles[-1] if titles else heading
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        exercise = meta.get("grade_id") if meta.get("solution") else None
        cell.metadata[PLACE_KEY] = {"position": position, "heading": heading,
                                    "exercise": exercise}  # fmt: skip


def _is_test_cell(cell: NotebookNode) -> bool:
    """The notebook's own graded test cells. The grader's checks replace them, so they are
    not run: they would only cost time, and a hanging function would hang them too."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def strip_injected(nb: NotebookNode) -> NotebookNode:
    """The executed notebook as the student wrote it: without the grader's cells."""
    nb.cells = [
        c
        for c in nb.cells
        if AUTOGRADER_TAG not in c.get("metadata", {}).get("tags", [])
        and "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])
    ]
    return nb


# -- reading results back -----------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    """One value the kernel reported: a tensor, or why there is none."""

    kind: str  # tensor | missing | none | sequence | other
    tensor: Tensor | None = None
    dtype: str | None = None
    device: str | None = None
    type: str | None = None
    items: tuple[Value, ...] = ()
    repr: str = ""


@dataclass(frozen=True)
class CallResult:
    values: dict[str, Value]
    error: dict[str, Any] | None
    picked: str | None
    seconds: float
    # what the kernel noticed: "globals" (notebook tensors the code reads), "replaced"
    # (parameters overwritten), "arg_order" (Model's constructor's order)
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Harvest:
    calls: dict[str, CallResult]
    defined: tuple[str, ...]
    debugger_calls: int = 0  # breakpoints the kernel skipped
    integrity: tuple[str, ...] = ()  # what the notebook did to the grading environment
    speed: Speed | None = None  # the matmul timings, for the matmul assignment


@dataclass(frozen=True)
class Speed:
    """Seconds per call on the lesson's shapes (a, b) = (5, 784) @ (784, 10), measured in
    the student's kernel: (label, seconds or None when it failed, is the student's, the
    run was stopped at that many seconds: a lower bound)."""

    shape: tuple[int, int, int]
    rows: tuple[tuple[str, float | None, bool, bool], ...]
    # torch.matmul's time moved more than 3x during the timings: too busy a machine to rank
    noisy: bool = False


def _value(meta: dict[str, Any], key: str, tensors: dict[str, Tensor]) -> Value:
    kind = meta.get("kind")
    if kind == "tensor":
        t = tensors.get(key)
        if not isinstance(t, Tensor):
            raise HarvestError(f"tensor {key} is missing from the results")
        return Value("tensor", t, meta.get("dtype"), meta.get("device"))
    if kind == "sequence":
        items = tuple(_value(m, f"{key}[{i}]", tensors) for i, m in enumerate(meta["items"]))
        return Value("sequence", type=meta.get("type"), items=items)
    if kind in ("missing", "none", "other"):
        return Value(kind, type=meta.get("type"), repr=str(meta.get("repr", "")))
    raise HarvestError(f"unknown value kind {kind!r} for {key}")


def results_messages(executed: NotebookNode | None) -> list[Any]:
    """The results messages in the output of the grader's last cell."""
    if executed is None or not executed.cells:
        return []
    last = executed.cells[-1]
    if AUTOGRADER_TAG not in last.get("metadata", {}).get("tags", []):
        return []
    return [
        o["data"][kernel.RESULTS_MIME]
        for o in last.get("outputs", [])
        if o.get("output_type") == "display_data" and kernel.RESULTS_MIME in o.get("data", {})
    ]


def read_harvest(executed: NotebookNode | None) -> Harvest:
    """The kernel's results, as data, from the grader's cell's output in the executed
    notebook. Raises HarvestError if there is not exactly one results message, or if it
    is not plain tensors and JSON (a pickled object is refused by `weights_only=True`)."""
    messages = results_messages(executed)
    if not messages:
        raise HarvestError("the grading cell did not send its results")
    if len(messages) > 1:
        raise HarvestError(
            f"the grading cell's output holds {len(messages)} results messages, not one: "
            "something in the notebook sent results of its own, so none can be trusted"
        )
    message = messages[0]
    try:
        raw = base64.b64decode(message["tensors"], validate=True)
        tensors = torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu")
        data = message["results"]
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, KeyError, TypeError) as exc:
        raise HarvestError(f"the results are not plain data: {exc}") from exc
    if not isinstance(tensors, dict) or not isinstance(data, dict):
        raise HarvestError("the results have the wrong structure")
    calls = {}
    for key, entry in data.get("calls", {}).items():
        values = {k: _value(m, f"{key}|{k}", tensors) for k, m in entry.get("values", {}).items()}
        facts = entry.get("facts") or {}
        if not isinstance(facts, dict):
            raise HarvestError(f"facts of {key} are not a mapping")
        calls[key] = CallResult(
            values,
            entry.get("error"),
            entry.get("picked"),
            float(entry.get("seconds", 0.0)),
            facts,
        )
    skipped = data.get("debugger_calls", 0)
    if not isinstance(skipped, int):
        raise HarvestError("debugger_calls is not a count")
    integrity = data.get("integrity", [])
    if not isinstance(integrity, list) or not all(isinstance(i, str) for i in integrity):
        raise HarvestError("integrity is not a list of lines")
    return Harvest(
        calls, tuple(data.get("defined", ())), skipped, tuple(integrity), _speed(data.get("speed"))
    )


def _speed(data: Any) -> Speed | None:
    if data is None:
        return None
    try:
        rows = tuple(
            (str(label), None if s is None else float(s), bool(mine), bool(at_least))
            for label, s, mine, at_least in data["rows"]
        )
        ar, ac, bc = (int(x) for x in data["shape"])
    except (KeyError, TypeError, ValueError) as exc:
        raise HarvestError(f"the speed results have the wrong structure: {exc}") from exc
    return Speed((ar, ac, bc), rows, data.get("noisy") is True)
