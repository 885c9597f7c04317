"""lin: the linear layer's gradients, `lin_grad(inp, out, w, b)` and the `Lin` class,
for inp (N, n_in), w (n_in, n_out) and b (n_out,)."""

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

    n, n_in, n_out = case.dims
    inp, w, b = randn(gen, case, n, n_in), randn(gen, case, n_in, n_out), randn(gen, case, n_out)
    return {"inp": inp, "w": w, "b": b, "out": lesson.lin(inp, w, b),
            "out.g": randn(gen, case, n, n_out)}  # fmt: skip


def _oracle(inputs: Inputs) -> dict[str, Expected]:
    from . import lesson
    from .tensors import expect, grads

    g = inputs["out.g"].double()
    return expect(grads(lambda t: (lesson.lin(t["inp"], t["w"], t["b"]) * g).sum(), inputs,
                        ["inp", "w", "b"]))  # fmt: skip


def _reference(ref: ModuleType, inputs: Inputs) -> dict[str, Tensor]:
    from .tensors import f64

    t: dict[str, Any] = f64(inputs)  # Any: the lesson's `.g`, which Tensor does not declare
    out = t["out"]
    out.g = t["out.g"]
    ref.lin_grad(t["inp"], out, t["w"], t["b"])
    return {f"{k}.g": t[k].g for k in ("inp", "w", "b")}


MATHS = Maths("lin", _make, _oracle, _reference, example=Case((8, 5, 3)))
GRAD = Protocol("lin_grad", MATHS, "{t}(inp, out, w, b)", "{t}",
                Recipe("function", ("inp", "out", "w", "b"), grads=("inp", "w", "b"),
                       set_g=(("out", "out.g"),)))  # fmt: skip
CLASS = Protocol("lin_class", MATHS, "{t}(w, b).backward()", "{t}.backward",
                 Recipe("layer", ("inp",), grads=("inp", "w", "b"), init=("w", "b"),
                        out_g="out.g", replaced=("w", "b")))  # fmt: skip

CASES = (
    Case((8, 5, 3)),
    Case((1, 7, 3)),  # a batch of one
    Case((6, 4, 1)),  # one output, like the last layer
    Case((5, 1, 2), "float64"),  # one input
    Case((60, 20, 9)),
    Case((6, 5, 3), strided=True),
)

EXERCISES = (
    Exercise(
        "backprop",
        "lin_grad",
        "lin_grad",
        tuple(
            Check(f"lin_grad sets {v}", 1, "lin_grad", GRAD, (v,), CASES)
            for v in ("inp.g", "w.g", "b.g")
        ),
    ),
)
# graded in the class refactor's exercise (network.py)
CLASS_CHECK = Check("Lin(w, b).backward() sets inp.g, w.g, b.g", 1, "Lin", CLASS,
                    ("inp.g", "w.g", "b.g"), CASES)  # fmt: skip
