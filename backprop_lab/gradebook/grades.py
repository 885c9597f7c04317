"""A class's grades from the per-submission records (`results.json` files): `grades.csv`
for the gradebook and `summary.md` for the people who teach. Pure functions of records
and the course's own files (a `Course`: roster.py, overrides.py, latepolicy.py); the
records are the source of truth, so a re-run that skips graded work loses nothing, and a
resumed, sharded or merged class gets the same grades as a fresh one. Each takes
`Record`s, or their JSON as read from results.json files.

`class_records` is where the course's files meet the records: a row for every student on
the roster who handed in nothing, then per record the overrides of exercises, the late
policy's penalty and an override of the total, each kept as an `Adjustment` beside the
autograded score (never in place of it). It starts from the autograded record every time,
so the grades are always the records plus the files given this run.

Names, paths and messages come from students: in summary.md they are escaped Markdown
(markdown.py), and in grades.csv a text cell a spreadsheet would run as a formula is
neutralised (csvcells.py) and read back as written by `read_grades_csv`."""

from __future__ import annotations

import csv
import statistics
import urllib.parse
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ..course import EXERCISES
from ..report.csvcells import neutralised, restored
from ..report.markdown import markdown_text
from ..report.records import (
    SUBMISSIONS,
    Adjustment,
    Record,
    Submitted,
    as_record,
    submission_dir,
    unscored,
    unscored_results,
)
from .coursefiles import CourseFileError
from .latepolicy import LatePolicy, describe, lateness, penalty
from .overrides import TOTAL, Override
from .roster import Roster

__all__ = [
    "MISSING",
    "STATUSES",
    "Course",
    "class_records",
    "grades_rows",
    "identical_groups",
    "read_grades_csv",
    "summary_markdown",
    "unscored_results",
    "write_grades_csv",
]

# graded: scored (whatever the score); review: scored as far as it ran, but its kernel or
# grading process died twice (a person should look); ungradeable: the file is not a
# gradeable notebook (the student can fix it); error: the grader failed (re-run).
# missing: on the roster, and nothing handed in (a row of the gradebook, no record on disk)
STATUSES = ("graded", "review", "ungradeable", "error", "missing")
MISSING = "missing"
NO_SUBMISSION = "no submission: on the roster, nothing was handed in"


_FIRST = ("student", "assignment", "score", "max")
# the seed the notebook was graded with: the instructor's to know, never shown to students
_LAST = ("status", "message", "notebook", "sha256", "seed")
# the columns that hold text (the rest hold numbers, which stay numbers)
_TEXT: tuple[str, ...] = ("student", "assignment", "status", "message", "notebook", "sha256")


Records = Iterable[Record | dict[str, Any]]


@dataclass(frozen=True)
class Course:
    """The course's own files a grade depends on besides the notebooks. All empty: the
    grades are the grader's, as they always were."""

    roster: Roster | None = None
    overrides: tuple[Override, ...] = ()
    policy: LatePolicy | None = None

    @property
    def given(self) -> bool:
        return bool(self.roster is not None or self.overrides or self.policy is not None)


def _number(value: float) -> float:
    """`value` rounded to 0.01 point, an int when whole (so 15, not 15.0, in grades.csv)."""
    value = round(value, 2)
    return int(value) if float(value).is_integer() else value


def _full_marks(assignment: str | None) -> int | None:
    points = [e.points for e in EXERCISES if e.assignment == assignment]
    return sum(points) if points else None


def _missing(records: list[Record], roster: Roster) -> list[Record]:
    """A row for each roster student and assignment of the class with no record. A record
    whose assignment is unknown (an unreadable file) counts as handing in every one."""
    assignments: list[str | None] = [*sorted({r.assignment for r in records if r.assignment})]
    assignments = assignments or [None]
    handed = {(r.student, r.assignment) for r in records}
    anything = {r.student for r in records if r.assignment is None}
    return [
        unscored(
            NO_SUBMISSION,
            status=MISSING,
            assignment=a,
            max_score=_full_marks(a),
            submitted=Submitted(s.student, None, None),
        )
        for s in roster.students
        for a in assignments
        if (s.student, a) not in handed and s.student not in anything
    ]


def _matching(o: Override, records: list[Record], partial: bool) -> list[int]:
    """The indexes of the records `o` applies to (every notebook a student handed in for
    the assignment)."""
    found = [i for i, r in enumerate(records)
             if r.student == o.student and o.assignment in (None, r.assignment)]  # fmt: skip
    if len({records[i].assignment for i in found}) > 1:
        raise CourseFileError(
            f"{o.where}: {o.student} handed in {len(found)} assignments: name the assignment"
        )
    if not found and not partial:
        raise CourseFileError(
            f"{o.where}: {o.student} has no submission of "
            f"{o.assignment or 'any assignment'} to override"
        )
    return found


