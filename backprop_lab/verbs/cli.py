"""The `autograde` command: parse, call the pipeline, print. Nothing else lives here.

Exit codes, the same for every verb: 0 everything passed, 1 something failed (a check, a
submission, a sync), 2 nothing could be graded (bad notebook, bad option, no CUDA), with a
one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .. import __version__

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def _common(p: argparse.ArgumentParser) -> None:
    from ..options import SHARED_FLAGS

    for f in SHARED_FLAGS:
        p.add_argument(f.flag, **f.addoption_kwargs())


def _options(args: argparse.Namespace):
    from ..options import options_from

    try:
        return options_from(vars(args), fork_kernels=not getattr(args, "no_fork_server", False))
    except ValueError as exc:  # the seed: each verb reports it as a bad argument
        raise argparse.ArgumentTypeError(str(exc)) from None


def _console():
    from ..gradebook.console import stdout_console

    return stdout_console()


def _isolation(options) -> None:
    """Say on every run when student code cannot be isolated here; raises GradingError
    instead under --require-sandbox."""
    from ..options import check_sandbox

    warning = check_sandbox(options)
    if warning:
        print(f"autograde: warning: {warning} (--require-sandbox makes this an error)",
              file=sys.stderr)  # fmt: skip


def _fail(message: str) -> int:
    print(f"autograde: {message}", file=sys.stderr)
    return EXIT_ERROR


def _write_json(path: str, record: dict) -> None:
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(record, indent=2), encoding="utf-8")


def cmd_check(args: argparse.Namespace) -> int:
    from ..pipeline import GradingError, NotebookError, grade

    console = _console()
    bad = [r for r in args.report if Path(r).suffix.lower() not in (".html", ".htm", ".md")]
    if bad:
        return _fail(f"--report {bad[0]}: a report is a .html or a .md file")
    try:
        options = _options(args)
        _isolation(options)
        with console.status(f"Running {args.notebook} and grading it..."):
            result = grade(Path(args.notebook), options)
    except (NotebookError, GradingError, argparse.ArgumentTypeError) as exc:
        if args.json:  # a results.json says why, so nothing reading it sees a missing file
            from ..report.records import unscored

            status = "ungradeable" if isinstance(exc, NotebookError) else "error"
            _write_json(args.json, unscored(str(exc), status=status,
                                            grader_version=__version__).to_dict())  # fmt: skip
        return _fail(str(exc))
    # Imported after grading: it imports torch, which `grade` imports once the kernel runs.
    from ..report.formats import gradescope_results, print_table

    print_table(result, console)
    console.print(
        "This self-check used its own inputs; grading uses other inputs and the same checks.",
        style="dim",
    )
    if args.json:
        _write_json(args.json, gradescope_results(result))
    if args.report:
        from ..report.feedback import write_feedback

        write_feedback(result, *map(Path, args.report))
        for report in args.report:
            console.print(f"Feedback report: {report}", highlight=False)
    return EXIT_OK if not result.score.failed else EXIT_FAILED


def _course_flags(p: argparse.ArgumentParser) -> None:
    """The course's own files, the same for grade, merge and export (see gradebook.py)."""
    p.add_argument("--roster", default=None, metavar="CSV",
                   help="the class list: a `student` column (the name submissions go by), "
                        "optional name, email, lms_id, sis_id, sis_login, section, due "
                        "(an extension); everyone on it gets a row")  # fmt: skip
    p.add_argument("--overrides", default=None, metavar="CSV",
                   help="a person's grades: student, assignment, exercise (or total), "
                        "points, reason; applied on every run")  # fmt: skip
    p.add_argument(
        "--due",
        default=None,
        metavar="DATETIME",
        help="the due date, ISO 8601 with its offset: 2026-12-10T23:59+01:00",
    )
    p.add_argument("--late-policy", default=None, metavar="POLICY",
                   help="N%%/day off for each started day late, and/or cutoff=Nd (or Nh) "
                        "after which the score is 0: 10%%/day,cutoff=3d (default with "
                        "--due: lateness reported, no penalty)")  # fmt: skip


