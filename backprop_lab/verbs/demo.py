"""`autograde demo`: grade a small bundled class end to end, offline, to see what grading
a class does before grading a real one.

Three students hand in the backprop notebook: one with the reference's answers, one with
the same answers but the classic mistake of an `mse_grad` without the factor 2, and one
who changed nothing. They are written from the student notebook shipped in this package
(`released/`, the copy of `assignments/backprop/backprop.ipynb` the clean room runs) and
the `reference` package's code, into nbgrader's `submitted/` layout, then graded by
`autograde grade` itself (the same parser, options and batch), and the class table is
printed from the files that grading wrote.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from ..course import exercises_for, hand_written
from ..plan.cleanroom import released_notebook
from ..report.records import RESULTS, CheckRecord, Record, submission_dir

__all__ = [
    "ASSIGNMENT",
    "STUDENTS",
    "DemoUnavailable",
    "add_arguments",
    "cmd_demo",
    "lost_points",
    "main",
    "print_class",
    "run_demo",
    "student_notebook",
    "submission",
    "write_class",
]

ASSIGNMENT = "backprop"
STUDENTS = ("correct", "mse-grad-without-2", "untouched")
# The one mistake: the mse_grad body without its factor 2 (a gradient half the size).
MISTAKE = ("mse_grad", "2.0 * ", "")
_STUB = "# YOUR CODE HERE"


class DemoUnavailable(RuntimeError):
    """This install has no reference answers to write the demo's correct student from."""


def student_notebook() -> NotebookNode:
    """The notebook students are given, as shipped inside this package."""
    return released_notebook(ASSIGNMENT)


def _answers() -> dict[str, Callable]:
    """Each stub of the notebook (a function, or a class's method) and the reference code
    that answers it. The answers are the instructor's: the grader students install has no
    `reference`, and so no demo (DemoUnavailable)."""

    if hand_written() is None:
        raise DemoUnavailable(
            "autograde demo needs the instructor's install of backprop-lab (its `reference` "
            "package holds the answers the demo's correct student hands in). To check your "
            "own work: autograde check NOTEBOOK"
        )
    from backprop_lab import reference

    # every graded name of the assignment: a function is answered by the reference's
    # function of that name, a class (Relu, Lin, Mse, Model) by its backward
    answers: dict[str, Callable] = {}
    for exercise in exercises_for(ASSIGNMENT):
        for check in exercise.checks:
            answer = getattr(reference, check.target)
            if isinstance(answer, type):
                answers[f"{check.target}.backward"] = getattr(answer, "backward")  # noqa: B009
            else:
                answers[check.target] = answer
    return answers


def _body(fn: Callable) -> str:
    """The statements of `fn` (its docstring dropped, the comments above its first statement
    kept), unindented. The reference's classes call its functions through their module,
    `backprop.lin_grad(...)`; in the notebook those are top-level names."""
    source = textwrap.dedent(inspect.getsource(fn))
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.FunctionDef)
    statements = node.body[1:] if ast.get_docstring(node) else node.body
    lines = source.splitlines()
    start = statements[0].lineno - 1
    while lines[start - 1].strip().startswith("#"):
        start -= 1
    body = textwrap.dedent("\n".join(lines[start : node.end_lineno]))
    return body.replace("backprop.", "")


def _definition(tree: ast.Module, name: str) -> ast.FunctionDef | None:
    """The function `name`, or the method `Class.method`, defined at the top of `tree`."""
    owner, _, method = name.rpartition(".")
    for node in tree.body:
        if not owner and isinstance(node, ast.FunctionDef) and node.name == name:
            return node
        if owner and isinstance(node, ast.ClassDef) and node.name == owner:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == method:
                    return item
    return None


def _answer(nb: NotebookNode, name: str, body: str) -> None:
    """Replace the stub of `name` (its `# YOUR CODE HERE` and `raise NotImplementedError()`)
    with `body`, in place, as a student would type it."""
    for cell in nb.cells:
        if cell.cell_type != "code" or _STUB not in cell.source:
            continue
        node = _definition(ast.parse(cell.source), name)
        if node is None:
            continue
        stub = node.body[-1]
        lines = cell.source.splitlines()
        start = stub.lineno - 1
        if lines[start - 1].strip() == _STUB:
            start -= 1
        lines[start : stub.end_lineno] = textwrap.indent(body, " " * stub.col_offset).splitlines()
        cell.source = "\n".join(lines)
        return
    raise KeyError(f"the student notebook has no stub for {name}")


