"""mse: the mean squared error's gradient, `mse_grad(inp, targ)` and the `Mse` class.
`inp` is the model's (N, 1) output and `targ` (N,): the lesson's shapes, where a missing
`[:, 0]` broadcasts to (N, N)."""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

from .core import Case, Check, Exercise, Expected, Inputs, Maths, Protocol, Recipe

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["CLASS", "CLASS_CHECK", "EXERCISES", "GRAD", "MATHS"]


def _make(case: Case, gen: torch.Generator) -> Inputs:
    from .tensors import randn

    (n,) = case.dims
    return {"inp": randn(gen, case, n, 1), "targ": randn(gen, case, n)}


def _oracle(inputs: Inputs) -> dict[str, Expected]:
    from . import lesson
    from .tensors import expect, grads

    return expect(grads(lambda t: lesson.mse(t["inp"], t["targ"]), inputs, ["inp"]))


def _reference(ref: ModuleType, inputs: Inputs) -> dict[str, Tensor]:
    from .tensors import f64

    t: dict[str, Any] = f64(inputs)  # Any: the lesson's `.g`, which Tensor does not declare
    ref.mse_grad(t["inp"], t["targ"])
    return {"inp.g": t["inp"].g}


MATHS = Maths("mse", _make, _oracle, _reference, example=Case((6,)))
GRAD = Protocol("mse_grad", MATHS, "{t}(inp, targ)", "{t}",
                Recipe("function", ("inp", "targ"), grads=("inp",)))  # fmt: skip
CLASS = Protocol("mse_class", MATHS, "{t}().backward()", "{t}.backward",
                 Recipe("layer", ("inp", "targ"), grads=("inp",)))  # fmt: skip

CASES = (Case((6,)), Case((1,)), Case((200,)), Case((5,), "float64"))

EXERCISES = (
    Exercise(
        "backprop",
        "mse_grad",
        "mse_grad",
        (
            Check(
                "mse_grad sets inp.g, batch > 1",
                1,
                "mse_grad",
                GRAD,
                ("inp.g",),
                tuple(c for c in CASES if c.dims[0] > 1),
            ),
            Check(
                "mse_grad sets inp.g, batch of 1",
                1,
                "mse_grad",
                GRAD,
                ("inp.g",),
                tuple(c for c in CASES if c.dims[0] == 1),
            ),
        ),
    ),
)
# graded in the class refactor's exercise (network.py)
CLASS_CHECK = Check("Mse().backward() sets inp.g", 1, "Mse", CLASS, ("inp.g",), CASES)
