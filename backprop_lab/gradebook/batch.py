"""`autograde grade`: grade every submission under some paths, several at once.

Each submission is graded by `pipeline.grade` in a worker process and leaves
`<out>/submissions/<student>/<assignment>/results.json` (written atomically) whatever
happened: a score, "could not be graded" with the reason, or a grader error. `grades.csv`
and `summary.md` are then built from all the records, in `<out>` itself: the students'
folders are a level down, so a student called `grades.csv` is no class file's rival.
Because the records are on disk, a re-run (or a run after a crash or Ctrl-C) skips what is
already graded with the same notebook bytes, grader version, seed and device, and grades
only the rest, trusting only records that carry the output folder's own signature (see
records.py), so a record planted or edited by anything else is graded again. Each
record also says when its submission was handed in (submittime.py). The course's own
files (a `gradebook.Course`: roster, overrides, due date and late policy) are applied to
the records, old and new alike, on every run: a record whose grade they change is saved
again with the autograded score kept beside it, and its feedback pages say so. A kernel
that dies is given one more try in a fresh sandbox, and so is a worker process killed
under its submission; a second failure is recorded for a person to look at.

Nothing here prints: the caller gets a `BatchSummary`, and a `progress` callback hears
of every submission as it is recorded (cli.py draws the bar and the summary).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

from .. import __version__
from ..course import ASSIGNMENTS, exercises_for
from ..options import GradingError, Options, which_engine
from ..plan.notebook import NotebookError, notebook_digest
from ..report.records import (
    FEEDBACK,
    Record,
    Submitted,
    record_from,
    reusable,
    save,
    submission_dir,
    twin_record,
    unscored,
    write_text_atomic,
)
from ..run.engine import INPROCESS
from .grades import MISSING, Course, class_records, summary_markdown, write_grades_csv
from .merge import in_shard, merge_records
from .overrides import check_students
from .submissions import Submission, find_submissions
from .submittime import handed_in
from .workers import KernelServer, kernel_server, run_pool, runner, threads_for

__all__ = ["BatchSummary", "Step", "grade_one", "grade_submissions", "in_shard", "merge"]


@dataclass(frozen=True)
class BatchSummary:
    out: Path
    graded: tuple[Record, ...]  # in the order the submissions were found
    skipped: int  # already graded by an earlier run
    seconds: float = 0.0

    @property
    def records(self) -> tuple[dict[str, Any], ...]:
        """The records as their results.json files hold them."""
        return tuple(r.to_dict() for r in self.graded)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.graded)

    @property
    def exit_code(self) -> int:
        """0: every submission graded; 1: some could not be; 2: nothing to grade."""
        if not self.graded:
            return 2
        return 0 if self.count("graded") == len(self.graded) else 1


@dataclass(frozen=True)
class Step:
    """What a progress display hears: once before any grading (`sub` None), then once per
    submission recorded."""

    total: int  # submissions in this run
    sub: Submission | None = None
    record: Record | None = None
    skipped: bool = False  # recorded by an earlier run


def _submitted(sub: Submission, status: str, message: str, digest: str | None) -> dict[str, Any]:
    """The facts a class's record holds about its submission, for `Record`'s fields."""
    notebook = str(sub.notebook) if sub.notebook else None
    return {"submitted": Submitted(sub.student, sub.key, notebook), "status": status,
            "message": message, "notebook_sha256": digest}  # fmt: skip


def _unscored(
    sub: Submission, options: Options, status: str, message: str, digest: str | None
) -> Record:
    """A record for a submission that got no score: zero points and the reason."""
    assignment = options.assignment or sub.assignment
    if assignment is None and sub.notebook is not None and sub.notebook.stem in ASSIGNMENTS:
        assignment = sub.notebook.stem  # the best guess left, so the row sorts with its kind
    try:
        max_score = sum(e.points for e in exercises_for(assignment)) if assignment else None
    except KeyError:
        max_score = None
    return unscored(message, assignment=assignment, max_score=max_score,
                    grader_version=__version__, seed=options.seed, device=options.device,
                    **_submitted(sub, status, message, digest))  # fmt: skip


def _write_feedback(result, folder: Path) -> None:
    from ..report import feedback  # looked up at each call, so a test can stand in for it

    shutil.rmtree(folder / "feedback_files", ignore_errors=True)  # no stale pictures
    feedback.write_feedback(result, folder / "feedback.html", folder / "feedback.md")


_KERNEL_DIED = (
    "The kernel died twice while running this notebook (its own code may exit or crash "
    "it): the score counts what ran before, and a person should look."
)


def _graded(sub, options, digest, feedback, server, folder: Path) -> Record:
    # Here, not at the top: the pipeline imports torch, which the process that only hands
    # submissions to workers never needs.
    from .. import pipeline

    cpu = time.process_time()
    options = replace(options, assignment=options.assignment or sub.assignment)
    result = pipeline.grade(sub.notebook, options, **runner(server))
    if result.kernel_died:
        # Something may have killed it from outside: one more try, in a fresh sandbox,
        # before the student's own code is taken to be the cause.
        result = pipeline.grade(sub.notebook, options, **runner(server))
    reasons = ((_KERNEL_DIED,) if result.kernel_died else ()) + result.review
    status = "review" if reasons else "graded"
    record = record_from(result)
    notes = "; ".join(result.score.notes)
    if reasons:
        why = " ".join(reasons)
        record = replace(record, output=f"{why}\n{record.output}")
        notes = f"{why} {notes}".strip()
    record = replace(record, **_submitted(sub, status, notes, digest))
    timings = dict(result.timings)
    if feedback:  # before results.json: a recorded submission has its report
        t = time.perf_counter()
        try:
            _write_feedback(result, folder)
            record = replace(record, feedback=FEEDBACK[0])  # beside results.json
        except Exception as exc:  # a report that fails to draw must not cost the score
            problem = f"the feedback report could not be written ({type(exc).__name__}: {exc})"
            record = replace(record, feedback_error=problem)
        timings["report"] = time.perf_counter() - t
    # where the time went, for the instructor (and benchmarks/): this process's own CPU
    # (grading, comparing, drawing), the notebook's run in its own process apart
    timings["grader cpu"] = time.process_time() - cpu
    return replace(record, timings={k: round(v, 4) for k, v in timings.items()})


def grade_one(
    sub: Submission,
    out: Path,
    options: Options,
    feedback: bool = True,
    server: KernelServer | None = None,
) -> tuple[Record, bool]:
    """Grade one submission, write its results.json (and, for a graded one, its feedback
    report), return (record, skipped). Never raises for anything about the submission:
    every outcome is a record. `server`: the batch's fork server, if it has one."""
    if sub.notebook is None:
        record = _unscored(sub, options, "ungradeable", sub.problem or "", None)
        return save(out, sub.key, record), False
    try:
        digest = notebook_digest(sub.notebook)
    except NotebookError as exc:  # a link, a FIFO, an empty or too large file
        record = _unscored(sub, options, "ungradeable", str(exc), None)
        return save(out, sub.key, record), False
    except OSError as exc:
        record = _unscored(sub, options, "ungradeable", f"cannot read the notebook: {exc}", None)
        return save(out, sub.key, record), False
    previous = reusable(out, sub.key, digest, options)
    if previous is not None:  # also checked by the caller; the file may have changed since
        return previous, True
    try:
        folder = submission_dir(out, sub.key)
        record = _graded(sub, options, digest, feedback, server, folder)
    except NotebookError as exc:
        record = _unscored(sub, options, "ungradeable", str(exc), digest)
    except GradingError as exc:
        record = _unscored(sub, options, "error", str(exc), digest)
    except Exception as exc:  # a grader bug must not cost the rest of the class
        message = (
            f"the grader failed on this notebook ({type(exc).__name__}: {exc}); this is not "
            "the student's doing: run `autograde grade` again, and report it if it repeats"
        )
        record = _unscored(sub, options, "error", message, digest)
    return save(out, sub.key, record), False


