"""The one table of exercises: what is graded, how, and for how many points.

Everything else reads this table: the pipeline (which functions to call, on which inputs),
the comparison (which values), the score and every report, the pytest plugin (one test
per check), `autograde verify` and the tests that keep the notebooks' nbgrader points in
step with it. Adding an exercise is one `Exercise(...)` entry here; only one that calls
code in a new way also needs a `Protocol` record in `protocols.py` and its call recipe in
`kernel/recipes.py`.

Vocabulary:
- a *case* is one set of grader-made inputs (shapes, dtype, exact zeros or not);
- a *check* calls one function or class on its cases and compares some of the values it
  produces (`"return"`, `"inp.g"`, `"w1.g"`, `"loss"`...) with the reference; it passes
  when every value on every case matches, and is worth `points`;
- an *exercise* is one solution cell of a notebook (its nbgrader `grade_id`) and the
  checks that grade it; its points equal those of its nbgrader test cell.
"""

from __future__ import annotations

from dataclasses import dataclass

from .protocols import (
    FORWARD_AND_BACKWARD,
    LIN_CLASS,
    LIN_GRAD,
    MATMUL_CALL,
    MODEL_CLASS,
    MSE_CLASS,
    MSE_GRAD,
    RELU_CLASS,
    RELU_GRAD,
    Case,
    Protocol,
)

__all__ = [
    "ASSIGNMENTS",
    "EXERCISES",
    "Case",
    "Check",
    "Exercise",
    "exercises_for",
]


@dataclass(frozen=True)
class Check:
    """One graded behaviour: call `target` with `protocol` on each case and compare
    `values`. `advisory` checks are reported but worth nothing (points must be 0)."""

    name: str
    points: int
    target: str
    protocol: Protocol
    values: tuple[str, ...]
    cases: tuple[Case, ...]
    advisory: bool = False

    def __post_init__(self) -> None:
        if self.advisory and self.points:
            raise ValueError(f"advisory check {self.name!r} cannot be worth points")
        if not isinstance(self.protocol, Protocol):
            raise TypeError(f"check {self.name!r}: protocol must be a Protocol record")
        if not self.cases:
            raise ValueError(f"check {self.name!r} has no cases")


@dataclass(frozen=True)
class Exercise:
    """One solution cell (nbgrader `grade_id` = `cell`) and the checks that grade it."""

    assignment: str
    cell: str
    title: str
    checks: tuple[Check, ...]
    # exercises whose functions this one calls: when they fail, its failures are put
    # down to them ("caused by lin_grad, above") instead of to a mistake of its own
    builds_on: tuple[str, ...] = ()
    # what the exercise asks students to write for themselves: an answer that uses one of
    # these instead gets a 0-point note (shortcuts.py), its points as they are
    shortcuts: tuple[str, ...] = ()

    @property
    def points(self) -> int:
        return sum(c.points for c in self.checks)

    @property
    def test_cell(self) -> str:
        """The grade_id of the notebook's test cell for this exercise."""
        return f"{self.cell}_tests"


# -- the cases ----------------------------------------------------------------------------
# Shapes are non-square and differ from every tensor the notebooks define (the digits have
# 64 pixels, the notebooks 50 hidden units), so code that reads notebook globals instead of
# its arguments cannot pass. Batch 1, one input and one output appear, because some bugs
# (a missing squeeze, a (N, 1) - (N,) broadcast) only show at batch > 1 and others only at 1.

F64 = "float64"

MATMUL_SHAPES = (
    Case((5, 12, 10)),  # the lesson's 5 images, with fewer pixels
    Case((2, 4, 3)),
    Case((1, 6, 4)),  # one row
    Case((3, 5, 1)),  # one column
    Case((1, 1, 1)),
    Case((7, 3, 3)),
    Case((4, 6, 3), strided=True),  # `a.t()`, a slice: `.view` fails on them
)
MATMUL_FLOAT64 = (Case((3, 4, 2), F64),)

MSE_CASES = (Case((6,)), Case((1,)), Case((200,)), Case((5,), F64))
RELU_CASES = (Case((4, 5)), Case((1, 9)), Case((3, 7), F64))
RELU_ZERO_CASES = (Case((4, 6), zeros=True), Case((3, 3), F64, zeros=True))
LIN_CASES = (
    Case((8, 5, 3)),
    Case((1, 7, 3)),  # a batch of one
    Case((6, 4, 1)),  # one output, like the last layer
    Case((5, 1, 2), F64),  # one input
    Case((60, 20, 9)),
    Case((6, 5, 3), strided=True),
)
NETWORK_CASES = (Case((16, 12, 6)), Case((1, 9, 4)), Case((7, 5, 1)), Case((10, 6, 3), F64))

# -- the table ----------------------------------------------------------------------------


# The matmul ladder writes the product itself: PyTorch's own products skip the lesson.
MATMUL_SHORTCUTS = ("@", "matmul", "mm", "bmm", "einsum", "dot", "tensordot", "inner", "linear")


