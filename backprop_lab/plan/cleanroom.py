"""The clean room: the notebook whose run decides the points. It is the course's released
notebook (shipped in this package, `released/`), byte for byte, with only the student's
answer cells (nbgrader solution cells, matched by `grade_id`) put in their places. Cells
the student added, and the given or locked cells they changed, do not run there: they
cannot change a verdict (a cell that rewrites the grader's messages, a later cell that
redefines a function, a helper defined below its use), and the points are those of the
notebook as nbgrader would run it, in order.

Where the student's notebook has such cells, `pipeline.grade` also runs it as it is (the
full run), for the feedback: the student still sees their own cells' errors. Where the full
run scores higher, the clean room's score stands and a person looks (`dependencies` says
which added cell an answer leans on)."""

from __future__ import annotations

import ast
import copy
import functools
import io
import tokenize
from dataclasses import dataclass
from importlib import resources

import nbformat
from nbformat import NotebookNode

from .notebook import (
    PLACE_KEY,
    cell_place,
    is_answer_cell,
    is_test_cell,
    mark_places,
    nbgrader_meta,
)

__all__ = [
    "UNMATCHED",
    "CleanRoom",
    "clean_room",
    "dependencies",
    "released_notebook",
    "room_review",
]


@functools.cache
def _released_text(assignment: str) -> str:
    folder = resources.files("backprop_lab").joinpath("released")
    return folder.joinpath(f"{assignment}.ipynb").read_text(encoding="utf-8")


def released_notebook(assignment: str) -> NotebookNode:
    """The notebook the course hands out for `assignment`, as shipped with the grader (a
    copy of assignments/NAME/NAME.ipynb; `autograde verify` keeps the two the same)."""
    return nbformat.reads(_released_text(assignment), as_version=4)


@functools.lru_cache(maxsize=1024)  # a class's given cells are mostly the same few sources
def _normal(source: str) -> str:
    """A cell's code, less what cannot change what it does: comments, blank lines and
    trailing spaces (a cell that does not tokenize keeps its comments)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
        source = tokenize.untokenize(
            (t.type, t.string) for t in tokens if t.type != tokenize.COMMENT
        )
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return "\n".join(line.rstrip() for line in source.splitlines() if line.strip())


@dataclass(frozen=True)
class CleanRoom:
    notebook: NotebookNode  # what runs for the points
    # the student's code cells that do not run in the clean room, as (where the student
    # finds the cell, its source): added cells and changed given cells
    extra: tuple[tuple[str, str], ...]
    # answer cells (grade_id) the student's notebook no longer has: their stubs run
    missing: tuple[str, ...]
    # the student's notebook has no nbgrader metadata at all: it is graded as it is
    unmatched: bool

    @property
    def needs_full_run(self) -> bool:
        """Whether the student's notebook runs differently from the clean room: only then
        is it run as it is too (an ordinary notebook costs one run)."""
        return bool(self.extra) or self.unmatched


def clean_room(student: NotebookNode, assignment: str) -> CleanRoom:
    """The clean-room notebook for `student`. The student's cells are marked with where
    the student sees them (notebook.mark_places, in place), and the clean room's cells keep
    the places of the student's cells they come from, so messages point into the
    student's own file."""
    mark_places(student)
    template = released_notebook(assignment)
    answers: dict[str, NotebookNode] = {}
    copies = []  # a second cell with an answer's grade_id: it runs only in the full run
    for cell in student.cells:
        if (
            is_answer_cell(cell)
            and answers.setdefault(nbgrader_meta(cell)["grade_id"], cell) is not cell
        ):
            copies.append(cell)
    code = [c for c in student.cells if c.get("cell_type") == "code" and c.source.strip()]
    if not answers and code:  # (no code at all: every answer is missing, and stubs run)
        return CleanRoom(student, tuple((_where(c), c.source) for c in code), (), unmatched=True)
    given = [c for c in student.cells if c.get("cell_type") == "code" and not is_answer_cell(c)
             and not is_test_cell(c)]  # fmt: skip
    # the template's given code cells, matched in order with the student's identical ones
    unmatched_given = list(given)
    cells, missing = [], []
    for cell in template.cells:
        cell = copy.deepcopy(cell)
        if is_answer_cell(cell):
            gid = nbgrader_meta(cell)["grade_id"]
            if gid in answers:
                cell.source = answers[gid].source
                if PLACE_KEY in answers[gid].metadata:
                    cell.metadata[PLACE_KEY] = answers[gid].metadata[PLACE_KEY]
            else:
                missing.append(gid)
        elif cell.get("cell_type") == "code" and not is_test_cell(cell):
            same = next((c for c in unmatched_given if c.source == cell.source), None) or next(
                (c for c in unmatched_given if _normal(c.source) == _normal(cell.source)), None
            )
            if same is not None:
                unmatched_given.remove(same)
                if PLACE_KEY in same.metadata:
                    cell.metadata[PLACE_KEY] = same.metadata[PLACE_KEY]
        cells.append(cell)
    nb = copy.deepcopy(template)
    nb.cells = cells
    # the student's notebook-level metadata (kernelspec, language) is theirs to lose: the
    # course's is what runs
    extra = tuple((_where(c), c.source) for c in [*unmatched_given, *copies] if c.source.strip())
    return CleanRoom(nb, extra, tuple(missing), unmatched=False)