def _digest(sub: Submission) -> str | None:
    if sub.notebook is None:
        return None
    try:
        return notebook_digest(sub.notebook)
    except (OSError, NotebookError):
        return None


def _crashed(
    sub: Submission, why: str, status: str = "error", *, out: Path, options: Options
) -> Record:
    message = (
        f"the grading process crashed on this notebook ({why}); a person should look: "
        "run `autograde grade` again, and report it if it repeats"
    )
    return save(out, sub.key, _unscored(sub, options, status, message, _digest(sub)))


def _stamped(out: Path, sub: Submission, record: Record) -> Record:
    """`record` with when `sub` was handed in, saved again if that is news to it."""
    when = handed_in(sub)
    at, source = (when.at.isoformat(), when.source) if when else (None, None)
    if (record.submitted_at, record.time_source) == (at, source):
        return record
    return save(out, sub.key, replace(record, submitted_at=at, time_source=source))


def _same(a: Record, b: Record) -> bool:
    return replace(a, signature=None) == replace(b, signature=None)


def _refresh_feedback(folder: Path, record: Record) -> None:
    """The gradebook block of the record's feedback pages, as the course's files make it."""
    from .feedback_gradebook import with_gradebook_block

    for name, as_html in (("feedback.html", True), ("feedback.md", False)):
        path = folder / name
        if not path.is_file() or path.is_symlink():
            continue
        text = path.read_text(encoding="utf-8")
        new = with_gradebook_block(text, record, as_html=as_html)
        if new != text:
            write_text_atomic(path, new)