def _course(args: argparse.Namespace):
    """The Course the flags name; CourseFileError (a ValueError) saying what is wrong."""
    from ..gradebook.coursefiles import CourseFileError
    from ..gradebook.grades import Course
    from ..gradebook.latepolicy import parse_due, parse_late_policy
    from ..gradebook.overrides import read_overrides
    from ..gradebook.roster import read_roster

    roster = read_roster(Path(args.roster)) if args.roster else None
    overrides = read_overrides(Path(args.overrides)) if args.overrides else ()
    try:
        due = parse_due(args.due) if args.due else None
        policy = parse_late_policy(args.late_policy or "", due)
    except ValueError as exc:
        raise CourseFileError(f"--due/--late-policy: {exc}") from None
    extensions = roster is not None and any(s.due for s in roster.students)
    if args.late_policy and due is None and not extensions:
        raise CourseFileError("--late-policy needs --due (or a roster with a due column)")
    wanted = due is not None or args.late_policy or extensions
    return Course(roster, overrides, policy if wanted else None)


def cmd_grade(args: argparse.Namespace) -> int:
    from ..gradebook.batch import grade_submissions
    from ..options import GradingError

    try:
        course = _course(args)
        options = _options(args)
        _isolation(options)
        if options.device != "cpu":  # the check imports torch, which "cpu" can do without
            from ..pipeline import check_device

            check_device(options.device)
    except (GradingError, argparse.ArgumentTypeError, ValueError) as exc:
        return _fail(str(exc))
    paths = [Path(p) for p in args.paths]
    missing = [p for p in paths if not p.exists()]
    if missing:
        return _fail(f"{missing[0]}: no such file or folder")
    from ..gradebook.console import GradingProgress, no_submissions, print_summary, stderr_console
    from ..gradebook.coursefiles import CourseFileError

    console, out = stderr_console(), Path(args.out)
    try:
        with GradingProgress(console, show=not args.quiet) as bar:
            summary = grade_submissions(paths, out, options=options, workers=args.workers,
                                        progress=bar, shard=args.shard,
                                        feedback=not args.no_feedback,
                                        course=course)  # fmt: skip
    except KeyboardInterrupt:
        bar.interrupted(out)
        raise
    except CourseFileError as exc:  # the grading so far is kept: a re-run reuses it
        return _fail(str(exc))
    if not summary.graded:
        no_submissions(console, paths)
    else:
        print_summary(console, summary)
    return summary.exit_code


def _shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes K/N, like 2/8; got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"--shard {text}: K must be between 1 and N")
    return k, n


def cmd_merge(args: argparse.Namespace) -> int:
    from ..gradebook.batch import merge

    dirs = [Path(d) for d in args.dirs]
    missing = [d for d in dirs if not d.is_dir()]
    if missing:
        return _fail(f"{missing[0]}: no such folder")
    try:
        summary = merge(dirs, Path(args.out), _course(args))
    except ValueError as exc:
        return _fail(str(exc))
    print(f"{len(summary.records)} submissions merged into {args.out}/grades.csv")
    return summary.exit_code


def _titles(pairs: list[str]) -> dict[str, str]:
    titles = {}
    for pair in pairs:
        name, sep, header = pair.partition("=")
        if not sep or not name or not header:
            raise ValueError(f"--column {pair!r}: write ASSIGNMENT=HEADER")
        titles[name] = header
    return titles


def cmd_export(args: argparse.Namespace) -> int:
    from ..gradebook.exports import export_rows, write_export
    from ..gradebook.grades import class_records
    from ..report.records import read_records

    try:
        course = _course(args)
        on_disk = read_records(Path(args.outdir))
        records = class_records(on_disk, course)
        export = export_rows(args.to, records, course.roster, _titles(args.column))
    except ValueError as exc:
        return _fail(str(exc))
    # the records say what the last grade or merge applied: an export given other files
    # would send other grades than grades.csv shows
    differ = [r.student for r, d in zip(records, on_disk, strict=False)
              if (r.score, r.adjustments) != (d.score, d.adjustments)]  # fmt: skip
    if differ:
        print(f"autograde: warning: {len(differ)} grade(s) differ from the last grade/merge "
              f"(first: {differ[0]}): give export the same --overrides, --due and "
              "--late-policy", file=sys.stderr)  # fmt: skip
    write_export(export, Path(args.out))
    if export.left_out:
        print(f"autograde: warning: not on the roster, left out: {', '.join(export.left_out)}",
              file=sys.stderr)  # fmt: skip
    print(f"{len(export.rows) - 1 - (args.to == 'canvas')} rows written to {args.out} "
          f"({args.to})")  # fmt: skip
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from ..pipeline import GradingError, check_device
    from .verify import verify

    try:
        options = _options(args)
        _isolation(options)
        check_device(options.device)
    except (GradingError, argparse.ArgumentTypeError) as exc:
        return _fail(str(exc))
    problems = verify(Path(args.root), options, _console())
    return EXIT_OK if not problems else EXIT_FAILED