def _adjusted(record: Record, overrides: list[Override], course: Course) -> Record:
    """`record` (autograded) with the course's changes: exercise overrides, the late
    policy, then a total override (the last word)."""
    changes: list[Adjustment] = []
    score: float = record.score
    points = record.per_exercise()
    for o in (o for o in overrides if o.exercise != TOTAL):
        before = points.get(o.exercise, 0)
        changes.append(Adjustment("override", o.exercise, before, o.points, o.reason))
        score += o.points - before
    late, policy = None, course.policy
    who = course.roster.get(record.student) if course.roster is not None else None
    due = (who and who.due) or (policy and policy.due)
    if policy is not None and due and record.submitted_at and record.status != MISSING:
        late = lateness(policy, datetime.fromisoformat(record.submitted_at), due)
        cost = penalty(late, max(score, 0))
        if cost:
            changes.append(Adjustment("late", TOTAL, _number(score), _number(score - cost),
                                      describe(late)))  # fmt: skip
            score -= cost
    for o in (o for o in overrides if o.exercise == TOTAL):
        changes.append(Adjustment("override", TOTAL, _number(score), o.points, o.reason))
        score = o.points
    if not changes and late is None:
        return record
    if not changes:  # on time: the lateness is news, the grade is the grader's
        return replace(record, late=late)
    return replace(record, score=_number(score), autograded_score=record.score,
                   adjustments=tuple(changes), late=late)  # fmt: skip


def class_records(
    records: Records, course: Course | None = None, *, partial: bool = False
) -> tuple[Record, ...]:
    """The class's records as the course's files make them (see the module's docstring),
    in the order given, then the roster's missing students. `partial`: one part of a
    sharded class, which cannot know who is missing or whose override is in another
    part. CourseFileError naming the line of an override that matches no submission."""
    base = [as_record(r).autograded() for r in records]
    course = course or Course()
    if course.roster is not None and not partial:
        base += _missing(base, course.roster)
    if not course.given:
        return tuple(base)
    mine: list[list[Override]] = [[] for _ in base]
    for o in course.overrides:
        for i in _matching(o, base, partial):
            mine[i].append(o)
    return tuple(_adjusted(r, overrides, course) for r, overrides in zip(base, mine, strict=True))


def identical_groups(records: Records) -> list[list[Record]]:
    """Submissions with byte-for-byte the same notebook (their sha256), each group in
    listing order: worked out from the records, so a resumed, sharded or merged class
    finds the same groups as a fresh run (which grades such a group once)."""
    groups: dict[str, list[Record]] = {}
    for r in _in_order(records):
        if r.notebook_sha256 and r.status in ("graded", "review"):
            groups.setdefault(r.notebook_sha256, []).append(r)
    return [g for g in groups.values() if len(g) > 1]


def _exercise_columns(records: list[Record]) -> list[str]:
    present = {r.assignment for r in records}
    return [e.cell for e in EXERCISES if e.assignment in present]


def _row(record: Record, columns: list[str]) -> dict[str, str]:
    per_exercise = record.per_exercise()
    row = {
        "student": record.student,
        "assignment": record.assignment or "",
        "score": str(record.score),
        "max": "" if record.max_score is None else str(record.max_score),
    }
    for col in columns:
        row[col] = str(per_exercise[col]) if col in per_exercise else ""
    row.update(
        status=record.status or "graded",
        message=record.message or "",
        notebook=record.notebook,
        sha256=record.notebook_sha256 or "",
        seed="" if record.seed is None else str(record.seed),
    )
    return row


# with a course's files: what they changed and what a person should know, per row
_COURSE = ("autograded", "submitted_at", "time_source", "late", "flags")
_TEXT += ("submitted_at", "time_source", "late", "flags")


def _flags(record: Record, course: Course, twin_of: dict[int, str]) -> str:
    flags = []
    if course.roster is not None and record.student not in course.roster:
        flags.append("not on roster")
    if any(a.kind == "override" for a in record.adjustments):
        flags.append("override")
    if record.late is not None and record.late.seconds_late > 0:
        flags.append("past cut-off" if record.late.after_cutoff else "late")
    if id(record) in twin_of:
        flags.append(f"identical to {twin_of[id(record)]}")
    return "; ".join(flags)


