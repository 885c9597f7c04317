"""`autograde demo`: grade a small bundled class end to end, offline, to see what grading
a class does before grading a real one.

Three students hand in the backprop notebook: one with the reference's answers, one with
the same answers but the classic mistake of an `mse_grad` without the factor 2, and one
who changed nothing; the first hands in every other assignment too, so that the demo
grades one notebook of each. They are written from the student notebooks shipped in this
package (`released/`, the copies of `assignments/NAME/NAME.ipynb` the clean room runs) and
the reference's code (each stub answered by the reference's function or method of its
name), into nbgrader's `submitted/` layout, then graded by `autograde grade` itself (the
same parser, options and batch), and the class table is printed from the files that
grading wrote.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import re
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from ..course import ASSIGNMENTS, hand_written
from ..plan.cleanroom import released_notebook
from ..report.records import RESULTS, CheckRecord, Record, submission_dir

__all__ = [
    "ASSIGNMENT",
    "CLASS",
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

ASSIGNMENT = "backprop"  # the one every student hands in
STUDENTS = ("correct", "mse-grad-without-2", "untouched")
# what each student hands in: the correct student every assignment, in the course's order
CLASS: dict[str, tuple[str, ...]] = {
    "correct": ASSIGNMENTS, "mse-grad-without-2": (ASSIGNMENT,), "untouched": (ASSIGNMENT,),
}  # fmt: skip
# The one mistake: the mse_grad body without its factor 2 (a gradient half the size).
MISTAKE = ("mse_grad", "2.0 * ", "")
_STUB = "# YOUR CODE HERE"


class DemoUnavailable(RuntimeError):
    """This install has no reference answers to write the demo's correct student from."""


def student_notebook(assignment: str = ASSIGNMENT) -> NotebookNode:
    """The notebook students are given, as shipped inside this package."""
    return released_notebook(assignment)


def _stubs(nb: NotebookNode) -> list[tuple[str, str]]:
    """(answer cell, name) of each stub in `nb`: a top-level function or a class's method
    (`Relu.backward`) whose body raises NotImplementedError."""
    found = []
    for cell in nb.cells:
        if cell.cell_type != "code" or _STUB not in cell.source:
            continue
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        found += [(grade_id, name) for name, fn in _definitions(ast.parse(cell.source))
                  if "NotImplementedError" in ast.unparse(fn)]  # fmt: skip
    return found


