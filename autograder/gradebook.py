"""A class's grades from the per-submission records (`results.json` files): `grades.csv`
for the gradebook and `summary.md` for the people who teach. Pure functions of records;
the records are the source of truth, so a re-run that skips graded work loses nothing.
Each takes `Record`s, or their JSON as read from results.json files.

Names, paths and messages come from students: in summary.md they are escaped Markdown
(markdown.py), and in grades.csv a text cell a spreadsheet would run as a formula is
neutralised (csvcells.py) and read back as written by `read_grades_csv`."""

from __future__ import annotations

import csv
import statistics
import urllib.parse
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .csvcells import neutralised, restored
from .exercises import EXERCISES
from .markdown import markdown_text
from .records import SUBMISSIONS, Record, as_record, submission_dir, unscored_results

__all__ = [
    "STATUSES",
    "grades_rows",
    "read_grades_csv",
    "summary_markdown",
    "unscored_results",
    "write_grades_csv",
]

# graded: scored (whatever the score); review: scored as far as it ran, but its kernel or
# grading process died twice (a person should look); ungradeable: the file is not a
# gradeable notebook (the student can fix it); error: the grader failed (re-run).
STATUSES = ("graded", "review", "ungradeable", "error")


_FIRST = ("student", "assignment", "score", "max")
# the seed the notebook was graded with: the instructor's to know, never shown to students
_LAST = ("status", "message", "notebook", "sha256", "seed")
# the columns that hold text (the rest hold numbers, which stay numbers)
_TEXT = ("student", "assignment", "status", "message", "notebook", "sha256")


Records = Iterable[Record | dict[str, Any]]


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


def _in_order(records: Records) -> list[Record]:
    """By student, then submission: the order of every listing."""
    return sorted(map(as_record, records), key=lambda r: (r.student, r.key))


def grades_rows(records: Records) -> tuple[list[str], list[dict[str, str]]]:
    """The CSV's header and rows, sorted by student then assignment."""
    ordered = _in_order(records)
    columns = _exercise_columns(ordered)
    header = [*_FIRST, *columns, *_LAST]
    return header, [_row(r, columns) for r in ordered]


def write_grades_csv(records: Records, path: Path) -> None:
    """`grades_rows` as CSV, each text cell that a spreadsheet would read as a formula
    neutralised (csvcells.py)."""
    header, rows = grades_rows(records)
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


def summary_markdown(records: Records) -> str:
    """What a TA reads first: how the class did, which checks most failed and why, and
    which submissions need a person (ungradeable or grader errors)."""
    records = [as_record(r) for r in records]
    _, rows = grades_rows(records)
    by_status = Counter(r["status"] for r in rows)
    lines = [
        "# Grading summary",
        "",
        f"{len(rows)} submissions: {by_status['graded']} graded, "
        + (f"{by_status['review']} need a person, " if by_status["review"] else "")
        + f"{by_status['ungradeable']} could not be graded, {by_status['error']} grader errors.",
        "",
    ]
    for assignment in sorted({r["assignment"] for r in rows if r["status"] == "graded"}):
        scores = [int(r["score"]) for r in rows if r["assignment"] == assignment]
        full = next(r["max"] for r in rows if r["assignment"] == assignment)
        lines += [
            f"## {markdown_text(assignment, one_line=True)}",
            "",
            f"- submissions: {len(scores)}; mean {statistics.fmean(scores):.1f}/{_cell(full)}, "
            f"median {statistics.median(scores):g}/{_cell(full)}; full marks: "
            f"{sum(s == int(full) for s in scores)}",
            "",
        ]
        failures: Counter[str] = Counter()
        mistakes: Counter[tuple[str, str]] = Counter()
        total: Counter[str] = Counter()
        for rec in records:
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
    same: dict[str, list[str]] = {}
    for rec in records:
        if rec.identical_to and rec.score > 0:
            same.setdefault(rec.identical_to, []).append(rec.student)
    if same:
        lines += [
            "## Identical notebooks",
            "",
            "Byte-for-byte the same file (graded once). Worth a look when they score points:",
            "",
            *(
                f"- {markdown_text(first)}, {', '.join(map(markdown_text, others))}"
                for first, others in same.items()
            ),
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
    lines += [
        "## Every submission",
        "",
        "| student | assignment | score | status | feedback |",
        "|---|---|---:|---|---|",
    ]
    for r, rec in zip(rows, _in_order(records), strict=True):
        score = _cell(f"{r['score']}/{r['max']}" if r["max"] else r["score"])
        link = _report_link(rec)
        lines.append(
            f"| {_cell(r['student'])} | {_cell(r['assignment'] or '?')} | {score} | "
            f"{_cell(r['status'])} "
            f"| {link} |"
        )
    return "\n".join(lines) + "\n"
