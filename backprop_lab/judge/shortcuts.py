"""A 0-point note for an answer that uses what its exercise asks the student to write for
themselves (the matmul ladder answered with `@` or `einsum`): read from the answer cell's
code (ast), never a change of points. Which names count is the exercise table's
(`Exercise.shortcuts`)."""

from __future__ import annotations

import ast

from nbformat import NotebookNode

from ..course import Exercise
from ..plan.notebook import is_answer_cell, nbgrader_meta

__all__ = ["shortcut_notes"]


def _uses(source: str, names: tuple[str, ...]) -> tuple[str, int] | None:
    """The first of `names` the code uses, and its line: `@` as an operator, the others
    as a function or method called (`torch.einsum(...)`, `a.matmul(b)`)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    found = []
    for node in ast.walk(tree):
        if (
            "@" in names
            and isinstance(node, ast.BinOp | ast.AugAssign)
            and isinstance(node.op, ast.MatMult)
        ):
            found.append(("@", node.lineno))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in names:
                found.append((name, node.lineno))
    return min(found, key=lambda f: f[1]) if found else None


def shortcut_notes(nb: NotebookNode, exercises: tuple[Exercise, ...]) -> tuple[str, ...]:
    """One note per exercise whose answer cell uses one of its shortcuts."""
    cells = {nbgrader_meta(c)["grade_id"]: c for c in nb.cells if is_answer_cell(c)}
    notes = []
    for ex in exercises:
        cell = cells.get(ex.cell)
        used = _uses(cell.source, ex.shortcuts) if ex.shortcuts and cell is not None else None
        if used:
            what, line = used
            shown = "`@`" if what == "@" else f"`{what}(...)`"
            notes.append(
                f"Note (0 points): {ex.title} uses {shown} (line {line} of its cell), PyTorch's "
                "own product, where the exercise asks you to write it yourself; it keeps its "
                "points, but the lesson is in writing it"
            )
    return tuple(notes)