def _where(cell: NotebookNode) -> str:
    place = cell.get("metadata", {}).get(PLACE_KEY) or {}
    return cell_place(place.get("position", 0), place.get("heading", ""), None)


def _names_defined(source: str) -> set[str]:
    """Names a cell binds at its top level (def, class, import, assignment)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        else:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    names.add(sub.id)
    return names


def _names_used(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def dependencies(room: CleanRoom, answer_source: str) -> list[tuple[str, str]]:
    """(name, where) for each name the answer uses that only a cell outside the clean room
    defines: what to move into the answer's own cell."""
    used = _names_used(answer_source)
    found = []
    for where, source in room.extra:
        for name in sorted(_names_defined(source) & used):
            found.append((name, where))
    return found


UNMATCHED = (
    "This notebook has lost the course's cell metadata (nbgrader's grade_id on each answer "
    "cell), so its answers could not be put into the course's own notebook: it was graded "
    "as it ran, the cells you added included, and a person will check the score. Write "
    "your answers in the cells of the notebook you were given."
)


def room_review(
    room: CleanRoom,
    exercises: tuple,
    clean: dict[str, tuple[int, int]],
    full: dict[str, tuple[int, int]],
) -> tuple[str, ...]:
    """Why a person should look (see pipeline.GradeResult.review): the notebook could not
    be put into the clean room, or it scores more as the student ran it than in the clean
    room (`clean` and `full`: exercise cell -> (points, max)), which counts. One sentence per
    exercise, saying what to move where."""
    if room.unmatched:
        return (UNMATCHED,)
    reasons, explained = [], set()
    answers = {
        nbgrader_meta(c)["grade_id"]: c.source for c in room.notebook.cells if is_answer_cell(c)
    }
    for ex in exercises:
        got, most = clean.get(ex.cell, (0, 0))
        better = full.get(ex.cell, (0, 0))[0]
        if better <= got:
            continue
        head = (
            f"{ex.title} scores {better}/{most} in your notebook as you ran it but {got}/{most} "
            "with only your answer cells in the course's notebook, which is what counts"
        )
        explained.add(ex.cell)
        causes = [c for c in ex.builds_on if c in explained]
        if causes:  # it calls an exercise explained above: one cause, said once
            reasons.append(f"{head}: caused by {' and '.join(causes)}, above.")
            continue
        if ex.cell in room.missing:
            reasons.append(
                f"{head}: its answer is not in the cell given for it (the cell `{ex.cell}` is "
                "gone); write it in that cell."
            )
            continue
        needs = dependencies(room, answers.get(ex.cell, ""))
        if needs:
            what = ", ".join(f"`{name}`, defined in {where}," for name, where in needs)
            reasons.append(
                f"{head}: it uses {what} a cell that is not an answer cell: move it into "
                f"{ex.cell}'s cell."
            )
        else:
            places = ", ".join(where for where, _ in room.extra[:5])
            reasons.append(
                f"{head}: it depends on a cell you added or changed ({places}): move what it "
                f"needs into {ex.cell}'s cell."
            )
    return tuple(reasons)
