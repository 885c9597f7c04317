"""Which notebooks of a Gradescope upload its autograder grades, and the sentences that say
so. A Gradescope assignment grades one course assignment (its bundle says which): a
notebook of another assignment is named and left out, never graded for points here, so
no upload can earn more than this assignment's points."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..course import exercises_for
from ..plan.notebook import NotebookError, detect_assignment, read_notebook

__all__ = ["Elsewhere", "Sorted", "also_uploaded", "full_points", "sort_upload", "wrong_assignment"]


@dataclass(frozen=True)
class Elsewhere:
    """An uploaded notebook that belongs to another assignment."""

    notebook: str  # as the student named it, relative to the upload
    assignment: str


@dataclass(frozen=True)
class Sorted:
    expected: str  # the assignment this Gradescope assignment grades
    graded: tuple[Path, ...]  # its notebooks, and those that cannot be told apart
    elsewhere: tuple[Elsewhere, ...]


def full_points(assignment: str) -> int:
    return sum(e.points for e in exercises_for(assignment))


def _which(notebook: Path) -> str | None:
    """The notebook's assignment; None when it cannot be read or told (grading it as the
    expected assignment then says what is wrong with it)."""
    try:
        return detect_assignment(read_notebook(notebook), notebook)
    except (NotebookError, OSError):
        return None


def sort_upload(notebooks: list[Path], folder: Path, expected: str) -> Sorted:
    graded, elsewhere = [], []
    for notebook in notebooks:
        which = _which(notebook)
        if which is None or which == expected:
            graded.append(notebook)
        else:
            elsewhere.append(Elsewhere(notebook.relative_to(folder).as_posix(), which))
    return Sorted(expected, tuple(graded), tuple(elsewhere))


def _named(elsewhere: tuple[Elsewhere, ...]) -> str:
    return ", ".join(f"{e.notebook} (the {e.assignment} assignment)" for e in elsewhere)


def wrong_assignment(upload: Sorted) -> str:
    """Why an upload with no notebook of the expected assignment got no points."""
    names = ", ".join(e.notebook for e in upload.elsewhere)
    others = sorted({e.assignment for e in upload.elsewhere})
    where = (
        f"the Gradescope assignment for {others[0]}"
        if len(others) == 1
        else "the Gradescope assignment for each one's own assignment"
    )
    return (
        f"Not graded: you uploaded {_named(upload.elsewhere)}, but this Gradescope "
        f"assignment grades the {upload.expected} assignment. Upload your "
        f"{upload.expected} notebook here, and {names} to {where}."
    )


def also_uploaded(upload: Sorted) -> str | None:
    """The sentence naming what else was uploaded and not graded here, if anything."""
    if not upload.elsewhere:
        return None
    return (
        f"Not graded here: {_named(upload.elsewhere)}; this Gradescope assignment grades "
        f"only the {upload.expected} assignment."
    )