def submission(student: str) -> NotebookNode:
    """What `student` (one of STUDENTS) hands in."""
    nb = student_notebook()
    if student == "untouched":
        return nb
    for name, fn in _answers().items():
        body = _body(fn)
        target, wrong, right = MISTAKE
        if student == "mse-grad-without-2" and name == target:
            if wrong not in body:
                raise ValueError(f"the reference's {name} no longer holds {wrong!r}")
            body = body.replace(wrong, right)
        _answer(nb, name, body)
    return nb


def write_class(folder: Path) -> Path:
    """The class in nbgrader's layout, `folder/submitted/STUDENT/backprop/backprop.ipynb`;
    returns `folder/submitted`."""
    submitted = Path(folder) / "submitted"
    for student in STUDENTS:
        path = submitted / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(submission(student), path)
    return submitted


def _reason(check: CheckRecord) -> str:
    """Why a check failed, in a few words: the grader's hint, the function whose failure
    this one inherits, or the recognised mistake in words."""
    if check.feedback.startswith("Caused by "):
        return "caused by " + check.feedback.removeprefix("Caused by ").split(" (above)")[0]
    hints = [line for line in check.feedback.splitlines() if line.startswith("Hint: ")]
    if hints:
        return hints[0].removeprefix("Hint: ")
    if check.mistake:
        return check.mistake.replace("-", " ")
    return check.feedback.splitlines()[0]


def lost_points(record: Record) -> list[str]:
    """What a grading lost, one line per reason: the exercises it cost, with their points,
    then the reason (that of the exercise's first failed check)."""
    points: dict[str, int] = {}
    reasons: dict[str, str] = {}
    for check in record.checks:
        if check.score < check.max_score:
            points[check.exercise] = points.get(check.exercise, 0) + check.max_score - check.score
            reasons.setdefault(check.exercise, _reason(check))
    by_reason: dict[str, list[str]] = {}
    for exercise, reason in reasons.items():
        by_reason.setdefault(reason, []).append(f"{exercise} -{points[exercise]:g}")
    return [f"{', '.join(costs)}: {reason}" for reason, costs in by_reason.items()]


def print_class(graded: Path, console=None) -> None:
    """The class table, from the results.json files grading wrote, and where the reports are."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(highlight=False, markup=False)
    table = Table(title=f"The demo class: {ASSIGNMENT}", show_lines=True)
    for column in ("student", "score", "points lost, and why"):
        table.add_column(column, overflow="fold")
    for student in STUDENTS:
        record = Record.from_dict(json.loads(_results(graded, student).read_text("utf-8")))
        score = f"{record.score:g}/{record.max_score}"
        table.add_row(student, score, "\n".join(lost_points(record)) or "nothing")
    console.print(table)
    reports = submission_dir(graded, f"STUDENT/{ASSIGNMENT}") / "feedback.html"
    console.print(f"Feedback reports: {reports} (and .md)")
    console.print(f"The class: {graded / 'grades.csv'} and {graded / 'summary.md'}")


def _results(graded: Path, student: str) -> Path:
    return submission_dir(graded, f"{student}/{ASSIGNMENT}") / RESULTS


def run_demo(folder: Path | None = None) -> int:
    """Write the class under `folder` (a new temporary folder when None, left in place for
    its reports), grade it with `autograde grade`, run as a command of its own as a user
    types it, and print the table. Returns grade's exit code: 0 when every submission was
    graded (whatever it scored)."""
    _answers()  # DemoUnavailable before any folder is made, where there are no answers
    folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="autograde-demo-"))
    submitted = write_class(folder)
    graded = folder / "graded"
    print(f"Three submissions in {submitted}: {', '.join(STUDENTS)}.", flush=True)
    print(f"$ autograde grade {submitted} --out {graded}", flush=True)
    sys.stdout.flush()
    code = subprocess.call([sys.executable, "-m", "backprop_lab.verbs.cli", "grade",
                            str(submitted), "--out", str(graded), "--quiet"])  # fmt: skip
    if all(_results(graded, s).is_file() for s in STUDENTS):
        print_class(graded)
    return code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="folder for the class (DIR/submitted) and its grades (DIR/graded); "
        "default: a new temporary folder",
    )


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        return run_demo(Path(args.out) if args.out else None)
    except DemoUnavailable as exc:
        print(f"autograde: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backprop_lab.verbs.demo", description=__doc__)
    add_arguments(parser)
    return cmd_demo(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
