"""The course: what is graded, how, and for how many points, built from its families.

A *family* is one module per layer of the lesson (micrograd's habit): its maths (the
inputs a case draws, the oracle by autograd, the cross-check against the hand-written
`reference`), its protocols (how student code is called, each with the `Recipe` the
kernel calls it by), its cases, and the exercises and checks that grade it:
`matmul`, `mse`, `relu`, `lin`, and `network` (forward_and_backward, the class refactor,
Model). This module joins them into the one table everything else reads: the pipeline
(which functions to call, on which inputs), the comparison (which values), the score and
every report, the pytest plugin (one test per check), `autograde verify` and the tests
that keep the notebooks' nbgrader points in step with it.

The table itself is joined in `table.py`. Adding an exercise is a family module (or an
entry in one) plus its notebook cells; a new family is also one line in `FAMILIES` there.
No torch here, nor in the families' import: the CLI reads the table before it needs torch.
"""

from __future__ import annotations

from .core import Case, Check, Exercise, Expected, GraderBug, Inputs, Maths, Protocol, Recipe
from .oracle import expected_values, hand_written, make_inputs
from .table import (
    ASSIGNMENTS,
    EXERCISES,
    FAMILIES,
    LIN,
    MATHS,
    MATMUL,
    MSE,
    NETWORK,
    PROTOCOLS,
    RELU,
    exercises_for,
    get,
)

__all__ = [
    "ASSIGNMENTS",
    "EXERCISES",
    "FAMILIES",
    "LIN",
    "MATHS",
    "MATMUL",
    "MSE",
    "NETWORK",
    "PROTOCOLS",
    "RELU",
    "Case",
    "Check",
    "Exercise",
    "Expected",
    "GraderBug",
    "Inputs",
    "Maths",
    "Protocol",
    "Recipe",
    "exercises_for",
    "expected_values",
    "get",
    "hand_written",
    "make_inputs",
]
