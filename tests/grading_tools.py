"""Helpers for the grader's tests: points as the exercise table gives them, and what
Gradescope accepts."""

from __future__ import annotations

from backprop_lab.course import EXERCISES, Exercise, exercises_for

GRADESCOPE_TEST_FIELDS = {"name", "score", "max_score", "status", "output", "output_format",
                          "tags", "visibility"}  # fmt: skip
VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}
OUTPUT_FORMATS = {"text", "html", "simple_format", "md", "ansi"}


def validate_gradescope(data: dict, *, tests_required: bool = True) -> None:
    """The fields Gradescope reads, with their types and allowed values. A submission
    that could not be graded has no tests, only a score of 0 and the reason."""
    assert isinstance(data["score"], int | float)
    assert isinstance(data["execution_time"], int | float)
    assert data["output_format"] in OUTPUT_FORMATS
    assert data["visibility"] in VISIBILITIES and data["stdout_visibility"] in VISIBILITIES
    assert isinstance(data["tests"], list) and (data["tests"] or not tests_required)
    assert isinstance(data["output"], str) and data["output"]
    for t in data["tests"]:
        assert set(t) >= GRADESCOPE_TEST_FIELDS, set(t) ^ GRADESCOPE_TEST_FIELDS
        assert t["status"] in ("passed", "failed")
        assert t["output_format"] in OUTPUT_FORMATS and t["visibility"] in VISIBILITIES
        assert 0 <= t["score"] <= t["max_score"]
    assert data["score"] == sum(t["score"] for t in data["tests"])


def full_marks(assignment: str) -> int:
    return sum(e.points for e in exercises_for(assignment))


def exercise(cell: str) -> Exercise:
    """The exercise whose solution cell is `cell` (its nbgrader grade_id)."""
    found = [e for e in EXERCISES if e.cell == cell]
    assert len(found) == 1, f"no one exercise {cell!r} in the table: {found}"
    return found[0]


def points(assignment: str, checks: frozenset[str]) -> int:
    """What `checks` ("exercise cell: check name") are worth together."""
    return sum(
        c.points
        for e in exercises_for(assignment)
        for c in e.checks
        if f"{e.cell}: {c.name}" in checks
    )