def cmd_ci_grade(args: argparse.Namespace) -> int:
    from ..pipeline import GradingError, check_device
    from .ci import ci_grade

    try:
        options = _options(args)
        _isolation(options)
        check_device(options.device)
        outcome = ci_grade(
            Path(args.base),
            Path(args.head),
            changed=args.changed,
            options=options,
            out=Path(args.out) if args.out else None,
        )
    except (GradingError, argparse.ArgumentTypeError) as exc:
        return _fail(str(exc))
    for line in outcome.annotations:  # the runner reads these from stdout
        print(line)
    summary_path = args.summary or os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        with open(summary_path, "a", encoding="utf-8") as f:
            f.write(outcome.summary)
    else:
        print(outcome.summary)
    return outcome.exit_code


def cmd_gradescope(args: argparse.Namespace) -> int:
    from ..course import ASSIGNMENTS
    from ..options import DEFAULT_SEED, GradingError
    from .bundle import build_bundles
    from .gradescope import read_seed_file
    from .upload import full_points

    if args.out.endswith(".zip"):
        return _fail(f"--out {args.out}: give a folder; each bundle in it is named "
                     "autograder-NAME.zip after the assignment it grades")  # fmt: skip
    assignments = (args.assignment,) if args.assignment else ASSIGNMENTS
    try:
        seed = read_seed_file(Path(args.seed_file))
        if seed == DEFAULT_SEED:
            print(f"autograde: warning: seed {seed} is the self-check's default: students "
                  "checking their notebooks see the grading inputs; choose another",
                  file=sys.stderr)  # fmt: skip
        paths = build_bundles(Path(args.root), Path(args.out), seed, assignments)
    except GradingError as exc:
        return _fail(str(exc))
    for assignment, path in zip(assignments, paths, strict=True):
        print(f"{path}: grades {assignment} ({full_points(assignment)} points); upload it to "
              f"the Gradescope assignment for {assignment}")  # fmt: skip
    print("On Gradescope: Configure Autograder, base image Ubuntu 24.04, the assignment's "
          "points as above; students upload their .ipynb file.")  # fmt: skip
    return EXIT_OK