def _course_cells(record: Record, course: Course, twin_of: dict[int, str]) -> dict[str, str]:
    late = record.late
    return {
        "autograded": str(record.autograded().score),
        "submitted_at": record.submitted_at or "",
        "time_source": record.time_source or "",
        "late": describe(late) if late is not None and late.seconds_late > 0 else "",
        "flags": _flags(record, course, twin_of),
    }


def _in_order(records: Records) -> list[Record]:
    """By student, then submission: the order of every listing."""
    return sorted(map(as_record, records), key=lambda r: (r.student, r.key))


def grades_rows(
    records: Records, course: Course | None = None
) -> tuple[list[str], list[dict[str, str]]]:
    """The CSV's header and rows, sorted by student then assignment. With a course's
    files (`class_records` made the records), the columns `_COURSE` too: the autograded
    score, when and how it was handed in, how late, and flags (not on the roster, an
    override, late, an identical notebook)."""
    ordered = _in_order(records)
    columns = _exercise_columns(ordered)
    if course is None or not course.given:
        return [*_FIRST, *columns, *_LAST], [_row(r, columns) for r in ordered]
    twin_of = {id(r): g[0].student for g in identical_groups(ordered) for r in g[1:]}
    rows = [
        {**_row(r, columns), **_course_cells(r, course, twin_of)} for r in ordered
    ]  # fmt: skip
    return [*_FIRST, *columns, *_COURSE, *_LAST], rows


def write_grades_csv(records: Records, path: Path, course: Course | None = None) -> None:
    """`grades_rows` as CSV, each text cell that a spreadsheet would read as a formula
    neutralised (csvcells.py)."""
    header, rows = grades_rows(records, course)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows({k: neutralised(v) if k in _TEXT else v for k, v in r.items()}
                         for r in rows)  # fmt: skip
    tmp.replace(path)


def read_grades_csv(path: Path) -> list[dict[str, str]]:
    """grades.csv's rows as `grades_rows` made them: the text cells as they were before
    `write_grades_csv` neutralised them."""
    with Path(path).open(newline="", encoding="utf-8") as f:
        return [{k: restored(v) if k in _TEXT else v for k, v in r.items()}
                for r in csv.DictReader(f)]  # fmt: skip


def _report_link(record: Record) -> str:
    """A link from summary.md (in the class's folder) to the record's feedback report."""
    if not (record.feedback and record.key):
        return ""
    try:
        submission_dir(Path(), record.key)  # a key no grading would make: no link
    except ValueError:
        return ""
    target = urllib.parse.quote(f"{SUBMISSIONS}/{record.key}/{record.feedback}")
    return f"[report]({target})"


def _cell(text: object) -> str:
    return markdown_text(text, table=True)


def _who(student: str, course: Course) -> str:
    """A student as summary.md names them: the roster's name beside the submission's."""
    entry = course.roster.get(student) if course.roster is not None else None
    shown = markdown_text(student, one_line=True)
    if entry is not None and entry.name:
        shown += f" ({markdown_text(entry.name, one_line=True)})"
    return shown


def _changes(records: list[Record], course: Course) -> list[str]:
    """summary.md's sections on what the course's files changed: overrides, lateness."""
    lines: list[str] = []
    changed = [(r, a) for r in records for a in r.adjustments if a.kind == "override"]
    if changed:
        lines += ["## Overrides", "", "Kept in the overrides file; applied on every run.", "",
                  "| student | assignment | exercise | autograded | now | reason |",
                  "|---|---|---|---:|---:|---|"]  # fmt: skip
        for r, a in changed:
            lines.append(
                f"| {_cell(r.student)} | {_cell(r.assignment or '')} | {_cell(a.exercise)} | "
                f"{a.before:g} | {a.after:g} | {_cell(a.reason)} |"
            )
        lines.append("")
    late = [r for r in records if r.late is not None and r.late.seconds_late > 0]
    if late:
        lines += ["## Late", "",
                  "| student | assignment | handed in | read from | lateness | points |",
                  "|---|---|---|---|---|---:|"]  # fmt: skip
        for r in late:
            cost = next((a for a in r.adjustments if a.kind == "late"), None)
            points = f"{cost.before:g} → {cost.after:g}" if cost else ""
            lines.append(
                f"| {_cell(r.student)} | {_cell(r.assignment or '')} | "
                f"{_cell(r.submitted_at or '')} | {_cell(r.time_source or '')} | "
                f"{_cell(describe(r.late))} | {points} |"  # type: ignore[arg-type]
            )
        lines.append("")
    if course.roster is not None:
        missing = [r for r in records if r.status == MISSING]
        if missing:
            lines += ["## No submission", "",
                      "On the roster, nothing handed in: 0 points in grades.csv.", ""]  # fmt: skip
            lines += [f"- {_who(r.student, course)}" + (f" ({_cell(r.assignment)})"
                      if r.assignment else "") for r in missing]  # fmt: skip
            lines.append("")
        strangers = sorted({r.student for r in records if r.student not in course.roster})
        if strangers:
            lines += ["## Not on the roster", "",
                      "Graded and kept in grades.csv (flagged `not on roster`): add them to "
                      "the roster, or check the name their submission goes by.", ""]  # fmt: skip
            lines += [f"- {markdown_text(s, one_line=True)}" for s in strangers]
            lines.append("")
    return lines


