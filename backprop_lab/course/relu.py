"""relu: its gradient, `relu_grad(inp, out)` and the `Relu` class. At 0 the maths allows
any slope in [0, 1]: the checks at exact zeros accept the whole range."""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

from .core import Case, Check, Exercise, Expected, Inputs, Maths, Protocol, Recipe

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["CLASS", "CLASS_CHECK", "EXERCISES", "GRAD", "MATHS"]


def _make(case: Case, gen: torch.Generator) -> Inputs:
    from . import lesson
    from .tensors import randn

    rows, cols = case.dims
    inp = randn(gen, case, rows, cols)
    if case.zeros:
        # Every third element exactly 0 (and one -0.0), so both conventions at the kink
        # are exercised on every row.
        inp.view(-1)[::3] = 0.0
        inp.view(-1)[1] = -0.0
    # `out` is relu(inp) itself, not a random tensor: a mask taken from `out > 0` is
    # as right as one from `inp > 0`.
    return {"inp": inp, "out": lesson.relu(inp), "out.g": randn(gen, case, rows, cols)}


def _oracle(inputs: Inputs) -> dict[str, Expected]:
    import torch

    from . import lesson
    from .tensors import grads

    g = inputs["out.g"].double()
    (grad,) = grads(lambda t: (lesson.relu(t["inp"]) * g).sum(), inputs, ["inp"]).values()
    zero = inputs["inp"] == 0
    # At inp == 0 any slope in [0, 1] is a subgradient: inp.g between 0 and out.g. The
    # value shown there is the lesson's slope 0 (autograd's clamp_min picks 1).
    low, high = torch.minimum(g, g * 0), torch.maximum(g, g * 0)
    value = torch.where(zero, g * 0, grad)
    return {"inp.g": Expected(value, free=zero if zero.any() else None, low=low, high=high)}


def _reference(ref: ModuleType, inputs: Inputs) -> dict[str, Tensor]:
    from .tensors import f64

    t: dict[str, Any] = f64(inputs)  # Any: the lesson's `.g`, which Tensor does not declare
    out = t["out"]
    out.g = t["out.g"]
    ref.relu_grad(t["inp"], out)
    return {"inp.g": t["inp"].g}


MATHS = Maths("relu", _make, _oracle, _reference, example=Case((4, 6)))
# relu_grad(inp, out) reads `out.g`, which the layer after relu set
GRAD = Protocol("relu_grad", MATHS, "{t}(inp, out)", "{t}",
                Recipe("function", ("inp", "out"), grads=("inp",),
                       set_g=(("out", "out.g"),)))  # fmt: skip
CLASS = Protocol("relu_class", MATHS, "{t}().backward()", "{t}.backward",
                 Recipe("layer", ("inp",), grads=("inp",), out_g="out.g"))  # fmt: skip

CASES = (Case((4, 5)), Case((1, 9)), Case((3, 7), "float64"))
ZERO_CASES = (Case((4, 6), zeros=True), Case((3, 3), "float64", zeros=True))

EXERCISES = (
    Exercise(
        "backprop",
        "relu_grad",
        "relu_grad",
        (
            Check("relu_grad sets inp.g", 1, "relu_grad", GRAD, ("inp.g",), CASES),
            Check("relu_grad at inputs exactly 0", 1, "relu_grad", GRAD, ("inp.g",), ZERO_CASES),
        ),
    ),
)
# graded in the class refactor's exercise (network.py)
CLASS_CHECK = Check("Relu().backward() sets inp.g", 1, "Relu", CLASS, ("inp.g",),
                    CASES + ZERO_CASES)  # fmt: skip
