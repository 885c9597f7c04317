"""The student notebooks are exactly what nbgrader generates from the solutions: stubs
that raise NotImplementedError, and no solution or hidden test left in them."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from notebook_tools import ASSIGNMENTS, ROOT, SOLUTIONS

from backprop_lab.verbs.assignments import find_leaks, generated_differences, secret_lines

# nbgrader generates the course once per session (tests/conftest.py), on the worker of the
# `course` group: test_one_verdict.py autogrades in copies of it
pytestmark = pytest.mark.xdist_group("course")


def _pairs():
    return [(s, ROOT / "assignments" / s.relative_to(ROOT / "solutions")) for s in SOLUTIONS]


@pytest.fixture(scope="module")
def course_copy(tmp_path_factory):
    """A copy of the course files to break on purpose."""
    root = tmp_path_factory.mktemp("course")
    shutil.copy2(ROOT / "nbgrader_config.py", root)
    for d in ("solutions", "assignments"):
        shutil.copytree(ROOT / d, root / d)
    return root


def test_every_solution_has_a_committed_assignment():
    assert [a.relative_to(ROOT / "assignments") for a in ASSIGNMENTS] == [
        s.relative_to(ROOT / "solutions") for s in SOLUTIONS
    ]


@pytest.fixture(scope="module")
def generated(generated_course: Path) -> Path:
    """What nbgrader generates from the solutions today (once a session: ~10 s)."""
    return generated_course / "assignments"


@pytest.mark.slow
def test_assignments_are_what_nbgrader_generates_today(generated):
    assert generated_differences(ROOT, generated) == []


@pytest.mark.slow
def test_sync_check_catches_a_hand_edited_assignment(course_copy, generated):
    path = course_copy / "assignments" / "backprop" / "backprop.ipynb"
    nb = nbformat.read(path, as_version=4)
    stub = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "lin_grad")
    stub.source = stub.source.replace("raise NotImplementedError()", "pass")
    nbformat.write(nb, path)
    (course_copy / "assignments" / "matmul" / "matmul.ipynb").unlink()

    problems = generated_differences(course_copy, generated)  # same solutions as ROOT
    assert any(
        p.startswith("assignments/backprop/backprop.ipynb: cell ")
        and p.endswith("(lin_grad): source differs")
        for p in problems
    ), problems
    assert any(p.startswith("assignments/matmul/matmul.ipynb: missing") for p in problems)


@pytest.mark.parametrize(("source", "released"), _pairs(), ids=lambda p: p.parent.name)
def test_no_solution_or_hidden_test_leaks(source, released):
    src = nbformat.read(source, as_version=4)
    assert len(secret_lines(src)) > 10  # the check below has something to look for
    assert find_leaks(src, nbformat.read(released, as_version=4)) == []


@pytest.mark.parametrize(("source", "released"), _pairs(), ids=lambda p: p.parent.name)
def test_leak_check_finds_a_planted_solution_line_and_hidden_test(source, released):
    src = nbformat.read(source, as_version=4)
    nb = nbformat.read(released, as_version=4)
    # one line of each assignment's solutions
    solution_line = {"matmul": "c[i] = (a[i, :, None] * b).sum(dim=0)",
                     "backprop": "w.g = inp.t() @ out.g",
                     "training": "cross_entropy_grad(self.inp, self.targ)",
                     }[source.parent.name]  # fmt: skip
    test_cell = next(c for c in src.cells if "### BEGIN HIDDEN TESTS" in c.source)
    hidden = test_cell.source.split("### BEGIN HIDDEN TESTS")[1].strip().splitlines()[0]
    nb.cells[-1].source += f"\n{solution_line}\n{hidden}\n### END SOLUTION"
    leaks = find_leaks(src, nb)
    assert any(solution_line in leak for leak in leaks)
    assert any(hidden.strip() in leak for leak in leaks)
    assert any("marker" in leak for leak in leaks)


@pytest.mark.parametrize("path", ASSIGNMENTS, ids=lambda p: p.parent.name)
def test_released_notebooks_have_stubs_and_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    stubs = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert stubs
    for cell in stubs:
        assert "# YOUR CODE HERE\n" in cell.source and "raise NotImplementedError()" in cell.source
    assert all(not c.get("outputs") for c in nb.cells)