def summary_markdown(records: Records, course: Course | None = None) -> str:
    """What a TA reads first: how the class did, which checks most failed and why, and
    which submissions need a person (ungradeable or grader errors); with a course's
    files, the overrides, the late submissions, who handed in nothing and who is not on
    the roster."""
    course = course or Course()
    everyone = [as_record(r) for r in records]
    submitted = [r for r in everyone if r.status != MISSING]  # the submissions
    _, rows = grades_rows(submitted)
    by_status = Counter(r["status"] for r in rows)
    lines = [
        "# Grading summary",
        "",
        f"{len(rows)} submissions: {by_status['graded']} graded, "
        + (f"{by_status['review']} need a person, " if by_status["review"] else "")
        + f"{by_status['ungradeable']} could not be graded, {by_status['error']} grader errors.",
        "",
    ]
    missing = sum(r.status == MISSING for r in everyone)
    if missing:
        lines += [f'{missing} on the roster handed in nothing (see "No submission").', ""]
    for assignment in sorted({r["assignment"] for r in rows if r["status"] == "graded"}):
        scores = [float(r["score"]) for r in rows if r["assignment"] == assignment]
        full = next(r["max"] for r in rows if r["assignment"] == assignment)
        lines += [
            f"## {markdown_text(assignment, one_line=True)}",
            "",
            f"- submissions: {len(scores)}; mean {statistics.fmean(scores):.1f}/{_cell(full)}, "
            f"median {statistics.median(scores):g}/{_cell(full)}; full marks: "
            f"{sum(s == float(full) for s in scores)}",
            "",
        ]
        failures: Counter[str] = Counter()
        mistakes: Counter[tuple[str, str]] = Counter()
        total: Counter[str] = Counter()
        for rec in submitted:
            if rec.assignment != assignment:
                continue
            for t in rec.checks:
                if t.max_score == 0:
                    continue
                total[t.name] += 1
                if not t.passed:
                    failures[t.name] += 1
                    if t.mistake:
                        mistakes[(t.name, t.mistake)] += 1
        if failures:
            lines += ["| check | failed | most common recognised mistake |", "|---|---:|---|"]
            for name, n in failures.most_common():
                top = [(m, k) for (c, m), k in mistakes.most_common() if c == name]
                common = f"{top[0][0]} ({top[0][1]})" if top else ""
                lines.append(f"| {_cell(name)} | {n}/{total[name]} | {_cell(common)} |")
            lines.append("")
    # from the notebooks' digests, not from what this run graded once: the same groups
    # after a resumed run, or shards merged
    same = [g for g in identical_groups(submitted) if g[0].autograded().score > 0]
    if same:
        lines += [
            "## Identical notebooks",
            "",
            "Byte-for-byte the same file (graded once). Worth a look when they score points:",
            "",
            *(f"- {', '.join(markdown_text(r.student) for r in group)}" for group in same),
            "",
        ]
    attention = [r for r in rows if r["status"] != "graded"]
    if attention:
        lines += [
            "## Needs a person",
            "",
            "| student | status | why | notebook |",
            "|---|---|---|---|",
        ]
        for r in attention:
            lines.append(
                f"| {_cell(r['student'])} | {_cell(r['status'])} | {_cell(r['message'])} | "
                f"{_cell(r['notebook'])} |"
            )
        lines.append("")
    lines += _changes(everyone, course)
    lines += [
        "## Every submission",
        "",
        "| student | assignment | score | status | feedback |",
        "|---|---|---:|---|---|",
    ]
    for r, rec in zip(rows, _in_order(submitted), strict=True):
        score = _cell(f"{r['score']}/{r['max']}" if r["max"] else r["score"])
        link = _report_link(rec)
        lines.append(
            f"| {_cell(r['student'])} | {_cell(r['assignment'] or '?')} | {score} | "
            f"{_cell(r['status'])} "
            f"| {link} |"
        )
    return "\n".join(lines) + "\n"
