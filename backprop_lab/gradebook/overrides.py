"""A person's word on a grade, kept in a file of the course's so that it holds on every
re-run and merge (an edit to grades.csv is lost the next time it is written).

An overrides file is a CSV file with the columns `student`, `assignment` (may be left
blank when the student handed in one assignment), `exercise` (an exercise's cell, its
nbgrader grade_id such as `lin_grad`, or `total`), `points` (what the exercise, or the
total, is worth for this student from now on, replacing the grader's points) and
`reason` (required: it is shown to the student in their feedback and in summary.md):

    student,assignment,exercise,points,reason
    alice,backprop,lin_grad,3,"regraded by hand: right up to a transpose the test missed"
    bob,,total,15,"excused: handed in on paper"

Exercise overrides apply first, then the late policy, then a `total` override, the last
word. Every mistake (an unknown student, assignment or exercise, points out of range, a
line repeated, an override that matches no submission) names its line.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from ..course import ASSIGNMENTS, EXERCISES
from .coursefiles import CourseFileError, read_table

__all__ = ["TOTAL", "Override", "check_students", "read_overrides"]

TOTAL = "total"
COLUMNS = ("student", "assignment", "exercise", "points", "reason")


@dataclass(frozen=True)
class Override:
    where: str  # "overrides.csv, line 3": every message about it names it
    student: str
    assignment: str | None  # None: the student's one assignment (or the exercise's)
    exercise: str  # an exercise's cell, or TOTAL
    points: float
    reason: str


def _max_points(assignment: str | None, exercise: str) -> float | None:
    """The most `exercise` (or the total of `assignment`) is worth; None when unknown."""
    if exercise == TOTAL:
        if assignment is None:
            return None
        return sum(e.points for e in EXERCISES if e.assignment == assignment)
    return next((e.points for e in EXERCISES if e.cell == exercise), None)


def _number(text: str) -> float:
    value = float(text)
    return int(value) if value.is_integer() else value


def read_overrides(path: Path) -> tuple[Override, ...]:
    """The overrides in `path`, each checked against the exercise table; CourseFileError
    naming the line of the first that cannot be applied."""
    out: list[Override] = []
    seen: dict[tuple[str, str | None, str], str] = {}
    cells = {e.cell: e.assignment for e in EXERCISES}
    for where, row in read_table(path, COLUMNS, (), strict=True):
        student, exercise = row["student"], row["exercise"]
        assignment = row["assignment"] or None
        if not student:
            raise CourseFileError(f"{where}: no student")
        if assignment is not None and assignment not in ASSIGNMENTS:
            raise CourseFileError(
                f"{where}: unknown assignment {assignment!r}; the assignments are "
                f"{', '.join(sorted(ASSIGNMENTS))}"
            )
        if exercise != TOTAL and exercise not in cells:
            known = ", ".join(e.cell for e in EXERCISES if assignment in (None, e.assignment))
            raise CourseFileError(
                f"{where}: unknown exercise {exercise!r}; write one of {known}, or {TOTAL}"
            )
        if exercise != TOTAL and assignment not in (None, cells[exercise]):
            raise CourseFileError(
                f"{where}: exercise {exercise!r} is in {cells[exercise]}, not {assignment}"
            )
        if exercise != TOTAL:
            assignment = cells[exercise]  # an exercise names its assignment
        try:
            points = _number(row["points"])
        except ValueError:
            raise CourseFileError(f"{where}: points {row['points']!r} is not a number") from None
        top = _max_points(assignment, exercise)
        if points < 0 or (top is not None and points > top):
            raise CourseFileError(
                f"{where}: {points:g} points for {exercise} is out of range (0 to "
                f"{'its maximum' if top is None else f'{top:g}'})"
            )
        if not row["reason"]:
            raise CourseFileError(f"{where}: no reason (the student reads it)")
        ident = (student, assignment, exercise)
        if ident in seen:
            raise CourseFileError(f"{where}: the same override as {seen[ident]}")
        seen[ident] = where
        out.append(Override(where, student, assignment, exercise, points, row["reason"]))
    return tuple(out)


def check_students(overrides: tuple[Override, ...], students: Collection[str]) -> None:
    """CourseFileError naming the line of an override for a student who is neither on the
    roster nor among the submissions: a misspelt name would otherwise change nobody."""
    for o in overrides:
        if o.student not in students:
            raise CourseFileError(
                f"{o.where}: unknown student {o.student!r}: not on the roster and no "
                "submission goes by that name"
            )
