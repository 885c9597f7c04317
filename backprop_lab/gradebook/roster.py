"""The class list: who should have handed something in, and how the LMS knows them.

A roster is a CSV file with a header. Its one required column is `student`: the name
the submissions go by (nbgrader's student id, the folder of a Classroom clone or of an
LMS export, a notebook's file name), matched exactly. Optional columns, used by the
exports and the late policy: `name` (shown to people), `email`, `lms_id` (the LMS's own
id: Canvas's ID, Moodle's ID number), `sis_id` and `sis_login` (Canvas's SIS User ID and
SIS Login ID), `section`, and `due`, the student's own due date-time (an extension,
ISO 8601 with its offset, like 2026-12-12T23:59+01:00). Other columns are ignored, so
a class list exported from the LMS can be used as it is once it has a `student` column.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .coursefiles import CourseFileError, read_table
from .latepolicy import parse_due

__all__ = ["Roster", "Student", "read_roster"]

COLUMNS = ("name", "email", "lms_id", "sis_id", "sis_login", "section", "due")


@dataclass(frozen=True)
class Student:
    student: str  # as the submissions name them
    name: str = ""
    email: str = ""
    lms_id: str = ""
    sis_id: str = ""
    sis_login: str = ""
    section: str = ""
    due: datetime | None = None  # an extension: this student's own due date


@dataclass(frozen=True)
class Roster:
    students: tuple[Student, ...]

    def get(self, student: str) -> Student | None:
        return next((s for s in self.students if s.student == student), None)

    def __contains__(self, student: object) -> bool:
        return any(s.student == student for s in self.students)


def read_roster(path: Path) -> Roster:
    """The roster in `path`; CourseFileError naming the line of a missing or repeated
    student or an unreadable due date."""
    students: list[Student] = []
    seen: dict[str, str] = {}
    for where, row in read_table(path, ("student",), COLUMNS, strict=False):
        name = row["student"]
        if not name:
            raise CourseFileError(f"{where}: no student (the name their submission goes by)")
        if name in seen:
            raise CourseFileError(f"{where}: {name!r} is on the roster already ({seen[name]})")
        seen[name] = where
        try:
            due = parse_due(row["due"]) if row["due"] else None
        except ValueError as exc:
            raise CourseFileError(f"{where}: due: {exc}") from None
        students.append(Student(
            row["student"], row["name"], row["email"], row["lms_id"], row["sis_id"],
            row["sis_login"], row["section"], due,
        ))  # fmt: skip
    return Roster(tuple(students))
