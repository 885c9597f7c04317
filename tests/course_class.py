"""One class of notebooks, graded once per test session by `autograde grade` and read by
every module that needs a class graded the default way: the mistake notebooks and the
unusual right answers (test_grader_mistakes.py), and the submissions every grading path
must agree on (test_one_verdict.py). A notebook both modules submit (the lesson's own
answers, the left-over debuggers, the unusual matmul) is graded once: the batch grades
identical notebooks once and records the result for each.

Each such module has `submissions()` (student -> (assignment, notebook), its students'
names its own) and `students_read(item)` (the students a selected test reads). Only the
submissions the session's selected tests read are graded: `pytest -k one-case` grades one
notebook, not the class. Under pytest-xdist those modules share the `course` group, so
one worker grades the class once (tests/conftest.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from backprop_lab.gradebook.batch import grade_submissions
from backprop_lab.options import Options

# How the class is graded: the grader's defaults (its seed too, as Gradescope and the
# pytest form grade), three workers, feedback reports written.
OPTIONS = Options()
WORKERS = 3
FIXTURE = "course_class"


@dataclass(frozen=True)
class GradedClass:
    out: Path  # the batch's output folder (grades.csv, submissions/KEY/...)
    records: dict[str, dict]  # student -> the record (Gradescope's shape, extra_data...)

    def feedback_html(self, student: str) -> str:
        """The student's feedback report, or "" where none was written."""
        key = self.records[student]["extra_data"]["key"]
        report = self.out / "submissions" / key / "feedback.html"
        return report.read_text(encoding="utf-8") if report.exists() else ""


def wanted(items: list[pytest.Item]) -> dict[str, tuple[str, nbformat.NotebookNode]]:
    """student -> (assignment, notebook): what the selected tests that read the class read."""
    made: dict[object, dict] = {}
    out: dict[str, tuple[str, nbformat.NotebookNode]] = {}
    for item in items:
        if FIXTURE not in getattr(item, "fixturenames", ()):
            continue
        module = item.module
        if module not in made:
            made[module] = module.submissions()
        subs = made[module]
        for student in module.students_read(item):
            if student in out and out[student] != subs[student]:
                raise AssertionError(f"two modules submit different notebooks as {student}")
            out[student] = subs[student]
    return out


def grade_class(items: list[pytest.Item], root: Path) -> GradedClass:
    subs = wanted(items)
    for student, (assignment, nb) in subs.items():
        folder = root / "class" / student
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{assignment}.ipynb")
    if not subs:
        return GradedClass(root / "out", {})
    summary = grade_submissions([root / "class"], root / "out", options=OPTIONS,
                                workers=WORKERS, progress=False)  # fmt: skip
    records = {r["extra_data"]["student"]: r for r in summary.records}
    assert set(records) == set(subs), sorted(set(subs) ^ set(records))
    # the records as JSON, for a person to read after the run
    (root / "records.json").write_text(json.dumps(records, indent=1))
    return GradedClass(root / "out", records)