def _write_class_files(
    out: Path, records: tuple[Record, ...], course: Course | None, *, partial: bool = False
) -> tuple[Record, ...]:
    """grades.csv and summary.md from `records` and the course's files; every record
    those files change saved again (and its feedback pages told). The records, changed,
    in the order given (without the roster's missing students)."""
    out.mkdir(parents=True, exist_ok=True)
    final = class_records(records, course, partial=partial)
    saved = []
    for before, after in zip(records, final, strict=False):  # the missing come last
        if after.key and not _same(before, after):
            after = save(out, after.key, after)
        if after.key and after.feedback:
            _refresh_feedback(submission_dir(out, after.key), after)
        saved.append(after)
    everyone = (*saved, *(r for r in final[len(records) :] if r.status == MISSING))
    write_grades_csv(everyone, out / "grades.csv", course)
    write_text_atomic(out / "summary.md", summary_markdown(everyone, course))
    return tuple(saved)


def grade_submissions(
    paths: list[Path],
    out: Path,
    *,
    options: Options | None = None,
    workers: int = 1,
    progress: Callable[[Step], None] | Literal[False] | None = None,
    shard: tuple[int, int] | None = None,
    feedback: bool = True,
    course: Course | None = None,
) -> BatchSummary:
    """Grade everything under `paths` into `out`; see the module's docstring. With
    `shard=(k, n)`, only the k-th of n stable parts of the class (see `in_shard`).
    `progress` (None or False: nobody) hears of each submission as it is recorded.
    `course`: the roster, overrides and late policy; an override naming a student who
    is neither on the roster nor among the submissions is a CourseFileError before
    anything is graded."""
    options = options or Options()
    report = progress or (lambda step: None)
    subs = find_submissions(paths)
    if course is not None and course.overrides:
        known = {s.student for s in subs}  # the whole class, whichever part is graded here
        if course.roster is not None:
            known |= {s.student for s in course.roster.students}
        check_students(course.overrides, known)
    if shard is not None:
        subs = [s for s in subs if in_shard(s.key, *shard)]
    if not subs:
        return BatchSummary(out, (), 0)
    out.mkdir(parents=True, exist_ok=True)
    records: dict[str, Record] = {}
    skipped = 0
    started = time.perf_counter()
    twins: dict[str, list[Submission]] = {}  # representative's key -> same bytes

    def done(sub: Submission, record: Record, was_skipped: bool) -> None:
        nonlocal skipped
        records[sub.key] = record
        skipped += was_skipped
        report(Step(len(subs), sub, record, was_skipped))
        for twin in twins.pop(sub.key, []):
            if record.status == "error":  # the grader failed, not the bytes: try again
                done(twin, *grade_one(twin, out, options, feedback))
            else:
                done(twin, twin_record(record, sub, twin, out), False)

    report(Step(len(subs)))
    todo: list[Submission] = []
    first_with: dict[str, Submission] = {}  # digest -> the first submission with those bytes
    for sub in subs:  # in this process: no worker needs to start to skip
        digest = _digest(sub)
        previous = None if digest is None else reusable(out, sub.key, digest, options)
        if previous is not None:
            done(sub, previous, True)
            continue
        # Grading is a function of the bytes (and the options): identical notebooks,
        # like untouched or shared ones, are graded once and recorded for each.
        if digest is not None and digest in first_with:
            twins.setdefault(first_with[digest].key, []).append(sub)
            continue
        if digest is not None:
            first_with[digest] = sub
        todo.append(sub)
    workers = max(1, min(workers, len(todo)))
    inprocess = which_engine(options) == INPROCESS
    wanted = (inprocess or options.fork_kernels) and bool(todo)
    with kernel_server(wanted, threads_for(workers), kernels=not inprocess) as lease:
        task = partial(grade_one, out=out, options=options, feedback=feedback,
                       server=lease.server)  # fmt: skip
        crashed = partial(_crashed, out=out, options=options)
        if workers == 1:
            lease.wait()
            for sub in todo:
                lease.restart()
                done(sub, *task(sub))
        else:
            broken = run_pool(task, todo, workers, done, crashed, lease.restart)
            # A dead worker takes the pool down with it. Re-grade those submissions
            # one per pool, so the one that kills its worker costs only itself.
            for sub in broken:
                if run_pool(task, [sub], 1, done, crashed, lease.restart):
                    why = "its worker process died twice"
                    done(sub, crashed(sub, why=why, status="review"), False)
    ordered = tuple(_stamped(out, s, records[s.key]) for s in subs if s.key in records)
    # Written here, after every kernel of the batch is gone (each died with its sandbox).
    ordered = _write_class_files(out, ordered, course, partial=shard is not None)
    return BatchSummary(out, ordered, skipped, time.perf_counter() - started)


def merge(dirs: list[Path], out: Path, course: Course | None = None) -> BatchSummary:
    """One class from the outputs of several `grade --shard` runs: every results.json (and
    feedback report) is gathered under `out`, and grades.csv and summary.md are written
    from all of them and the course's files (the whole class: the roster's missing
    students are found here). CourseFileError for an override of an unknown student."""
    records = merge_records(dirs, out)
    if course is not None and course.overrides:
        known = {r.student for r in records}
        if course.roster is not None:
            known |= {s.student for s in course.roster.students}
        check_students(course.overrides, known)
    return BatchSummary(out, _write_class_files(out, records, course), 0)
