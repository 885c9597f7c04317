"""What a submission did to the notebook it was given: locked and test cells edited,
deleted or duplicated. Reported, never scored: the grader runs its own checks, so an
edited test cell cannot change a grade, but an instructor wants to know.

The checksum is nbgrader's (`nbgrader.utils.compute_checksum`, recomputed here because
importing nbgrader costs two seconds per grading; a test keeps the two equal)."""

from __future__ import annotations

import hashlib
from collections import Counter

from nbformat import NotebookNode

from ..course import exercises_for

__all__ = ["checksum", "tampering"]


def _meta(cell: NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def checksum(cell: NotebookNode) -> str:
    """nbgrader's checksum of a cell: source, type, role, id and points."""
    meta = _meta(cell)
    grade, solution = bool(meta.get("grade", False)), bool(meta.get("solution", False))
    locked = False if solution else (True if grade else bool(meta.get("locked", False)))
    m = hashlib.md5()  # nbgrader's choice; an integrity mark, not a security boundary
    for part in (cell.source, cell.cell_type, str(meta.get("grade", False)),
                 str(meta.get("solution", False)), str(locked), meta["grade_id"]):  # fmt: skip
        m.update(str(part).encode("utf-8"))
    if grade:
        m.update(str(float(meta["points"])).encode("utf-8"))
    return m.hexdigest()


def tampering(nb: NotebookNode, assignment: str) -> tuple[str, ...]:
    """One line per locked or test cell that was edited, deleted or duplicated."""
    found = []
    ids = Counter(_meta(c).get("grade_id") for c in nb.cells if _meta(c).get("grade_id"))
    for gid, n in sorted(ids.items()):
        if n > 1:
            found.append(f"the cell `{gid}` appears {n} times (only one is the exercise's)")
    for cell in nb.cells:
        meta = _meta(cell)
        if "checksum" not in meta or "grade_id" not in meta or meta.get("solution"):
            continue
        try:
            same = checksum(cell) == meta["checksum"]
        except (KeyError, TypeError, ValueError):
            same = False
        if not same:
            found.append(f"the locked cell `{meta['grade_id']}` was edited")
    for ex in exercises_for(assignment):
        if ex.test_cell not in ids:
            found.append(f"the test cell `{ex.test_cell}` was deleted")
    return tuple(found)