def _definitions(tree: ast.Module) -> list[tuple[str, ast.FunctionDef]]:
    """The top-level functions of `tree`, and its classes' methods as `Class.method`."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found.append((node.name, node))
        elif isinstance(node, ast.ClassDef):
            found += [(f"{node.name}.{m.name}", m) for m in node.body
                      if isinstance(m, ast.FunctionDef)]  # fmt: skip
    return found


def _answers(assignment: str = ASSIGNMENT) -> dict[str, Callable]:
    """Each stub of the assignment's notebook (a function, or a class's method) and the
    reference code that answers it: the reference's function named for the stub's cell
    where there is one (matmul's rungs are each `matmul`, in cells `matmul_loops`...), else
    the one of the stub's own name. The answers are the instructor's: the grader students
    install has no `reference`, and so no demo (DemoUnavailable)."""

    if hand_written() is None:
        raise DemoUnavailable(
            "autograde demo needs the instructor's install of backprop-lab (its `reference` "
            "package holds the answers the demo's correct student hands in). To check your "
            "own work: autograde check NOTEBOOK"
        )
    from backprop_lab import reference

    answers: dict[str, Callable] = {}
    for cell, name in _stubs(student_notebook(assignment)):
        answer: Any = getattr(reference, cell, None) if "." not in name else None
        if not callable(answer) or isinstance(answer, type):
            answer = reference
            for part in name.split("."):
                answer = getattr(answer, part, None)
        if not callable(answer):
            raise KeyError(f"the reference has no answer for {assignment}'s stub {name}")
        answers[f"{cell}/{name}"] = answer
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
    # the reference's submodules by name, which a notebook has as top-level names
    body = re.sub(r"\b(backprop|training|matmul|modules)\.(?=[a-z_])", "", body)
    return "".join(_helper(fn, name) for name in _private_names(node, fn)) + body


def _private_names(node: ast.FunctionDef, fn: Callable) -> list[str]:
    """The reference module's private functions `fn` calls (matmul's `_shapes`), which
    the notebook does not have."""
    called = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id.startswith("_")}
    scope = getattr(fn, "__globals__", {})
    return sorted(n for n in called if inspect.isfunction(scope.get(n)))


def _helper(fn: Callable, name: str) -> str:
    """The private function `name` of `fn`'s module, as a nested definition: without its
    annotations (the notebook has no `Tensor` to evaluate them with)."""
    node = ast.parse(textwrap.dedent(inspect.getsource(fn.__globals__[name]))).body[0]
    assert isinstance(node, ast.FunctionDef)
    node.returns = None
    for arg in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs):
        arg.annotation = None
    return ast.unparse(node) + "\n"


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


def _answer(nb: NotebookNode, where: str, body: str) -> None:
    """Replace the stub `where` (`cell/name`: its `# YOUR CODE HERE` and `raise
    NotImplementedError()`) with `body`, in place, as a student would type it."""
    grade_id, _, name = where.partition("/")
    for cell in nb.cells:
        if cell.cell_type != "code" or _STUB not in cell.source:
            continue
        if cell.metadata.get("nbgrader", {}).get("grade_id") != grade_id:
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


def submission(student: str, assignment: str = ASSIGNMENT) -> NotebookNode:
    """What `student` (one of STUDENTS) hands in for `assignment`."""
    nb = student_notebook(assignment)
    if student == "untouched":
        return nb
    for where, fn in _answers(assignment).items():
        body = _body(fn)
        target, wrong, right = MISTAKE
        if student == "mse-grad-without-2" and where.split("/")[-1] == target:
            if wrong not in body:
                raise ValueError(f"the reference's {target} no longer holds {wrong!r}")
            body = body.replace(wrong, right)
        _answer(nb, where, body)
    return nb


def write_class(folder: Path) -> Path:
    """The class in nbgrader's layout, `folder/submitted/STUDENT/NAME/NAME.ipynb`; returns
    `folder/submitted`."""
    submitted = Path(folder) / "submitted"
    for student, assignments in CLASS.items():
        for assignment in assignments:
            path = submitted / student / assignment / f"{assignment}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(submission(student, assignment), path)
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
    table = Table(title="The demo class", show_lines=True)
    for column in ("student", "assignment", "score", "points lost, and why"):
        table.add_column(column, overflow="fold")
    for student, assignment in _handed_in():
        path = _results(graded, student, assignment)
        record = Record.from_dict(json.loads(path.read_text("utf-8")))
        score = f"{record.score:g}/{record.max_score}"
        table.add_row(student, assignment, score, "\n".join(lost_points(record)) or "nothing")
    console.print(table)
    reports = submission_dir(graded, "STUDENT/ASSIGNMENT") / "feedback.html"
    console.print(f"Feedback reports: {reports} (and .md)")
    console.print(f"The class: {graded / 'grades.csv'} and {graded / 'summary.md'}")


def _handed_in() -> list[tuple[str, str]]:
    """(student, assignment) of each submission, in the table's order."""
    return [(s, a) for s, assignments in CLASS.items() for a in assignments]


def _results(graded: Path, student: str, assignment: str = ASSIGNMENT) -> Path:
    return submission_dir(graded, f"{student}/{assignment}") / RESULTS


def run_demo(folder: Path | None = None) -> int:
    """Write the class under `folder` (a new temporary folder when None, left in place for
    its reports), grade it with `autograde grade`, run as a command of its own as a user
    types it, and print the table. Returns grade's exit code: 0 when every submission was
    graded (whatever it scored)."""
    for assignment in ASSIGNMENTS:  # DemoUnavailable before any folder is made
        _answers(assignment)
    folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="autograde-demo-"))
    submitted = write_class(folder)
    graded = folder / "graded"
    handed_in = _handed_in()
    print(f"{len(handed_in)} submissions in {submitted}: "
          + ", ".join(f"{s}/{a}" for s, a in handed_in) + ".", flush=True)  # fmt: skip
    print(f"$ autograde grade {submitted} --out {graded}", flush=True)
    sys.stdout.flush()
    code = subprocess.call([sys.executable, "-m", "backprop_lab.verbs.cli", "grade",
                            str(submitted), "--out", str(graded), "--quiet"])  # fmt: skip
    if all(_results(graded, s, a).is_file() for s, a in handed_in):
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
