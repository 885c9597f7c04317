"""What an executed notebook says happened: the errors in the student's cells and the
cells whose printing passed the cap, each placed where the student finds its cell."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nbformat import NotebookNode

from ..plan.notebook import COURSE_TEST_KEY, cell_place

# What the kernel prints once a cell's output passes the cap (kernel._capped).
OUTPUT_CAP_MARK = "[autograder: output beyond "
# What usually makes a notebook of this course run out of memory.
OUT_OF_MEMORY_HINT = (
    "a broadcast such as (N, n_in, n_out) before a sum asks for far more memory than the "
    "matrix product it stands for (`inp.t() @ out.g`); look for a tensor much larger than "
    "the inputs"
)


@dataclass(frozen=True)
class CellError:
    index: int  # position in the student's own file, from 1 (0: not known)
    ename: str
    evalue: str
    heading: str = ""  # the nearest heading above the cell
    exercise: str | None = None  # the exercise whose solution cell this is

    def where(self) -> str:
        return cell_place(self.index, self.heading, self.exercise)


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


def capped_cells(nb: NotebookNode) -> tuple[tuple[str, float | None], ...]:
    """(where, seconds it ran) for each student cell whose printing passed the cap."""
    found = []
    for cell in nb.cells:
        place = cell.get("metadata", {}).get("autograde_place")
        if not place:
            continue
        outputs = cell.get("outputs", [])
        if any(OUTPUT_CAP_MARK in str(o.get("text", "")) for o in outputs):
            seconds = cell.metadata.get("papermill", {}).get("duration")
            found.append((_place(cell), seconds if isinstance(seconds, int | float) else None))
    return tuple(found)


def cell_errors(nb: NotebookNode, skip_tag: str) -> tuple[CellError, ...]:
    """The errors in the student's cells, each placed where the student sees its cell
    (harvest.inject notes that in the cell's metadata before adding its own cells)."""
    errors = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if skip_tag in tags or "injected-parameters" in tags or "papermill-error-cell-tag" in tags:
            continue
        if COURSE_TEST_KEY in cell.get("metadata", {}):
            continue  # the course's tests: judged by course_tests.py, never shown as they ran
        place = cell.get("metadata", {}).get("autograde_place", {})
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "error":
                errors.append(CellError(
                    place.get("position", 0), out.get("ename", ""), out.get("evalue", ""),
                    place.get("heading", ""), place.get("exercise"),
                ))  # fmt: skip
    return tuple(errors)


def _place(cell: Any) -> str:
    place = cell.get("metadata", {}).get("autograde_place") or {}
    return cell_place(place.get("position", 0), place.get("heading", ""), place.get("exercise"))


def past_its_limit(nb: NotebookNode | None, cell_limit: float, tagged_limit: float,
                   tag: str) -> str:  # fmt: skip
    """Why execution stopped when a cell outlived its limit and the grace after it (the
    kernel's own alarm did not stop it): which cell, and the limit in force for it."""
    running = [
        c for c in (nb.cells if nb is not None else ())
        if c.get("metadata", {}).get("papermill", {}).get("status") == "running"
    ]  # fmt: skip
    cell = running[-1] if running else {}
    if tag in cell.get("metadata", {}).get("tags", []):
        what, limit = "the grader's calls into your functions", tagged_limit
    else:
        placed = cell.get("metadata", {}).get("autograde_place")
        what, limit = (_place(cell) if placed else "a cell"), cell_limit
    return (
        f"{what} ran past the {limit:g} s limit and went on after being told to stop (a "
        "bare `except:` or `except BaseException:` also catches that), so the rest of the "
        "notebook did not run"
    )


def stopped_by_keeper(why: str) -> str:
    """The message for a notebook the sandbox's keeper stopped (sandbox/keeper.py)."""
    if "MB" in why:
        return f"the notebook ran out of memory and was stopped ({why}): {OUT_OF_MEMORY_HINT}"
    return f"the notebook was stopped: {why}; a notebook of this course needs a handful"
