"""`autograde demo` (README command 1): a bundled class of three, graded end to end by
`autograde grade`, offline, from files shipped inside the package."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import nbformat
import pytest
from notebook_tools import ROOT

from backprop_lab.course import ASSIGNMENTS, exercises_for
from backprop_lab.verbs.cli import build_parser
from backprop_lab.verbs.demo import (
    ASSIGNMENT,
    CLASS,
    STUDENTS,
    run_demo,
    student_notebook,
    submission,
)


def test_the_shipped_student_notebook_is_the_assignment() -> None:
    """Shipped in the package (the clean room runs it; the demo starts from it)."""
    released = ROOT / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert student_notebook() == nbformat.read(released, as_version=4)
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "released/*.ipynb" in package_data["package-data"]["backprop_lab"]


def _solution_sources(nb: nbformat.NotebookNode) -> dict[str, str]:
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")}  # fmt: skip


def test_the_three_submissions_differ_where_they_should() -> None:
    given = student_notebook()
    correct, mistake, untouched = (submission(s) for s in STUDENTS)
    assert untouched == given
    assert all("NotImplementedError" not in s for s in _solution_sources(correct).values())
    # only mse_grad's cell differs, by the factor 2 alone
    right, wrong = _solution_sources(correct), _solution_sources(mistake)
    assert [cell for cell in right if right[cell] != wrong[cell]] == ["mse_grad"]
    assert right["mse_grad"].replace("2.0 * ", "") == wrong["mse_grad"]
    # everything but the answers is the notebook as given (checksummed cells untouched)
    for mine, theirs in zip(correct.cells, given.cells, strict=True):
        if not mine.metadata.get("nbgrader", {}).get("solution"):
            assert mine.source == theirs.source


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_correct_student_answers_every_stub_of_every_assignment(assignment: str) -> None:
    """One notebook of each assignment is graded: the correct student's, every stub
    answered by the reference (its private helpers too), nothing else of the notebook
    changed."""
    assert assignment in CLASS["correct"]
    given, answered = student_notebook(assignment), submission("correct", assignment)
    cells = _solution_sources(answered)
    assert {e.cell for e in exercises_for(assignment)} <= set(cells)
    assert all("NotImplementedError" not in source for source in cells.values())
    for mine, theirs in zip(answered.cells, given.cells, strict=True):
        if not mine.metadata.get("nbgrader", {}).get("solution"):
            assert mine.source == theirs.source


def test_demo_is_an_autograde_verb() -> None:
    args = build_parser().parse_args(["demo", "--out", "somewhere"])
    assert args.out == "somewhere" and args.func.__module__ == "backprop_lab.verbs.demo"


def _lost(record: dict) -> dict[str, int]:
    lost: dict[str, int] = {}
    for t in record["tests"]:
        if t["score"] < t["max_score"]:
            lost[t["number"]] = lost.get(t["number"], 0) + t["max_score"] - t["score"]
    return lost


@pytest.mark.slow
def test_demo_grades_the_class(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_demo(tmp_path) == 0
    printed = capsys.readouterr().out
    graded = tmp_path / "graded"
    folders = {s: graded / "submissions" / s / ASSIGNMENT for s in STUDENTS}
    records = {s: json.loads((folders[s] / "results.json").read_text()) for s in STUDENTS}
    correct, mistake, untouched = (records[s] for s in STUDENTS)

    full = correct["extra_data"]["max_score"]
    assert correct["score"] == full and _lost(correct) == {}

    # mse_grad's checks, and Mse's (it calls mse_grad), each say the mistake and its hint;
    # the checks of code that calls them say so, and nothing else is lost
    assert _lost(mistake) == {"mse_grad": 2, "forward_and_backward": 3, "layer_classes": 1,
                              "model_class": 1}  # fmt: skip
    assert mistake["score"] == full - 7
    for t in mistake["tests"]:
        if t["score"] < t["max_score"] and t["number"] in ("mse_grad", "layer_classes"):
            assert "mse-missing-2" in t["tags"]
            assert "needs the factor 2" in t["output"] or "the same as above" in t["output"]
        elif t["score"] < t["max_score"]:
            assert t["output"].startswith("Caused by ")

    assert untouched["score"] == 0
    failed = [t for t in untouched["tests"] if t["max_score"] > 0]
    assert failed and all("not implemented" in t["output"] for t in failed)

    for student, score in zip(STUDENTS, (full, full - 7, 0), strict=True):
        assert student in printed and f"{score}/{full}" in printed
        assert (folders[student] / "feedback.html").is_file()
    # the correct student's notebook of every other assignment: full marks
    for assignment in ASSIGNMENTS:
        record = json.loads(
            (graded / "submissions" / "correct" / assignment / "results.json").read_text()
        )
        points = sum(e.points for e in exercises_for(assignment))
        assert record["score"] == points and _lost(record) == {}, assignment
        assert f"{points}/{points}" in printed
    assert "needs the factor 2" in printed and "not implemented" in printed
    # rich wraps a path longer than the terminal (80 columns when not a terminal) mid-word:
    # read the lines joined back, as the path is (an xdist worker's temp path is longer)
    assert str(graded / "grades.csv") in "".join(printed.splitlines())


def test_every_package_of_the_checkout_is_in_the_wheel() -> None:
    """`packages` in pyproject.toml is a list written by hand (the Gradescope bundle cuts it
    down): a subpackage left off it is missing from every install but the editable one."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])  # fmt: skip
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "backprop_lab").rglob("__init__.py")
    }
    assert found == listed, (found - listed, listed - found)
