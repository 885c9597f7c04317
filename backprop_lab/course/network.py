"""The whole network, lin -> relu -> lin -> mse: `forward_and_backward(inp, targ)`, which
reads the weights w1, b1, w2, b2 as notebook globals, the way the lesson writes it; the
class refactor (`Relu`, `Lin`, `Mse`, graded by their own families' checks); and `Model`,
the layers composed."""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

from . import lin, mse, relu
from .core import Case, Check, Exercise, Expected, GraderBug, Inputs, Maths, Protocol, Recipe

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["EXERCISES", "FORWARD_AND_BACKWARD", "MATHS", "MODEL", "PARAMS"]

PARAMS = ("w1", "b1", "w2", "b2")


def _make(case: Case, gen: torch.Generator) -> Inputs:
    from . import lesson
    from .tensors import randn

    n, n_in, nh = case.dims
    for _ in range(100):
        t = {
            "inp": randn(gen, case, n, n_in),
            "targ": randn(gen, case, n),
            "w1": randn(gen, case, n_in, nh) * (2 / n_in) ** 0.5,
            "b1": randn(gen, case, nh) * 0.1,
            "w2": randn(gen, case, nh, 1) / nh**0.5,
            "b2": randn(gen, case, 1) * 0.1,
        }
        # No hidden pre-activation may be exactly 0: there the gradient of w1, b1 and inp
        # is not unique, and this check is about the chain rule, not about the kink.
        if (lesson.lin(t["inp"], t["w1"], t["b1"]) != 0).all():
            return t
    raise GraderBug(f"could not draw network inputs without a relu kink for {case.name}")


def _oracle(inputs: Inputs) -> dict[str, Expected]:
    from . import lesson
    from .tensors import expect, f64, grads

    def loss(t: Inputs) -> Tensor:
        return lesson.network_loss(t["inp"], t["targ"], *(t[k] for k in PARAMS))

    values = grads(loss, inputs, ["inp", *PARAMS])
    values["loss"] = loss(f64(inputs)).detach()
    return expect(values)


def _reference(ref: ModuleType, inputs: Inputs) -> dict[str, Tensor]:
    from .tensors import f64

    t: dict[str, Any] = f64(inputs)  # Any: the lesson's `.g`, which Tensor does not declare
    loss = ref.forward_and_backward(t["inp"], t["targ"], *(t[k] for k in PARAMS))
    values = {f"{k}.g": t[k].g for k in ("inp", *PARAMS)}
    values["loss"] = loss
    return values


MATHS = Maths("network", _make, _oracle, _reference, example=Case((8, 5, 4)))
FORWARD_AND_BACKWARD = Protocol(
    "forward_and_backward", MATHS, "{t}(inp, targ)", "{t}",
    Recipe("function", ("inp", "targ"), grads=("inp", *PARAMS), globals=PARAMS),
)  # fmt: skip
MODEL = Protocol(
    "model_class", MATHS, "{t}(w1, b1, w2, b2)", "{t}.backward",
    Recipe("layer", ("inp", "targ"), grads=("inp", *PARAMS), init=PARAMS, call_value="loss"),
)  # fmt: skip

CASES = (Case((16, 12, 6)), Case((1, 9, 4)), Case((7, 5, 1)), Case((10, 6, 3), "float64"))

EXERCISES = (
    Exercise(
        "backprop",
        "forward_and_backward",
        "forward_and_backward",
        tuple(
            Check(
                f"forward_and_backward sets {what}",
                1,
                "forward_and_backward",
                FORWARD_AND_BACKWARD,
                values,
                CASES,
            )
            for what, values in (
                ("w2.g and b2.g", ("w2.g", "b2.g")),
                ("w1.g and b1.g", ("w1.g", "b1.g")),
                ("inp.g", ("inp.g",)),
            )
        ),
        builds_on=("mse_grad", "relu_grad", "lin_grad"),
    ),
    Exercise(
        "backprop",
        "layer_classes",
        "the Relu, Lin and Mse classes",
        (relu.CLASS_CHECK, lin.CLASS_CHECK, mse.CLASS_CHECK),
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
                MODEL,
                ("inp.g", *(f"{k}.g" for k in PARAMS)),
                CASES,
            ),
            Check("model(x, targ) returns the loss", 1, "Model", MODEL, ("loss",), CASES),
        ),
        builds_on=("layer_classes",),
    ),
)