def _matmul_exercise(cell: str, title: str, points: int) -> Exercise:
    # The three rungs are graded the same way; the notebook redefines `matmul` for each,
    # and the pipeline picks the definition from the rung's own cell.
    return Exercise(
        "matmul",
        cell,
        title,
        (
            Check(
                "matmul(a, b) equals a @ b",
                points,
                "matmul",
                MATMUL_CALL,
                ("return",),
                MATMUL_SHAPES,
            ),
            # The lesson's own `torch.zeros(ar, bc)` returns float32 for float64 inputs:
            # worth saying, not worth points, so the course's code keeps full marks.
            Check(
                "float64 inputs give a float64 result",
                0,
                "matmul",
                MATMUL_CALL,
                ("return",),
                MATMUL_FLOAT64,
                advisory=True,
            ),
        ),
        shortcuts=MATMUL_SHORTCUTS,
    )


EXERCISES: tuple[Exercise, ...] = (
    _matmul_exercise("matmul_loops", "matmul with three loops", 3),
    _matmul_exercise("matmul_elementwise", "matmul with an elementwise inner loop", 2),
    _matmul_exercise("matmul_broadcast", "matmul with broadcasting", 5),
    Exercise(
        "backprop",
        "mse_grad",
        "mse_grad",
        (
            Check(
                "mse_grad sets inp.g, batch > 1",
                1,
                "mse_grad",
                MSE_GRAD,
                ("inp.g",),
                tuple(c for c in MSE_CASES if c.dims[0] > 1),
            ),
            Check(
                "mse_grad sets inp.g, batch of 1",
                1,
                "mse_grad",
                MSE_GRAD,
                ("inp.g",),
                tuple(c for c in MSE_CASES if c.dims[0] == 1),
            ),
        ),
    ),
    Exercise(
        "backprop",
        "relu_grad",
        "relu_grad",
        (
            Check("relu_grad sets inp.g", 1, "relu_grad", RELU_GRAD, ("inp.g",), RELU_CASES),
            Check(
                "relu_grad at inputs exactly 0",
                1,
                "relu_grad",
                RELU_GRAD,
                ("inp.g",),
                RELU_ZERO_CASES,
            ),
        ),
    ),
    Exercise(
        "backprop",
        "lin_grad",
        "lin_grad",
        (
            Check("lin_grad sets inp.g", 1, "lin_grad", LIN_GRAD, ("inp.g",), LIN_CASES),
            Check("lin_grad sets w.g", 1, "lin_grad", LIN_GRAD, ("w.g",), LIN_CASES),
            Check("lin_grad sets b.g", 1, "lin_grad", LIN_GRAD, ("b.g",), LIN_CASES),
        ),
    ),
    Exercise(
        "backprop",
        "forward_and_backward",
        "forward_and_backward",
        (
            Check(
                "forward_and_backward sets w2.g and b2.g",
                1,
                "forward_and_backward",
                FORWARD_AND_BACKWARD,
                ("w2.g", "b2.g"),
                NETWORK_CASES,
            ),
            Check(
                "forward_and_backward sets w1.g and b1.g",
                1,
                "forward_and_backward",
                FORWARD_AND_BACKWARD,
                ("w1.g", "b1.g"),
                NETWORK_CASES,
            ),
            Check(
                "forward_and_backward sets inp.g",
                1,
                "forward_and_backward",
                FORWARD_AND_BACKWARD,
                ("inp.g",),
                NETWORK_CASES,
            ),
        ),
        builds_on=("mse_grad", "relu_grad", "lin_grad"),
    ),
    Exercise(
        "backprop",
        "layer_classes",
        "the Relu, Lin and Mse classes",
        (
            Check(
                "Relu().backward() sets inp.g",
                1,
                "Relu",
                RELU_CLASS,
                ("inp.g",),
                RELU_CASES + RELU_ZERO_CASES,
            ),
            Check(
                "Lin(w, b).backward() sets inp.g, w.g, b.g",
                1,
                "Lin",
                LIN_CLASS,
                ("inp.g", "w.g", "b.g"),
                LIN_CASES,
            ),
            Check("Mse().backward() sets inp.g", 1, "Mse", MSE_CLASS, ("inp.g",), MSE_CASES),
        ),
    ),
    Exercise(
        "backprop",
        "model_class",
        "the Model class",
        (
            Check(
                "model.backward() sets every .g",
                1,
                "Model",
                MODEL_CLASS,
                ("inp.g", "w1.g", "b1.g", "w2.g", "b2.g"),
                NETWORK_CASES,
            ),
            Check(
                "model(x, targ) returns the loss",
                1,
                "Model",
                MODEL_CLASS,
                ("loss",),
                NETWORK_CASES,
            ),
        ),
        builds_on=("layer_classes",),
    ),
)

ASSIGNMENTS: tuple[str, ...] = tuple(dict.fromkeys(e.assignment for e in EXERCISES))


def exercises_for(assignment: str) -> tuple[Exercise, ...]:
    found = tuple(e for e in EXERCISES if e.assignment == assignment)
    if not found:
        raise KeyError(f"no assignment {assignment!r}; known: {', '.join(ASSIGNMENTS)}")
    return found