def cmd_release(args: argparse.Namespace) -> int:
    from ..options import GradingError
    from .release import build_release, describe

    try:
        release = build_release(Path(args.root), Path(args.out))
    except GradingError as exc:
        return _fail(str(exc))
    for line in describe(release):
        print(line)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autograde",
        description="Grade backprop-lab notebooks: check yours, grade a class, verify the course.",
    )
    parser.add_argument("--version", action="version", version=f"autograde {__version__}")
    sub = parser.add_subparsers(
        dest="verb",
        required=True,
        metavar="{check,grade,merge,export,verify,ci-grade,gradescope,release,demo}",
    )

    from ..course import ASSIGNMENTS

    p = sub.add_parser("check", help="students: grade one notebook and show what to fix")
    p.add_argument("notebook", help="the .ipynb to check")
    p.add_argument("--json", default=None, help="also write Gradescope results.json here")
    p.add_argument("--report", action="append", default=[], metavar="PATH",
                   help="also write a feedback report with pictures: PATH.html "
                        "(self-contained) or PATH.md (pictures in PATH_files/); may be "
                        "given twice")  # fmt: skip
    _common(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("grade", help="instructors: grade notebooks or folders of submissions")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="notebooks, folders with one sub-folder per student, or nbgrader's "
                        "submitted/ folder")  # fmt: skip
    p.add_argument("--out", required=True, help="folder for results.json, grades.csv, summary.md")
    # One more than the CPUs: a grading spends part of its time waiting on its kernel
    # (start-up, messages), and the spare keeps every core busy (measured in
    # benchmarks/grade_throughput.py: 22.4 s with 2 workers, 19.0 s with 3, on 2 cores).
    p.add_argument("--workers", type=int, default=(os.cpu_count() or 1) + 1,
                   help="notebooks graded at once (default: the number of CPUs plus "
                        "one)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-feedback", action="store_true",
                   help="no feedback.html / feedback.md per submission (faster)")  # fmt: skip
    p.add_argument("--no-fork-server", action="store_true",
                   help="with --engine kernel: start every kernel from scratch instead of "
                        "forking it from a process that has imported torch (slower; each "
                        "kernel is a new process either way)")  # fmt: skip
    p.add_argument("--shard", type=_shard, default=None, metavar="K/N",
                   help="grade only the K-th of N stable parts of the class (merge them "
                        "with `merge`)")  # fmt: skip
    _course_flags(p)
    _common(p)
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("merge", help="instructors: combine the outputs of `grade --shard` runs")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="the --out folders of the shards")
    p.add_argument("--out", required=True, help="folder for the merged grades.csv, summary.md")
    _course_flags(p)
    p.set_defaults(func=cmd_merge)

    from ..gradebook.exports import FORMATS

    p = sub.add_parser("export", help="instructors: the grades as Canvas, Moodle or a plain "
                                      "CSV file imports them")  # fmt: skip
    p.add_argument("outdir", metavar="OUTDIR", help="the --out folder of grade or merge")
    p.add_argument("--to", required=True, choices=FORMATS, help="the file's format")
    p.add_argument("--out", required=True, metavar="FILE", help="the CSV file to write")
    p.add_argument("--column", action="append", default=[], metavar="ASSIGNMENT=HEADER",
                   help="the header of an assignment's column (default: its name), e.g. "
                        "Canvas's own 'Backprop (12345)' to update that assignment")  # fmt: skip
    _course_flags(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "ci-grade",
        help="CI: grade the notebooks a pull request changes with the base branch's grader",
    )
    p.add_argument("--base", required=True, help="checkout of the base branch (installed)")
    p.add_argument("--head", required=True, help="checkout of the pull request (not installed)")
    p.add_argument("--changed", nargs="*", default=None, metavar="FILE",
                   help="changed paths, relative to the repository (default: compare BASE "
                        "with HEAD)")  # fmt: skip
    p.add_argument("--out", default=None, help="folder for results.json files and summary.md")
    p.add_argument("--summary", default=None,
                   help="append the Markdown summary here (default: $GITHUB_STEP_SUMMARY, "
                        "else stdout)")  # fmt: skip
    _common(p)
    p.set_defaults(func=cmd_ci_grade)

    p = sub.add_parser(
        "verify",
        help="instructors, CI: solutions full marks, assignments zero, "
        "assignments in sync with solutions",
    )
    p.add_argument("--root", default=".", help="the course repository (default: .)")
    _common(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "gradescope",
        help="instructors: write autograder-NAME.zip, the bundle Gradescope's autograder "
        "takes, for each assignment",
    )
    p.add_argument("--seed-file", required=True, metavar="FILE",
                   help="a file holding the integer seed of the grader's inputs; keep it out "
                        "of the repository students see (the bundle carries it)")  # fmt: skip
    p.add_argument("--assignment", default=None, choices=sorted(ASSIGNMENTS),
                   help="write only this assignment's bundle (default: one per assignment; "
                        "a Gradescope assignment grades one course assignment)")  # fmt: skip
    p.add_argument("--out", default=".", metavar="DIR",
                   help="the folder for the bundles, autograder-NAME.zip (default: .)")  # fmt: skip
    p.add_argument("--root", default=".", help="the course repository (default: .)")
    p.set_defaults(func=cmd_gradescope)

    p = sub.add_parser(
        "release",
        help="instructors: write the course as students get it (notebooks, README, "
        "feedback workflow, the grader without answers), e.g. a Classroom template",
    )
    p.add_argument("--out", required=True, metavar="DIR",
                   help="a new (or empty) folder for the release")  # fmt: skip
    p.add_argument("--root", default=".", help="the course repository (default: .)")
    p.set_defaults(func=cmd_release)

    from .demo import add_arguments, cmd_demo

    p = sub.add_parser("demo", help="try it: grade a bundled class of three notebooks, offline")
    add_arguments(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
