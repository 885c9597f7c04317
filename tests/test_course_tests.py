"""The course's own tests graded beside the exercise table (backprop_lab/plan/course_tests.py):
an instructor who adds a hidden test to a notebook changes autograde's verdict as it
changes nbgrader's, and a student is never shown the hidden test's text."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from grading_tools import exercise, full_marks
from notebook_tools import SOLUTION, STUB, edited

from backprop_lab.pipeline import Options, grade
from backprop_lab.plan import course_tests
from backprop_lab.plan.course_tests import ENV, all_course_tests, use_course_tests
from backprop_lab.plan.notebook import is_test_cell, nbgrader_meta, read_notebook

ROOT = Path(__file__).resolve().parents[1]
IN_PLACE = """def relu_grad(inp, out):
    out.g[inp < 0] = 0  # the right values, written over the output's gradient
    inp.g = out.g
"""
# What the instructor adds at the end of relu_grad's test cell, as a hidden test.
NEW_HIDDEN_TEST = """
### BEGIN HIDDEN TESTS
inp = randn(4, 5)
out = relu(inp)
out.g = randn(4, 5)
before = out.g.clone()
relu_grad(inp, out)
assert torch.equal(out.g, before), "HIDDEN-SECRET: relu_grad must not modify out.g in place"
### END HIDDEN TESTS
"""


@pytest.fixture
def edited_course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The course's test cells with the instructor's new hidden test, as a bundle ships them."""
    tests = all_course_tests(ROOT)
    tests["backprop"]["relu_grad_tests"] += NEW_HIDDEN_TEST
    path = tmp_path / "course_tests.json"
    path.write_text(json.dumps(tests))
    monkeypatch.setenv(ENV, str(path))
    return path


def _points(result, exercise: str) -> int:
    return sum(c.score for c in result.score.checks if c.exercise == exercise)


@pytest.mark.slow
def test_a_new_hidden_test_changes_autograde_s_verdict_as_nbgrader_s(
    edited_course: Path, tmp_path: Path
) -> None:
    student = tmp_path / "backprop.ipynb"
    nbformat.write(edited(SOLUTION["backprop"], [("relu_grad", IN_PLACE, None)]), student)
    solution = grade(SOLUTION["backprop"], Options())
    assert solution.score.total == full_marks("backprop")  # the solution passes the new test
    caught = grade(student, Options())
    # nbgrader gives relu_grad's test cell 0 of its points: so does autograde now, and only
    # relu_grad's (the hidden test is in relu_grad's test cell alone)
    lost = exercise("relu_grad").points
    assert (caught.score.total, _points(caught, "relu_grad")) == (full_marks("backprop") - lost, 0)
    [failed] = {c.message for c in caught.score.checks if c.exercise == "relu_grad"}
    assert "the course's own tests for" in failed and "AssertionError" in failed
    text = json.dumps([c.__dict__ for c in caught.score.checks], default=str)
    assert "HIDDEN-SECRET" not in text and "torch.equal" not in text  # nothing of the test


@pytest.mark.slow
def test_without_the_new_test_the_same_code_keeps_its_points(tmp_path: Path) -> None:
    student = tmp_path / "backprop.ipynb"
    nbformat.write(edited(SOLUTION["backprop"], [("relu_grad", IN_PLACE, None)]), student)
    assert grade(student, Options()).score.total == full_marks("backprop")


def test_the_clean_room_runs_the_instructor_s_test_cells(edited_course: Path) -> None:
    """The released notebook's test cells (visible tests only) become the instructor's,
    hidden tests included, marked as the course's."""
    nb = read_notebook(STUB["backprop"])
    use_course_tests(nb, "backprop")
    cells = {nbgrader_meta(c)["grade_id"]: c for c in nb.cells if is_test_cell(c)}
    assert "HIDDEN-SECRET" in cells["relu_grad_tests"].source
    assert all(c.metadata[course_tests.COURSE_TEST_KEY] == gid for gid, c in cells.items())


def test_a_student_s_install_runs_the_visible_tests_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without solutions/ beside the package or a bundle's file, there are no hidden tests
    to run: the released notebook's cells stay as they are."""
    empty = tmp_path / "none.json"
    empty.write_text("{}")
    monkeypatch.setenv(ENV, str(empty))
    nb = read_notebook(STUB["backprop"])
    before = [c.source for c in nb.cells]
    use_course_tests(nb, "backprop")
    assert [c.source for c in nb.cells] == before


def test_a_student_chosen_error_text_is_never_shown() -> None:
    """The error's text can be anything the student's code raises (the hidden test's own
    source, read from the shell's history): only a sanitised error name is kept."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("hidden")
    cell.metadata[course_tests.COURSE_TEST_KEY] = "relu_grad_tests"
    leak = nbformat.v4.new_output("error", ename="Leak<assert x == 1>",
                                  evalue="### BEGIN HIDDEN TESTS ...", traceback=[])  # fmt: skip
    cell.outputs = [leak]
    nb.cells = [cell]
    from backprop_lab.course import exercises_for

    failed = course_tests.failed_course_tests(nb, exercises_for("backprop"))
    assert failed == {"relu_grad": "Leakassertx1"}
