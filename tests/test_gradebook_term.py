"""The gradebook a course keeps over a term (issue 27, part 3): a roster (everyone gets a
row), overrides kept in a file (applied on every run, shown with their reason), a due
date and late policy (the hand-in time read from nbgrader's timestamp.txt, a clone's
commit or the file), exports Canvas and Moodle import, a folder holding only a PDF, and
identical notebooks found after a resumed run and after a merge.

Each feature both ways: what it changes, and that without it nothing changes. Most tests
build records directly (milliseconds); a few grade the course's own solution and stub
notebooks."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from grading_tools import exercise, full_marks
from notebook_tools import SOLUTION, STUB

from backprop_lab.course import exercises_for
from backprop_lab.gradebook.batch import grade_submissions, merge
from backprop_lab.gradebook.coursefiles import CourseFileError
from backprop_lab.gradebook.exports import CANVAS_IDS, MOODLE_IDS, export_rows
from backprop_lab.gradebook.feedback_gradebook import with_gradebook_block
from backprop_lab.gradebook.grades import (
    MISSING,
    Course,
    class_records,
    grades_rows,
    read_grades_csv,
    summary_markdown,
)
from backprop_lab.gradebook.latepolicy import LatePolicy, parse_due, parse_late_policy
from backprop_lab.gradebook.overrides import check_students, read_overrides
from backprop_lab.gradebook.roster import read_roster
from backprop_lab.gradebook.submissions import find_submissions
from backprop_lab.gradebook.submittime import FILE_TIME, GIT, NBGRADER, handed_in
from backprop_lab.report.records import CheckRecord, Record, Submitted, save
from backprop_lab.verbs.cli import main

DUE = "2026-12-10T23:59+01:00"
# backprop's points as the exercise table gives them: full marks, and lin_grad's share of
# them (the exercise most records here lose)
FULL = full_marks("backprop")
LIN = exercise("lin_grad").points


def rec(
    student: str,
    lost: tuple[str, ...] = (),
    *,
    sha: str | None = None,
    at: datetime | None = None,
    assignment: str = "backprop",
) -> Record:
    """A graded record of `assignment`: full marks but for the exercises in `lost`."""
    checks = tuple(
        CheckRecord(
            e.cell,
            e.cell,
            "check",
            0 if e.cell in lost else e.points,
            e.points,
            e.cell not in lost,
            "wrong" if e.cell in lost else "",
        )
        for e in exercises_for(assignment)
    )
    return Record(
        score=sum(c.score for c in checks),
        output="",
        checks=checks,
        assignment=assignment,
        max_score=sum(c.max_score for c in checks),
        notebook_sha256=sha or student * 8,
        submitted=Submitted(student, f"{student}/{assignment}", f"/c/{student}.ipynb"),
        status="graded",
        message="",
        submitted_at=at.isoformat() if at else None,
        time_source=NBGRADER if at else None,
        feedback="feedback.html",
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def roster_file(tmp_path: Path, *rows: str) -> Path:
    return write(
        tmp_path / "roster.csv",
        "student,name,email,lms_id,sis_id,section,due\n" + "\n".join(rows) + "\n",
    )


def overrides_file(tmp_path: Path, *rows: str) -> Path:
    return write(
        tmp_path / "overrides.csv",
        "student,assignment,exercise,points,reason\n" + "\n".join(rows) + "\n",
    )


def by_student(records) -> dict[str, Record]:
    return {r.student: r for r in records}


# -- a. the roster -------------------------------------------------------------------------


def test_every_student_on_the_roster_gets_a_row_and_strangers_are_kept(tmp_path: Path) -> None:
    roster = read_roster(
        roster_file(tmp_path, "ann,Ann A,ann@u.edu,11,S1,A,", "dan,Dan D,dan@u.edu,14,S4,A,")
    )
    records = [rec("ann"), rec("=zed")]  # zed is not on the roster (and names a formula)
    course = Course(roster=roster)
    final = class_records(records, course)
    assert [(r.student, r.status, r.score) for r in final] == [
        ("ann", "graded", FULL),
        ("=zed", "graded", FULL),
        ("dan", MISSING, 0),
    ]
    _, rows = grades_rows(final, course)
    row = {r["student"]: r for r in rows}
    assert row["dan"]["status"] == "missing" and row["dan"]["score"] == "0"
    assert row["dan"]["max"] == str(FULL) and row["dan"]["assignment"] == "backprop"
    assert row["=zed"]["flags"] == "not on roster" and row["ann"]["flags"] == ""
    summary = summary_markdown(final, course)
    assert "## No submission" in summary and "- dan (Dan D) (backprop)" in summary
    assert "## Not on the roster" in summary and "- =zed" in summary
    assert "2 submissions: 2 graded" in summary  # the missing are no submissions
    assert "| dan | missing |" not in summary  # and need no person
    write_path = tmp_path / "grades.csv"
    from backprop_lab.gradebook.grades import write_grades_csv

    write_grades_csv(final, write_path, course)
    assert "'=zed" in write_path.read_text()  # neutralised for spreadsheets
    assert read_grades_csv(write_path) == rows  # and read back as it was


def test_without_a_roster_nothing_changes() -> None:
    records = [rec("ann"), rec("bob", ("lin_grad",))]
    assert class_records(records) == tuple(records)
    assert class_records(records, Course()) == tuple(records)
    assert grades_rows(class_records(records), Course()) == grades_rows(records)
    assert summary_markdown(records, Course()) == summary_markdown(records)
    assert "No submission" not in summary_markdown(records)


def test_a_roster_file_that_cannot_be_used_names_its_line(tmp_path: Path) -> None:
    with pytest.raises(CourseFileError, match=r"roster.csv, line 1: no 'student' column"):
        read_roster(write(tmp_path / "roster.csv", "name,email\nAnn,a@u\n"))
    with pytest.raises(CourseFileError, match=r"line 3: 'ann' is on the roster already"):
        read_roster(roster_file(tmp_path, "ann,,,,,,", "ann,,,,,,"))
    with pytest.raises(CourseFileError, match=r"line 2: due: .* no time zone"):
        read_roster(roster_file(tmp_path, "ann,,,,,,2026-12-12T23:59"))
    # an LMS's export with other columns is read as it is
    lms = write(tmp_path / "lms.csv", "\ufeffStudent,Name,Login,Grade\nann,Ann,ann1,\n")
    assert read_roster(lms).get("ann").name == "Ann"  # type: ignore[union-attr]


# -- b. overrides ------------------------------------------------------------------------


def test_an_override_changes_exactly_that_students_grade_and_says_why(tmp_path: Path) -> None:
    part = LIN - 1  # lin_grad regraded by hand: all but a point
    graded, given = FULL - LIN, FULL - LIN + part
    overrides = read_overrides(
        overrides_file(
            tmp_path, f"bob,backprop,lin_grad,{part},regraded by hand: right up to a transpose"
        )
    )
    records = [rec("ann", ("lin_grad",)), rec("bob", ("lin_grad",))]
    final = by_student(class_records(records, Course(overrides=overrides)))
    assert final["ann"] == records[0]  # untouched
    bob = final["bob"]
    assert (bob.score, bob.autograded_score) == (given, graded)
    assert bob.per_exercise()["lin_grad"] == part
    assert bob.autograded().per_exercise()["lin_grad"] == 0
    assert bob.autograded() == records[1]  # the grader's record is all still there
    # and it survives results.json
    assert Record.from_dict(json.loads(json.dumps(bob.to_dict()))) == bob
    course = Course(overrides=overrides)
    _, rows = grades_rows(final.values(), course)
    row = {r["student"]: r for r in rows}
    assert (row["bob"]["score"], row["bob"]["lin_grad"], row["bob"]["autograded"]) == (
        str(given),
        str(part),
        str(graded),
    )
    assert row["bob"]["flags"] == "override" and row["ann"]["lin_grad"] == "0"
    summary = summary_markdown(final.values(), course)
    assert (
        f"| bob | backprop | lin\\_grad | 0 | {part} | regraded by hand: right up to a transpose |"
        in (summary)
    )
    feedback = f"# Feedback on bob.ipynb: {graded}/{FULL}\n\nGraded.\n"
    page = with_gradebook_block(feedback, bob, as_html=False)
    assert f"Your grade: {given}/{FULL} (the grader's checks gave {graded}/{FULL})" in page
    assert f"exercise lin\\_grad from 0 to {part} points. Reason: regraded by hand" in page
    html_page = with_gradebook_block(f"<h1>Feedback</h1>\n<p>{graded} / {FULL}</p>\n", bob,
                                     as_html=True)  # fmt: skip
    assert "Reason: regraded by hand: right up to a transpose</li>" in html_page
    # without the override: the grader's grade, and no block in the page
    plain = by_student(class_records(final.values(), Course()))
    assert plain["bob"] == records[1]
    assert with_gradebook_block(page, plain["bob"], as_html=False) == feedback


def test_a_total_override_is_the_last_word(tmp_path: Path) -> None:
    overrides = read_overrides(overrides_file(tmp_path, f"ann,,total,{FULL},excused: paper copy"))
    late = rec("ann", ("lin_grad",), at=parse_due(DUE) + timedelta(days=5))
    course = Course(overrides=overrides, policy=parse_late_policy("10%/day", parse_due(DUE)))
    ann = class_records([late], course)[0]
    graded = FULL - LIN
    assert ann.score == FULL and ann.autograded_score == graded
    assert [(a.kind, a.before, a.after) for a in ann.adjustments] == [
        ("late", graded, pytest.approx(graded * 0.5)),  # five started days at 10%
        ("override", pytest.approx(graded * 0.5), FULL),
    ]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("ann,backprop,lin_grads,2,typo", r"overrides.csv, line 2: unknown exercise 'lin_grads'"),
        ("ann,backprops,lin_grad,2,x", r"line 2: unknown assignment 'backprops'"),
        ("ann,matmul,lin_grad,2,x", r"line 2: exercise 'lin_grad' is in backprop, not matmul"),
        (
            f"ann,backprop,lin_grad,{LIN + 1},x",
            rf"line 2: {LIN + 1} points for lin_grad is out of range \(0 to {LIN}\)",
        ),
        ("ann,backprop,lin_grad,two,x", r"line 2: points 'two' is not a number"),
        ("ann,backprop,lin_grad,2,", r"line 2: no reason"),
    ],
)
def test_an_override_that_cannot_be_applied_names_its_line(
    tmp_path: Path, row: str, message: str
) -> None:
    with pytest.raises(CourseFileError, match=message):
        read_overrides(overrides_file(tmp_path, row))


def test_an_override_for_nobody_is_refused(tmp_path: Path) -> None:
    overrides = read_overrides(overrides_file(tmp_path, "ann,,total,3,x", "anne,,total,3,x"))
    with pytest.raises(CourseFileError, match=r"line 3: unknown student 'anne'"):
        check_students(overrides, {"ann", "bob"})
    with pytest.raises(CourseFileError, match=r"line 3: anne has no submission"):
        class_records([rec("ann")], Course(overrides=overrides))
    # a part of a sharded class skips what is in another part
    assert class_records([rec("ann")], Course(overrides=overrides), partial=True)[0].score == 3


def test_grade_refuses_an_override_of_an_unknown_student_before_grading(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    shutil.copytree(STUB["backprop"].parent, tmp_path / "class/ann")
    overrides = overrides_file(tmp_path, "ann,,total,3,x", "anne,,total,3,typo")
    argv = [
        "grade",
        str(tmp_path / "class"),
        "--out",
        str(tmp_path / "out"),
        "--quiet",
        "--overrides",
        str(overrides),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "overrides.csv, line 3: unknown student 'anne'" in err
    assert not (tmp_path / "out" / "submissions").exists()  # nothing was graded
    assert main([*argv[:-1], str(write(tmp_path / "o.csv", "student,points\n"))]) == 2
    assert "line 1: no 'assignment', 'exercise', 'reason' column" in capsys.readouterr().err


# -- c. due date and late policy --------------------------------------------------------


def test_a_late_submission_loses_exactly_the_policys_points() -> None:
    due = parse_due(DUE)
    course = Course(policy=parse_late_policy("10%/day,cutoff=3d", due))
    records = [
        rec("early", at=due - timedelta(hours=1)),
        rec("ontime", at=due),
        rec("minute", at=due + timedelta(minutes=1)),  # a started day is a day
        rec("two", ("lin_grad",), at=due + timedelta(days=1, hours=2)),
        rec("gone", at=due + timedelta(days=3, seconds=1)),
        rec("unknown"),  # no hand-in time: nothing to judge
    ]
    final = by_student(class_records(records, course))
    assert {s: r.score for s, r in final.items()} == pytest.approx({
        "early": FULL,
        "ontime": FULL,
        "minute": FULL * 0.9,  # one started day: 10% off
        "two": (FULL - LIN) * 0.8,  # two started days: 20% off what lin_grad left
        "gone": 0,
        "unknown": FULL,
    })  # fmt: skip
    assert final["early"].adjustments == () and final["early"].late.seconds_late == 0  # type: ignore[union-attr]
    assert final["two"].late.days_late == 2 and final["two"].late.percent == 20  # type: ignore[union-attr]
    assert final["gone"].late.after_cutoff  # type: ignore[union-attr]
    assert final["unknown"] == records[-1]
    summary = summary_markdown(final.values(), course)
    assert "## Late" in summary and "| minute | backprop |" in summary
    assert "| early |" not in summary.split("## Late")[1].split("##")[0]
    assert "1 min late (due 2026-12-10T23:59:00+01:00); 1 started day(s): 10% off" in summary
    page = with_gradebook_block(f"# F: {FULL - LIN}/{FULL}\n", final["two"], as_html=False)
    assert "from the nbgrader timestamp.txt" in page and "20% off" in page
    assert f"Late penalty: {FULL - LIN} to {(FULL - LIN) * 0.8:g} points." in page
    # with no policy, nothing changes; with a due date alone, lateness is reported, free
    assert class_records(records, Course()) == tuple(records)
    free = by_student(class_records(records, Course(policy=LatePolicy(due))))
    assert free["minute"].score == FULL and free["minute"].late.seconds_late == 60  # type: ignore[union-attr]


def test_an_extension_on_the_roster_makes_it_on_time(tmp_path: Path) -> None:
    due = parse_due(DUE)
    roster = read_roster(roster_file(tmp_path, "ann,,,,,,2026-12-12T23:59+01:00", "bob,,,,,,"))
    course = Course(roster, policy=parse_late_policy("10%/day", due))
    at = due + timedelta(days=1)
    final = by_student(class_records([rec("ann", at=at), rec("bob", at=at)], course))
    assert final["ann"].score == FULL and final["ann"].late.seconds_late == 0  # type: ignore[union-attr]
    assert final["bob"].score == pytest.approx(FULL * 0.9)


def test_due_dates_and_policies_that_cannot_be_read() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        parse_due("2026-12-10T23:59")
    with pytest.raises(ValueError, match="write N%/day and/or cutoff=Nd"):
        parse_late_policy("10 percent")
    assert parse_late_policy("cutoff=12h").cutoff == timedelta(hours=12)
    assert main(["grade", ".", "--out", "x", "--late-policy", "10%/day"]) == 2


def test_the_hand_in_time_is_read_from_nbgrader_then_git_then_the_file(tmp_path: Path) -> None:
    sub = tmp_path / "submitted/ann/backprop"
    shutil.copy(STUB["backprop"], sub.mkdir(parents=True) or sub / "backprop.ipynb")
    write(sub / "timestamp.txt", "2026-12-10 22:30:00.000001 UTC\n")
    clone = tmp_path / "clones/bob"
    shutil.copy(STUB["backprop"], clone.mkdir(parents=True) or clone / "backprop.ipynb")
    env = {
        **os.environ,
        "GIT_COMMITTER_DATE": "2026-12-11T08:00:00+01:00",
        "GIT_AUTHOR_DATE": "2026-12-01T08:00:00+01:00",
        "GIT_AUTHOR_NAME": "bob",
        "GIT_AUTHOR_EMAIL": "b@u",
        "GIT_COMMITTER_NAME": "bob",
        "GIT_COMMITTER_EMAIL": "b@u",
    }
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-qm", "done"]):
        subprocess.run(["git", "-C", str(clone), *cmd], check=True, env=env)
    loose = tmp_path / "loose/carol.ipynb"
    shutil.copy(STUB["backprop"], loose.parent.mkdir() or loose)
    os.utime(loose, (1_800_000_000, 1_800_000_000))
    [ann] = find_submissions([tmp_path / "submitted"])
    [bob] = find_submissions([tmp_path / "clones"])
    [carol] = find_submissions([loose])
    assert handed_in(ann).at == datetime(2026, 12, 10, 22, 30, 0, 1, UTC)  # type: ignore[union-attr]
    assert handed_in(ann).source == NBGRADER  # type: ignore[union-attr]
    assert handed_in(bob).at == parse_due("2026-12-11T08:00:00+01:00")  # type: ignore[union-attr]
    assert handed_in(bob).source == GIT  # type: ignore[union-attr]
    assert handed_in(carol).at.timestamp() == 1_800_000_000  # type: ignore[union-attr]
    assert handed_in(carol).source == FILE_TIME  # type: ignore[union-attr]


# -- e. a folder with no notebook --------------------------------------------------------


def test_a_folder_with_only_a_pdf_names_the_pdf(tmp_path: Path) -> None:
    write(tmp_path / "class/ann/backprop.pdf", "%PDF-1.4")
    write(tmp_path / "class/ann/.DS_Store", "")
    (tmp_path / "class/bob").mkdir()
    summary = grade_submissions([tmp_path / "class"], tmp_path / "out", progress=False)
    found = by_student(Record.from_dict(r) for r in summary.records)
    assert "found backprop.pdf (a PDF): upload the .ipynb notebook itself" in found["ann"].output
    assert "nothing was submitted" not in found["ann"].output
    assert ".DS_Store" not in found["ann"].output
    assert "nothing was submitted" in found["bob"].output  # an empty folder is empty


# -- f. identical notebooks after resume and merge ---------------------------------------


def test_identical_notebooks_are_found_after_a_merge(tmp_path: Path) -> None:
    save(tmp_path / "part-1", "ann/backprop", rec("ann", sha="s" * 64))
    save(tmp_path / "part-2", "ben/backprop", rec("ben", sha="s" * 64))
    save(tmp_path / "part-2", "cat/backprop", rec("cat", sha="c" * 64))
    merge([tmp_path / "part-1", tmp_path / "part-2"], tmp_path / "merged")
    summary = (tmp_path / "merged/summary.md").read_text()
    assert "## Identical notebooks" in summary and "- ann, ben\n" in summary
    assert "cat" not in summary.split("## Identical notebooks")[1].split("##")[0]
    # each part alone has no pair to find
    merge([tmp_path / "part-2"], tmp_path / "alone")
    assert "Identical" not in (tmp_path / "alone/summary.md").read_text()


def test_identical_notebooks_are_found_after_a_resumed_run(tmp_path: Path) -> None:
    shutil.copytree(SOLUTION["backprop"].parent, tmp_path / "class/ann")
    shutil.copytree(STUB["backprop"].parent, tmp_path / "class/ben")
    grade_submissions([tmp_path / "class"], tmp_path / "out", progress=False)
    assert "Identical" not in (tmp_path / "out/summary.md").read_text()
    shutil.copy(SOLUTION["backprop"], tmp_path / "class/ben/backprop.ipynb")  # ben copies
    again = grade_submissions([tmp_path / "class"], tmp_path / "out", progress=False)
    assert again.skipped == 1  # ann's record is reused: ann and ben were never graded together
    summary = (tmp_path / "out/summary.md").read_text()
    assert "## Identical notebooks" in summary and "- ann, ben\n" in summary


# -- d. exports --------------------------------------------------------------------------


def test_exports_have_the_columns_each_importer_documents(tmp_path: Path) -> None:
    roster = read_roster(
        roster_file(tmp_path, 'ann,"Aa, Ann",ann@u.edu,101,S1,A,', "dan,Dd Dan,dan@u.edu,104,S4,B,")
    )
    course = Course(roster)
    final = class_records([rec("ann", ("lin_grad",)), rec("zed")], course)
    canvas = export_rows("canvas", final, roster)
    assert canvas.rows[0] == [*CANVAS_IDS, "backprop"]
    assert canvas.rows[1] == ["Points Possible", "", "", "", "", str(FULL)]
    assert canvas.rows[2:] == [
        ["Aa, Ann", "101", "S1", "", "A", str(FULL - LIN)],
        ["Dd Dan", "104", "S4", "", "B", "0"],
    ]
    assert canvas.left_out == ("zed",)  # no id to match zed by
    titled = export_rows("canvas", final, roster, {"backprop": "Backprop (12345)"})
    assert titled.rows[0][-1] == "Backprop (12345)"
    moodle = export_rows("moodle", final, roster)
    assert moodle.rows == [
        [*MOODLE_IDS, "backprop"],
        ["ann@u.edu", "101", str(FULL - LIN)],
        ["dan@u.edu", "104", "0"],
    ]
    plain = export_rows("plain", final, roster)
    cells = [e.cell for e in exercises_for("backprop")]
    assert plain.rows[0] == [
        "student",
        "name",
        "email",
        "lms_id",
        "assignment",
        *cells,
        "score",
        "max",
        "autograded",
        "status",
        "flags",
    ]
    rows = {r[0]: dict(zip(plain.rows[0], r, strict=True)) for r in plain.rows[1:]}
    assert rows["ann"]["lin_grad"] == "0" and rows["ann"]["score"] == str(FULL - LIN)
    assert rows["dan"]["status"] == "missing" and rows["zed"]["flags"] == "not on roster"
    with pytest.raises(ValueError, match="needs --roster"):
        export_rows("moodle", final, None)


# -- the whole term, as typed ------------------------------------------------------------


def test_a_term_as_typed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """grade with a roster, overrides and a late policy; re-run without the override
    (nothing graded again, the grade and the feedback back to the grader's); export."""
    course = tmp_path / "course/submitted"
    for student, stamp in (("ann", "2026-12-10 20:00:00 UTC"), ("bob", "2026-12-12 10:00:00 UTC")):
        shutil.copy(
            SOLUTION["backprop"],
            (course / student / "backprop").mkdir(parents=True)
            or course / student / "backprop/backprop.ipynb",
        )
        write(course / student / "backprop/timestamp.txt", stamp)
    write(course / "cat/backprop/backprop.pdf", "%PDF")
    roster = roster_file(
        tmp_path,
        "ann,Ann,ann@u,1,,,",
        "bob,Bob,bob@u,2,,,",
        "cat,Cat,cat@u,3,,,",
        "dan,Dan,dan@u,4,,,",
    )
    ann_total = FULL - 1  # one point off the solution's full marks
    bob_late = f"{FULL * 0.8:g}"  # 2 started days late at 10%/day, as grades.csv writes it
    overrides = overrides_file(
        tmp_path, f"ann,backprop,total,{ann_total},one point off: plagiarised docstring"
    )
    out = tmp_path / "out"
    flags = ["--roster", str(roster), "--due", DUE, "--late-policy", "10%/day"]
    argv = ["grade", str(course.parent), "--out", str(out), "--quiet", "--workers", "1", *flags]
    assert main([*argv, "--overrides", str(overrides)]) == 1  # cat's PDF is ungradeable
    rows = {r["student"]: r for r in read_grades_csv(out / "grades.csv")}
    assert {s: (r["score"], r["status"]) for s, r in rows.items()} == {
        "ann": (str(ann_total), "graded"),
        "bob": (bob_late, "graded"),
        "cat": ("0", "ungradeable"),
        "dan": ("0", "missing"),
    }
    assert rows["bob"]["autograded"] == str(FULL) and rows["bob"]["time_source"] == NBGRADER
    assert "found backprop.pdf (a PDF)" in rows["cat"]["message"]
    ann = json.loads((out / "submissions/ann/backprop/results.json").read_text())
    assert ann["score"] == ann_total and ann["extra_data"]["autograded_score"] == FULL
    assert ann["extra_data"]["adjustments"][0]["reason"] == "one point off: plagiarised docstring"
    feedback = (out / "submissions/ann/backprop/feedback.md").read_text()
    assert "Reason: one point off: plagiarised docstring" in feedback
    assert "plagiarised docstring" in (out / "submissions/ann/backprop/feedback.html").read_text()
    bob_page = (out / "submissions/bob/backprop/feedback.html").read_text()
    assert f"Late penalty: {FULL} to {bob_late} points." in bob_page
    summary = (out / "summary.md").read_text()
    assert "## Overrides" in summary and "## Late" in summary and "- dan (Dan)" in summary
    assert "## Identical notebooks" in summary  # ann and bob handed in the same file

    capsys.readouterr()
    assert (
        main(
            [
                "export",
                str(out),
                "--to",
                "canvas",
                "--out",
                str(tmp_path / "c.csv"),
                *flags,
                "--overrides",
                str(overrides),
            ]
        )
        == 0
    )
    assert "warning" not in capsys.readouterr().err
    with (tmp_path / "c.csv").open(newline="") as f:
        exported = list(csv.reader(f))
    assert exported[0] == [*CANVAS_IDS, "backprop"] and exported[1][0] == "Points Possible"
    assert [r[1:2] + r[-1:] for r in exported[2:]] == [
        ["1", str(ann_total)],
        ["2", bob_late],
        ["3", "0"],
        ["4", "0"],
    ]
    # without the overrides file: what the grader (and the late policy) gave, at once
    assert (
        main(["export", str(out), "--to", "plain", "--out", str(tmp_path / "p.csv"), *flags]) == 0
    )
    assert "differ from the last grade/merge (first: ann)" in capsys.readouterr().err
    assert main(argv) == 1
    assert read_grades_csv(out / "grades.csv")[0]["score"] == str(FULL)
    assert "Reason" not in (out / "submissions/ann/backprop/feedback.md").read_text()
    assert (
        "autograded_score"
        not in json.loads((out / "submissions/ann/backprop/results.json").read_text())["extra_data"]
    )
