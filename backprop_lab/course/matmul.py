"""matmul: the product written three times, each rung handing one more loop to torch
(three loops, an elementwise inner loop, broadcasting), graded against `torch.matmul` and
timed on the speed ladder."""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from .core import Case, Check, Exercise, Expected, Inputs, Maths, Protocol, Recipe

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["CALL", "EXERCISES", "MATHS"]


def _make(case: Case, gen: torch.Generator) -> Inputs:
    from .tensors import randn

    ar, ac, bc = case.dims
    return {"a": randn(gen, case, ar, ac), "b": randn(gen, case, ac, bc)}


def _oracle(inputs: Inputs) -> dict[str, Expected]:
    import torch

    from .tensors import f64

    t = f64(inputs)
    return {"return": Expected(torch.matmul(t["a"], t["b"]))}


def _reference(ref: ModuleType, inputs: Inputs) -> dict[str, Tensor]:
    from .tensors import f64

    t = f64(inputs)
    return {"return": ref.matmul(t["a"], t["b"])}


MATHS = Maths("matmul", _make, _oracle, _reference, example=Case((3, 4, 5)))
# Not called twice (a product keeps nothing), and timed: the speed ladder.
CALL = Protocol("matmul", MATHS, "{t}(a, b)", "{t}",
                Recipe("function", ("a", "b"), twice=False, timed=True))  # fmt: skip

# Shapes are non-square and differ from every tensor the notebook defines, so code that
# reads notebook globals instead of its arguments cannot pass.
SHAPES = (
    Case((5, 12, 10)),  # the lesson's 5 images, with fewer pixels
    Case((2, 4, 3)),
    Case((1, 6, 4)),  # one row
    Case((3, 5, 1)),  # one column
    Case((1, 1, 1)),
    Case((7, 3, 3)),
    Case((4, 6, 3), strided=True),  # `a.t()`, a slice: `.view` fails on them
)
FLOAT64 = (Case((3, 4, 2), "float64"),)

# The matmul ladder writes the product itself: PyTorch's own products skip the lesson.
SHORTCUTS = ("@", "matmul", "mm", "bmm", "einsum", "dot", "tensordot", "inner", "linear")


def _rung(cell: str, title: str, points: int) -> Exercise:
    # The three rungs are graded the same way; the notebook redefines `matmul` for each,
    # and the pipeline picks the definition from the rung's own cell.
    return Exercise(
        "matmul",
        cell,
        title,
        (
            Check("matmul(a, b) equals a @ b", points, "matmul", CALL, ("return",), SHAPES),
            # The lesson's own `torch.zeros(ar, bc)` returns float32 for float64 inputs:
            # worth saying, not worth points, so the course's code keeps full marks.
            Check(
                "float64 inputs give a float64 result",
                0,
                "matmul",
                CALL,
                ("return",),
                FLOAT64,
                advisory=True,
            ),
        ),
        shortcuts=SHORTCUTS,
    )


EXERCISES = (
    _rung("matmul_loops", "matmul with three loops", 3),
    _rung("matmul_elementwise", "matmul with an elementwise inner loop", 2),
    _rung("matmul_broadcast", "matmul with broadcasting", 5),
)
