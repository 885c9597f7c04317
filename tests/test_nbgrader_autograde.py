"""`nbgrader autograde`, the instructor's own tool, on our notebooks: full points for the
solutions, zero for the untouched assignments, and for a notebook with one known bug
exactly the points of the tests that bug touches."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from notebook_tools import ROOT
from test_grader_mistakes import COURSE_BACKPROP, COURSE_MATMUL, edited, matmul

pytestmark = pytest.mark.slow


def _with_bug(nb_path: Path, grade_id: str, correct: str, wrong: str) -> nbformat.NotebookNode:
    nb = nbformat.read(nb_path, as_version=4)
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    assert correct in cell.source, "the bug no longer applies: update this test"
    cell.source = cell.source.replace(correct, wrong)
    return nb


# student -> assignment -> notebook to submit
SUBMISSIONS = {
    "solution": lambda a: nbformat.read(ROOT / "solutions" / a / f"{a}.ipynb", as_version=4),
    "untouched": lambda a: nbformat.read(ROOT / "assignments" / a / f"{a}.ipynb", as_version=4),
    # backprop: w.g transposed in lin_grad (the class Lin has its own code and stays right);
    # matmul: a[i, None] is a row, not a column, so only square shapes come out right.
    "one_bug": lambda a: (
        _with_bug(
            ROOT / "solutions" / a / f"{a}.ipynb",
            "lin_grad",
            "w.g = inp.t() @ out.g",
            "w.g = out.g.t() @ inp",
        )
        if a == "backprop"
        else _with_bug(
            ROOT / "solutions" / a / f"{a}.ipynb",
            "matmul_broadcast",
            "a[i, :, None]",
            "a[i, None]",
        )
    ),
    # The lesson's own code, `torch.zeros(ar, bc)` in every rung: float32 whatever the
    # inputs. autograde gives it full marks (the dtype is 0-point advice), and so must the
    # notebook's hidden float64 tests under nbgrader: one verdict. Likewise the course's
    # backprop answers.
    "lesson": lambda a: (
        edited(
            ROOT / "assignments/matmul/matmul.ipynb",
            [matmul(c, body) for c, body in COURSE_MATMUL.items()],
        )
        if a == "matmul"
        else edited(ROOT / "assignments/backprop/backprop.ipynb", COURSE_BACKPROP)
    ),
}

EXPECTED = {
    ("matmul", "solution"): {
        "matmul_loops_tests": 3,
        "matmul_elementwise_tests": 2,
        "matmul_broadcast_tests": 5,
    },
    ("matmul", "untouched"): {
        "matmul_loops_tests": 0,
        "matmul_elementwise_tests": 0,
        "matmul_broadcast_tests": 0,
    },
    ("matmul", "one_bug"): {
        "matmul_loops_tests": 3,
        "matmul_elementwise_tests": 2,
        "matmul_broadcast_tests": 0,
    },
    ("matmul", "lesson"): {
        "matmul_loops_tests": 3,
        "matmul_elementwise_tests": 2,
        "matmul_broadcast_tests": 5,
    },
    ("backprop", "solution"): {
        "mse_grad_tests": 2,
        "relu_grad_tests": 2,
        "lin_grad_tests": 3,
        "forward_and_backward_tests": 3,
        "layer_classes_tests": 3,
        "model_class_tests": 2,
    },
    ("backprop", "untouched"): {
        "mse_grad_tests": 0,
        "relu_grad_tests": 0,
        "lin_grad_tests": 0,
        "forward_and_backward_tests": 0,
        "layer_classes_tests": 0,
        "model_class_tests": 0,
    },
    # forward_and_backward calls lin_grad, so it loses its points too.
    ("backprop", "one_bug"): {
        "mse_grad_tests": 2,
        "relu_grad_tests": 2,
        "lin_grad_tests": 0,
        "forward_and_backward_tests": 0,
        "layer_classes_tests": 3,
        "model_class_tests": 2,
    },
}


EXPECTED["backprop", "lesson"] = EXPECTED["backprop", "solution"]  # full marks


@pytest.fixture(scope="module")
def gradebook(tmp_path_factory) -> dict[tuple[str, str], dict[str, float]]:
    """Generate, submit and autograde every submission once; return the points per test cell."""
    course = tmp_path_factory.mktemp("course")
    shutil.copy2(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions", course / "solutions")
    assignments = ("matmul", "backprop")
    for a in assignments:
        run = [sys.executable, "-m", "nbgrader", "generate_assignment", a, "--force"]
        subprocess.run(run, cwd=course, check=True, capture_output=True)
        for student, make in SUBMISSIONS.items():
            folder = course / "submitted" / student / a
            folder.mkdir(parents=True)
            nbformat.write(make(a), folder / f"{a}.ipynb")
        done = subprocess.run(
            [sys.executable, "-m", "nbgrader", "autograde", a],
            cwd=course,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    points = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for a in assignments:
            for student in SUBMISSIONS:
                (nb,) = gb.find_submission(a, student).notebooks
                points[a, student] = {g.cell.name: g.score for g in nb.grades}
    return points


@pytest.mark.parametrize(("assignment", "student"), list(EXPECTED), ids="-".join)
def test_nbgrader_autograde_awards_exactly_the_expected_points(gradebook, assignment, student):
    assert gradebook[assignment, student] == EXPECTED[assignment, student]


@pytest.fixture(scope="module")
def autograded(tmp_path_factory) -> dict[tuple[str, str], dict[str, int]]:
    """The same submissions graded by `autograde grade`: points per exercise."""
    from autograder.batch import grade_submissions
    from autograder.gradebook import read_grades_csv

    root = tmp_path_factory.mktemp("autograde")
    for a in ("matmul", "backprop"):
        for student, make in SUBMISSIONS.items():
            folder = root / "class" / f"{student}-{a}"
            folder.mkdir(parents=True)
            nbformat.write(make(a), folder / f"{a}.ipynb")
    grade_submissions([root / "class"], root / "out", workers=2, progress=False, feedback=False)
    points = {}
    for row in read_grades_csv(root / "out" / "grades.csv"):
        student, a = row["student"].rsplit("-", 1)
        cells = {k.removesuffix("_tests") for k in EXPECTED[a, "solution"]}
        points[a, student] = {c: int(row[c]) for c in cells}
    return points


@pytest.mark.parametrize(("assignment", "student"), list(EXPECTED), ids="-".join)
def test_autograde_and_nbgrader_fail_the_same_exercises(
    gradebook, autograded, assignment, student
) -> None:
    """One verdict: full marks from one tool are full marks from the other, and a wrong
    answer loses the same exercises in both (nbgrader's all-or-nothing test cells may
    cost more points, never other exercises)."""
    full = {k.removesuffix("_tests"): v for k, v in EXPECTED[assignment, "solution"].items()}
    by_nbgrader = {k.removesuffix("_tests"): v for k, v in gradebook[assignment, student].items()}
    by_autograde = autograded[assignment, student]
    assert {e for e, p in by_nbgrader.items() if p < full[e]} == {
        e for e, p in by_autograde.items() if p < full[e]
    }, (by_nbgrader, by_autograde)
