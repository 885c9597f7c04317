"""The course's own tests: each exercise's nbgrader test cell as the instructor wrote it,
hidden tests included, run in the clean room after the student's answers, and judged as
nbgrader judges it: all or nothing.

The exercise table (backprop_lab/course) grades each exercise check by check, with the grader's
own inputs; the notebooks' test cells are what nbgrader grades. An instructor who adds a
hidden test to a notebook ("relu_grad must not modify out.g in place") changed the
nbgrader verdict and nothing else, and the two graders disagreed. So the test cells run
here too, and an exercise whose every check passed but whose test cell fails scores what
nbgrader gives it: nothing. They can only take points away: a test cell that passes
(perhaps because a student's code tampered with the notebook's helpers) never adds any.

Where they come from: the file named by $AUTOGRADE_COURSE_TESTS (the Gradescope bundle's),
else the course repository's `solutions/` beside this package (an instructor's install).
A student's install has neither: its clean room runs the released notebook's visible
tests, which are the same cells without the hidden part.

What a student is told of a failure: which exercise, and the kind of error, never the
error's text, which the student's own code can set to anything, such as the source of the
hidden test it is running in.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

from nbformat import NotebookNode

from ..course import Exercise
from .notebook import COURSE_TEST_KEY, is_test_cell, nbgrader_meta, read_notebook

ENV = "AUTOGRADE_COURSE_TESTS"  # a JSON file: {assignment: {test cell's grade_id: source}}


@functools.cache
def _from_file(path: str) -> dict[str, dict[str, str]]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


@functools.cache
def _from_solutions(assignment: str) -> dict[str, str]:
    folder = Path(__file__).resolve().parents[2] / "solutions" / assignment
    cells: dict[str, str] = {}
    for path in sorted(folder.glob("*.ipynb")) if folder.is_dir() else ():
        for cell in read_notebook(path).cells:
            if is_test_cell(cell):
                cells[nbgrader_meta(cell)["grade_id"]] = cell.source
    return cells


def course_tests(assignment: str) -> dict[str, str]:
    """The instructor's test cells of `assignment` ({grade_id: source}); empty where this
    installation has none (a student's)."""
    path = os.environ.get(ENV)
    if path:
        return dict(_from_file(path).get(assignment, {}))
    return dict(_from_solutions(assignment))


def all_course_tests(root: Path) -> dict[str, dict[str, str]]:
    """Every assignment's test cells in the course repository at `root`, for a bundle."""
    found: dict[str, dict[str, str]] = {}
    for folder in sorted((root / "solutions").iterdir()):
        for path in sorted(folder.glob("*.ipynb")):
            for cell in read_notebook(path).cells:
                if is_test_cell(cell):
                    found.setdefault(folder.name, {})[nbgrader_meta(cell)["grade_id"]] = cell.source
    return found


def use_course_tests(nb: NotebookNode, assignment: str) -> None:
    """Give the clean-room notebook `nb` (in place) the instructor's test cells where this
    installation has them, and mark every test cell as the course's."""
    tests = course_tests(assignment)
    for cell in nb.cells:
        if is_test_cell(cell):
            gid = nbgrader_meta(cell)["grade_id"]
            cell.source = tests.get(gid, cell.source)
            cell.metadata[COURSE_TEST_KEY] = gid


def failed_course_tests(nb: NotebookNode | None, exercises: tuple[Exercise, ...]) -> dict[str, str]:
    """{exercise cell: the kind of error} for each exercise whose test cell failed in the
    executed clean-room notebook `nb`."""
    by_test = {ex.test_cell: ex.cell for ex in exercises}
    failed: dict[str, str] = {}
    for cell in nb.cells if nb is not None else ():
        exercise = by_test.get(cell.get("metadata", {}).get(COURSE_TEST_KEY))
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if exercise and errors:
            # a name only: the error's text is the student's code's to choose
            name = re.sub(r"[^A-Za-z0-9_]", "", str(errors[0].get("ename", "")))[:40]
            failed[exercise] = name or "error"
    return failed
