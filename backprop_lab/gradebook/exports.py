"""The class's grades in the files an LMS imports, from the records as the course's
files make them (`gradebook.class_records`: overrides and late penalties applied, the
roster's missing students at 0). Pure functions of records and the roster, except
`write_export`.

- Canvas's gradebook import: the columns of Canvas's own gradebook export, `Student`,
  `ID`, `SIS User ID`, `SIS Login ID`, `Section`, then one column per assignment, and a
  second row `Points Possible` with each assignment's points. Canvas matches a row to its
  student by ID (the roster's `lms_id`), SIS User ID or SIS Login ID; a column headed by
  the assignment's name makes a new assignment, one headed as Canvas's export heads it
  (`Backprop (12345)`) updates that one (`--column backprop="Backprop (12345)"`).
  (Instructure, "How do I import grades in the Gradebook?", Canvas Instructor Guide;
  the required columns as a university's guide lists them: Ohio State, "Import a CSV file
  to Carmen Grades", teaching.resources.osu.edu.)
- Moodle's CSV grade import: one column that identifies the user, then one column per
  grade item; on import, "Map from" the column to the user field and each grade column
  to its grade item. We write `Email address` and `ID number` (the roster's `email` and
  `lms_id`), for "Map to" `useremail` or `useridnumber`. (Moodle Docs, "Grade import",
  docs.moodle.org/311/en/Grade_import.)
- plain: one row per submission (and per missing student), the points of every exercise,
  the score and what changed it: for a spreadsheet or another system's importer.

Canvas and Moodle need a roster: they know students by their ids, which only the roster
holds. A submission whose student is not on the roster cannot be matched and is left out
(`Export.left_out` names them); the plain export keeps every row. Text cells a
spreadsheet would run as a formula are neutralised (csvcells.py).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..course import EXERCISES
from ..report.csvcells import neutralised
from ..report.records import Record
from .roster import Roster, Student

__all__ = ["CANVAS_IDS", "FORMATS", "MOODLE_IDS", "Export", "export_rows", "write_export"]

FORMATS = ("canvas", "moodle", "plain")
CANVAS_IDS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
MOODLE_IDS = ("Email address", "ID number")
_PLAIN_IDS = ("student", "name", "email", "lms_id", "assignment")
_PLAIN_LAST = ("score", "max", "autograded", "status", "flags")


@dataclass(frozen=True)
class Export:
    rows: list[list[str]]  # the header first
    left_out: tuple[str, ...] = ()  # students not on the roster: no id to match them by


def _points(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _assignments(records: list[Record]) -> list[str]:
    return sorted({r.assignment for r in records if r.assignment})


def _best(records: list[Record]) -> dict[tuple[str, str], Record]:
    """(student, assignment) -> the record that counts: the best of several notebooks."""
    best: dict[tuple[str, str], Record] = {}
    for r in records:
        if r.assignment:
            k = (r.student, r.assignment)
            if k not in best or r.score > best[k].score:
                best[k] = r
    return best


def _full(assignment: str) -> int:
    return sum(e.points for e in EXERCISES if e.assignment == assignment)


def _by_roster(records: list[Record], roster: Roster, ids: tuple[str, ...], who, titles) -> Export:
    assignments = _assignments(records)
    best = _best(records)
    rows = [[*ids, *(titles.get(a, a) for a in assignments)]]
    if ids == CANVAS_IDS:
        rows.append(["Points Possible", *[""] * (len(ids) - 1),
                     *(str(_full(a)) for a in assignments)])  # fmt: skip
    for s in roster.students:
        scores = [_points(best[(s.student, a)].score) if (s.student, a) in best else "0"
                  for a in assignments]  # fmt: skip
        rows.append([*map(neutralised, who(s)), *scores])
    left_out = tuple(sorted({r.student for r in records if r.student not in roster}))
    return Export(rows, left_out)


def _canvas_ids(s: Student) -> list[str]:
    return [s.name or s.student, s.lms_id, s.sis_id, s.sis_login, s.section]


def _moodle_ids(s: Student) -> list[str]:
    return [s.email, s.lms_id]


def _plain(records: list[Record], roster: Roster | None) -> Export:
    cells = [e.cell for e in EXERCISES if e.assignment in set(_assignments(records))]
    rows = [[*_PLAIN_IDS, *cells, *_PLAIN_LAST]]
    for r in sorted(records, key=lambda r: (r.student, r.assignment or "", r.key)):
        s = roster.get(r.student) if roster is not None else None
        per = r.per_exercise()
        flags = "not on roster" if roster is not None and s is None else ""
        text = [r.student, s.name if s else "", s.email if s else "", s.lms_id if s else "",
                r.assignment or ""]  # fmt: skip
        rows.append([
            *map(neutralised, text),
            *(_points(per.get(c)) if r.assignment else "" for c in cells),
            _points(r.score), _points(r.max_score), _points(r.autograded().score),
            neutralised(r.status or "graded"), flags,
        ])  # fmt: skip
    return Export(rows)


def export_rows(
    kind: str,
    records: Iterable[Record],
    roster: Roster | None,
    titles: Mapping[str, str] | None = None,
) -> Export:
    """The rows of `kind` (one of FORMATS) for the class's `records`. ValueError for
    canvas or moodle without a roster. `titles`: assignment -> its column's header."""
    records, titles = list(records), dict(titles or {})
    if kind == "plain":
        return _plain(records, roster)
    if roster is None:
        raise ValueError(
            f"--to {kind} needs --roster: the LMS knows students by the ids the roster holds"
        )
    if kind == "canvas":
        return _by_roster(records, roster, CANVAS_IDS, _canvas_ids, titles)
    if kind == "moodle":
        return _by_roster(records, roster, MOODLE_IDS, _moodle_ids, titles)
    raise ValueError(f"unknown export {kind!r}; one of {', '.join(FORMATS)}")


def write_export(export: Export, path: Path) -> None:
    """The export as a UTF-8 CSV file (what both LMSs read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(export.rows)
    tmp.replace(path)
