"""One verdict wherever a course grades. The same submissions (the solutions, the
untouched assignments, the lesson's own 2019 and 2022 answers, right-but-unusual code,
left-over debuggers, a known bug) graded by every path a course uses:
- `nbgrader autograde`, the notebooks' own test cells;
- `autograde grade`;
- the pytest form,
  `pytest --pyargs backprop_lab.verbs.grading --autograde-notebook NB --junitxml ...`;
- Gradescope's `run_autograder` (`python -m backprop_lab.verbs.gradescope` on an /autograder tree).
A right answer gets full marks from each; a wrong one loses the same exercises in each
(nbgrader's all-or-nothing test cells may cost more points, never other exercises), and
the three paths that share the exercise table agree to the point. nbgrader also gives
the points its test cells are worth, exactly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import nbformat
import pytest
from notebook_tools import SOLUTION, STUB, edited
from right_answers import (
    DEBUGGERS,
    MODEL_ORDER,
    MODULE_STYLE,
    UNUSUAL_BACKPROP,
    UNUSUAL_BACKPROP_2,
    UNUSUAL_MATMUL,
    WEIGHTS_AS_PARAMETERS,
    course_notebook,
)

from backprop_lab.course import exercises_for
from backprop_lab.options import DEFAULT_SEED
from backprop_lab.verbs.gradescope import CONFIG, BundleConfig

# one worker generates the course and grades the session's class, shared with
# test_grader_mistakes.py and test_assignments.py (tests/conftest.py)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("course")]


def _with_bug(nb_path: Path, grade_id: str, correct: str, wrong: str) -> nbformat.NotebookNode:
    nb = nbformat.read(nb_path, as_version=4)
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    assert correct in cell.source, "the bug no longer applies: update this test"
    cell.source = cell.source.replace(correct, wrong)
    return nb


# assignment -> (its one bug's cell, the right line, the wrong one)
ONE_BUG = {
    "backprop": ("lin_grad", "w.g = inp.t() @ out.g", "w.g = out.g.t() @ inp"),
    "matmul": ("matmul_broadcast", "a[i, :, None]", "a[i, None]"),
    "training": ("cross_entropy_grad", "inp.g = (softmax - one_hot) / n",
                 "inp.g = softmax - one_hot"),
}  # fmt: skip
# kind -> assignment -> notebook to submit
SUBMISSIONS = {
    "solution": lambda a: nbformat.read(SOLUTION[a], as_version=4),
    "untouched": lambda a: nbformat.read(STUB[a], as_version=4),
    # backprop: w.g transposed in lin_grad (the class Lin has its own code and stays right);
    # matmul: a[i, None] is a row, not a column, so only square shapes come out right;
    # training: cross_entropy_grad without its 1/N (the classifier and fit call it).
    "one_bug": lambda a: _with_bug(SOLUTION[a], *ONE_BUG[a]),
    # The lesson's own code, `torch.zeros(ar, bc)` in every rung: float32 whatever the
    # inputs. autograde gives it full marks (the dtype is 0-point advice), and so must the
    # notebook's hidden float64 tests under nbgrader: one verdict. Likewise the course's
    # backprop answers.
    "lesson": course_notebook,
    # right, but not as the lesson writes it (einsum, .T, the 2019 Module base class, a
    # Model taking its weights in another order, torch.where at relu's kink, the weights as
    # parameters with defaults)
    "unusual": lambda a: edited(
        SOLUTION[a],
        UNUSUAL_MATMUL
        if a == "matmul"
        else UNUSUAL_BACKPROP + MODULE_STYLE + WEIGHTS_AS_PARAMETERS,
    ),
    "unusual_2": lambda a: edited(
        SOLUTION[a], UNUSUAL_MATMUL if a == "matmul" else UNUSUAL_BACKPROP_2 + MODEL_ORDER
    ),
    "debuggers": lambda a: edited(SOLUTION[a], DEBUGGERS if a == "backprop" else ()),
}
# the kinds that are right: full marks from every path
RIGHT = ("solution", "lesson", "unusual", "unusual_2", "debuggers")
# matmul has one unusual notebook and no debuggers: graded once, not three times. An
# untouched backprop or training notebook scores zero under nbgrader as under autograde
# (test_assignments.py runs its test cells): not graded again here, to save CI minutes
# (AUTOGRADE_FULL_MATRIX=1 measured training's: 0 on every path).
KINDS = {
    "matmul": ("solution", "untouched", "one_bug", "lesson", "unusual"),
    "backprop": ("solution", "one_bug", "lesson", "unusual", "unusual_2", "debuggers"),
    "training": ("solution", "one_bug"),
}
CASES = [(a, k) for a, kinds in KINDS.items() for k in kinds]
IDS = [f"{a}-{k}" for a, k in CASES]
# The pytest form and Gradescope grade with the same pipeline and exercise table as
# `autograde grade`; what they add is their own reading of its result. Each grading costs
# a kernel (5-13 s on two cores), so CI runs them on a sample: an untouched notebook, and
# one with a bug beside right exercises (test_gradescope.py grades a correct notebook
# through Gradescope's own run_autograder);
# AUTOGRADE_FULL_MATRIX=1 runs every submission through every path.
SAMPLE = (
    CASES
    if os.environ.get("AUTOGRADE_FULL_MATRIX")
    else [("matmul", "untouched"), ("backprop", "one_bug")]
)  # fmt: skip

# The answers each submission gets wrong, by solution cell: the untouched notebook all of
# them, the one bug its exercise; the solution and the lesson's code none (full marks).
WRONG: dict[tuple[str, str], tuple[str, ...]] = {
    ("matmul", "solution"): (),
    ("matmul", "untouched"): tuple(e.cell for e in exercises_for("matmul")),
    ("matmul", "one_bug"): ("matmul_broadcast",),
    ("matmul", "lesson"): (),
    ("backprop", "solution"): (),
    ("backprop", "one_bug"): ("lin_grad",),
    ("backprop", "lesson"): (),
    ("training", "solution"): (),
    ("training", "one_bug"): ("cross_entropy_grad",),
}


def broken(assignment: str, wrong: tuple[str, ...]) -> set[str]:
    """The exercises `wrong` takes with it: those wrong, and every exercise that builds on
    one (forward_and_backward calls lin_grad, so its test cell fails too)."""
    out = set(wrong)
    while grown := {e.cell for e in exercises_for(assignment)
                    if e.cell not in out and out & set(e.builds_on)}:  # fmt: skip
        out |= grown
    return out


def points_per_test_cell(assignment: str, wrong: tuple[str, ...]) -> dict[str, int]:
    """nbgrader's points per test cell: each exercise's points from the table, 0 where the
    submission breaks it."""
    lost = broken(assignment, wrong)
    return {e.test_cell: 0 if e.cell in lost else e.points for e in exercises_for(assignment)}


EXPECTED = {case: points_per_test_cell(case[0], wrong) for case, wrong in WRONG.items()}
PATHS = ("nbgrader", "autograde", "pytest", "gradescope")


def full_marks(assignment: str) -> dict[str, int]:
    """exercise -> its points"""
    return {e.cell: e.points for e in exercises_for(assignment)}


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory) -> dict[tuple[str, str], Path]:
    root = tmp_path_factory.mktemp("submissions")
    paths = {}
    for a, kind in CASES:
        paths[a, kind] = root / kind / f"{a}.ipynb"
        paths[a, kind].parent.mkdir(exist_ok=True)
        nbformat.write(SUBMISSIONS[kind](a), paths[a, kind])
    return paths


@pytest.fixture(scope="module")
def gradebook(
    notebooks, generated_course: Path, tmp_path_factory
) -> dict[tuple[str, str], dict[str, float]]:
    """Submit and autograde every submission once with nbgrader, in copies of the course
    nbgrader generated (the session's, whose gradebook knows every assignment); return
    the points per test cell. Several course folders, so `nbgrader autograde` runs (each
    a kernel at a time) go side by side, each with its own gradebook."""
    # here, not at the top: every xdist worker imports this module to collect it, and
    # nbgrader's gradebook (sqlalchemy, alembic) took 0.6 s of that
    from nbgrader.api import Gradebook

    base = generated_course
    assert set(KINDS) <= {p.name for p in (base / "assignments").iterdir()}
    # one copy of the course (gradebook included) per assignment: two `nbgrader autograde`
    # runs side by side (measured: faster than one, and than three or four)
    parts = {i: [(a, k) for k in kinds] for i, (a, kinds) in enumerate(KINDS.items())}
    courses, runs = {}, {}
    for i, cases in parts.items():
        course = courses[i] = tmp_path_factory.getbasetemp() / f"course-{i}"
        shutil.copytree(base, course)
        for a, kind in cases:
            folder = course / "submitted" / kind / a
            folder.mkdir(parents=True)
            shutil.copy(notebooks[a, kind], folder / f"{a}.ipynb")
        graded = sorted({a for a, _ in cases})
        script = " && ".join(f"{sys.executable} -m nbgrader autograde {a}" for a in graded)
        runs[i] = subprocess.Popen(
            ["sh", "-c", script], cwd=course, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    for proc in runs.values():
        log, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, log
    points = {}
    for i, course in courses.items():
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            for a, kind in parts[i]:
                (nb,) = gb.find_submission(a, kind).notebooks
                points[a, kind] = {g.cell.name: g.score for g in nb.grades}
    return points


@pytest.mark.parametrize(
    ("assignment", "kind"), list(EXPECTED), ids=[f"{a}-{k}" for a, k in EXPECTED]
)
def test_nbgrader_autograde_awards_exactly_the_expected_points(gradebook, assignment, kind):
    assert gradebook[assignment, kind] == EXPECTED[assignment, kind]


def submissions() -> dict[str, tuple[str, nbformat.NotebookNode]]:
    """student -> (assignment, notebook): every case, for the session's class
    (tests/course_class.py), which `autograde grade` grades with its defaults."""
    return {f"verdict-{kind}-{a}": (a, SUBMISSIONS[kind](a)) for a, kind in CASES}


def students_read(item: pytest.Item) -> set[str]:
    return set(submissions())  # the matrix holds every case, whichever test reads it


@pytest.fixture(scope="module")
def autograded(course_class) -> dict[tuple[str, str], dict[str, int]]:
    """`autograde grade` on the class: points per exercise."""
    from backprop_lab.gradebook.grades import read_grades_csv

    points = {}
    for row in read_grades_csv(course_class.out / "grades.csv"):
        if row["student"].startswith("verdict-"):
            kind, a = row["student"].removeprefix("verdict-").rsplit("-", 1)
            points[a, kind] = {e: int(row[e]) for e in full_marks(a)}
    assert set(points) == set(CASES), sorted(points)
    return points


def _run_pytest_form(notebook: Path, folder: Path) -> subprocess.CompletedProcess:
    folder.mkdir(parents=True)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "backprop_lab.verbs.grading",
         "--autograde-notebook", str(notebook), f"--junitxml={folder / 'junit.xml'}", "-p",
         "no:cacheprovider", "-q"],
        cwd=folder, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def _run_gradescope(notebook: Path, assignment: str, root: Path) -> dict:
    """Gradescope's /autograder tree: the config of `assignment`'s bundle in source/, the
    upload in submission/; run what run_autograder runs; return results/results.json."""
    (root / "source").mkdir(parents=True)
    config = BundleConfig(seed=DEFAULT_SEED, assignment=assignment)
    (root / "source" / CONFIG).write_text(json.dumps(asdict(config)))
    (root / "submission").mkdir()
    shutil.copy(notebook, root / "submission" / notebook.name)
    subprocess.run([sys.executable, "-I", "-m", "backprop_lab.verbs.gradescope",
                    "--root", str(root)], capture_output=True, text=True, timeout=600,
                   check=True)  # fmt: skip
    return json.loads((root / "results" / "results.json").read_text())


@pytest.fixture(scope="module")
def pytest_and_gradescope(notebooks, tmp_path_factory) -> dict[tuple[str, str], tuple]:
    """(a, kind) -> (the pytest form's run, its JUnit root, Gradescope's results), each
    path in its own processes, two at a time (two cores)."""
    root = tmp_path_factory.mktemp("paths")
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {
            case: (
                pool.submit(_run_pytest_form, notebooks[case], root / "pytest" / "-".join(case)),
                pool.submit(
                    _run_gradescope, notebooks[case], case[0], root / "gradescope" / "-".join(case)
                ),
            )
            for case in SAMPLE
        }
        out = {}
        for case, (form, gradescope) in runs.items():
            proc = form.result()
            junit = ET.parse(root / "pytest" / "-".join(case) / "junit.xml").getroot()
            out[case] = (proc, junit, gradescope.result())
    return out


def _junit_points(junit: ET.Element) -> dict[str, int]:
    points: Counter[str] = Counter()
    for case in junit.iter("testcase"):
        exercise = case.get("name").split("[", 1)[1].split(":", 1)[0]
        props = {p.get("name"): int(p.get("value")) for p in case.iter("property")}
        points[exercise] += props["points"]
    return dict(points)


def _gradescope_points(results: dict) -> dict[str, int]:
    points: Counter[str] = Counter()
    for t in results["tests"]:
        points[t["number"]] += t["score"]
    return dict(points)


@pytest.fixture(scope="module")
def matrix(gradebook, autograded, pytest_and_gradescope, tmp_path_factory) -> dict:
    """(a, kind) -> path -> exercise -> points"""
    out = {}
    for case in CASES:
        out[case] = {
            "nbgrader": {k.removesuffix("_tests"): v for k, v in gradebook[case].items()},
            "autograde": autograded[case],
        }
        if case in pytest_and_gradescope:
            _, junit, results = pytest_and_gradescope[case]
            out[case].update(pytest=_junit_points(junit), gradescope=_gradescope_points(results))
    # the agreement matrix, for the record: <pytest's base temp>/verdict-matrix.md
    lines = ["| assignment | submission | " + " | ".join(PATHS) + " |",
             "|---|---|" + "---:|" * len(PATHS)]  # fmt: skip
    for a, kind in CASES:
        total = sum(full_marks(a).values())
        cells = [f"{sum(out[a, kind][p].values())}/{total}" if p in out[a, kind] else "-"
                 for p in PATHS]  # fmt: skip
        lines.append(f"| {a} | {kind} | " + " | ".join(cells) + " |")
    (tmp_path_factory.getbasetemp() / "verdict-matrix.md").write_text("\n".join(lines) + "\n")
    return out


@pytest.mark.parametrize(("assignment", "kind"), CASES, ids=IDS)
def test_every_path_gives_one_verdict(matrix, assignment: str, kind: str) -> None:
    full = full_marks(assignment)
    by_path = matrix[assignment, kind]
    if kind in RIGHT:
        assert all(points == full for points in by_path.values()), by_path
        return
    lost = {path: {e for e in full if points[e] < full[e]} for path, points in by_path.items()}
    assert lost["nbgrader"], "a wrong notebook must lose something"
    assert len(set(map(frozenset, lost.values()))) == 1, lost
    # the paths that read the exercise table agree to the point
    table_paths = [points for path, points in by_path.items() if path != "nbgrader"]
    assert all(points == table_paths[0] for points in table_paths), by_path


@pytest.mark.parametrize(("assignment", "kind"), SAMPLE, ids=[f"{a}-{k}" for a, k in SAMPLE])
def test_the_pytest_form_carries_the_points(
    pytest_and_gradescope, notebooks, assignment: str, kind: str
) -> None:
    """Points on each JUnit testcase (earned only when it passed), their totals on the
    suite and in the terminal summary; the exit code says whether anything failed."""
    proc, junit, _ = pytest_and_gradescope[assignment, kind]
    earned = possible = 0
    for case in junit.iter("testcase"):
        props = {p.get("name"): int(p.get("value")) for p in case.iter("property")}
        passed = case.find("failure") is None and case.find("skipped") is None
        assert props["points"] == (props["max_points"] if passed else 0), case.get("name")
        earned, possible = earned + props["points"], possible + props["max_points"]
    full = sum(full_marks(assignment).values())
    assert possible == full
    suite = {p.get("name"): int(p.get("value")) for p in junit.find("testsuite").find("properties")}
    assert suite == {"points": earned, "max_points": full}
    assert f"autograde: {earned}/{full} points for {notebooks[assignment, kind]}" in proc.stdout
    assert proc.returncode == (0 if earned == full else 1), proc.stdout[-2000:] + proc.stderr
    if kind == "untouched":  # every check a failure (advice an xfail), each saying why
        failed = [c for c in junit.iter("testcase") if c.find("failure") is not None]
        xfailed = [c for c in junit.iter("testcase") if c.find("skipped") is not None]
        checks = [c for e in exercises_for(assignment) for c in e.checks]
        assert len(failed) == sum(1 for c in checks if not c.advisory)
        assert len(xfailed) == sum(1 for c in checks if c.advisory)
        assert "not implemented yet" in proc.stdout
