"""`autograde verify`: the course is consistent. Solutions score full marks, untouched
assignments score zero, `assignments/` is what nbgrader generates from `solutions/`, and
the points in the notebooks' nbgrader test cells are the points in the exercise table."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console
from rich.text import Text

from ..course import ASSIGNMENTS, exercises_for
from ..pipeline import Options, grade
from ..plan.notebook import read_notebook
from .assignments import assignment_names, shipped_problems, sync_problems

__all__ = ["points_problems", "verify"]


def points_problems(solution: Path, assignment: str) -> list[str]:
    """Where the notebook's nbgrader points and the exercise table disagree."""
    nb = read_notebook(solution)
    points = {
        c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"].get("points")
        for c in nb.cells
        if c.get("metadata", {}).get("nbgrader", {}).get("grade")
    }
    problems = []
    for ex in exercises_for(assignment):
        if ex.test_cell not in points:
            problems.append(f"{solution}: no graded test cell {ex.test_cell!r}")
        elif points[ex.test_cell] != ex.points:
            problems.append(
                f"{solution}: {ex.test_cell} is worth {points[ex.test_cell]} in the "
                f"notebook but {ex.points} in backprop_lab/course/"
            )
    return problems


def _notebooks(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.ipynb"))


def verify(root: Path, options: Options, console: Console) -> list[str]:
    problems: list[str] = []
    names = assignment_names(root)
    unknown = sorted(set(names) - set(ASSIGNMENTS))
    problems += [f"solutions/{n} has no exercises in backprop_lab/course/" for n in unknown]
    for name in sorted(set(names) & set(ASSIGNMENTS)):
        for nb in _notebooks(root / "solutions" / name):
            problems += points_problems(nb, name)
            r = grade(nb, Options(**{**options.__dict__, "assignment": name}))
            ok = r.score.total == r.score.max_total
            console.print(
                f"{'ok ' if ok else 'BAD'} solution   {nb.relative_to(root)}: "
                f"{r.score.total}/{r.score.max_total} (want full marks)"
            )
            if not ok:
                problems += [f"{nb}: {c.name}: {c.message}" for c in r.score.failed]
        for nb in _notebooks(root / "assignments" / name):
            r = grade(nb, Options(**{**options.__dict__, "assignment": name}))
            ok = r.score.total == 0
            console.print(
                f"{'ok ' if ok else 'BAD'} assignment {nb.relative_to(root)}: "
                f"{r.score.total}/{r.score.max_total} (want 0)"
            )
            if not ok:
                problems += [
                    f"{nb}: {c.name} passes on the untouched stub"
                    for c in r.score.checks
                    if c.passed and not c.advisory
                ]
    with tempfile.TemporaryDirectory() as scratch:
        sync = sync_problems(root, Path(scratch))
    console.print(f"{'ok ' if not sync else 'BAD'} assignments/ in sync with solutions/")
    problems += sync
    shipped = shipped_problems(root)
    console.print(f"{'ok ' if not shipped else 'BAD'} the grader ships assignments/ as released")
    problems += shipped
    for p in problems:
        console.print(Text.assemble(("problem: ", "red"), p))
    console.print("verify: all good" if not problems else f"verify: {len(problems)} problem(s)")
    return problems
