"""cross-entropy: the loss for classification as lesson 13 builds it. `log_softmax` (first
from the definition, then stable through `logsumexp`), `logsumexp`, `nll(inp, targ)` by
indexing with integer labels, `cross_entropy`, and its gradient `cross_entropy_grad(inp,
targ)`, which sets `inp.g`. `inp` is (N, C): logits, or log-probabilities for `nll`;
`targ` is N integer labels, shaped (N,) or (N, 1)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .core import Case, Check, Exercise, Expected, Inputs, Maths, Protocol, Recipe

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["CROSS_ENTROPY", "EXERCISES", "GRAD", "LOGSUMEXP", "LOG_SOFTMAX", "NLL"]

# the variants a case may ask for (Case.variant)
LARGE = "logits of +-1000"  # exp overflows float32 (and float64) unless the max comes off
COLUMN = "labels shaped (N, 1)"


def _logits(case: Case, gen: torch.Generator) -> Inputs:
    import torch

    from .tensors import randn

    n, classes = case.dims
    # 1.5: a batch of one whose loss is near 0 (one confident right answer) leaves float32
    # rounding above the tolerance; at 3.0 one seed in 4,000 did
    scale = 1000.0 if case.variant == LARGE else 1.5
    targ = torch.randint(0, classes, (n,), generator=gen)
    return {
        "inp": randn(gen, case, n, classes) * scale,
        "targ": targ.reshape(-1, 1) if case.variant == COLUMN else targ,
    }


def _log_probabilities(case: Case, gen: torch.Generator) -> Inputs:
    from . import lesson

    t = _logits(case, gen)
    return {**t, "inp": lesson.log_softmax(t["inp"])}


def _values(f: Callable[[Inputs], Tensor]) -> Callable[[Inputs], dict[str, Expected]]:
    """An oracle of one returned value, in float64."""

    def oracle(inputs: Inputs) -> dict[str, Expected]:
        from .tensors import f64

        return {"return": Expected(f(f64(inputs)).detach())}

    return oracle


def _gradient(inputs: Inputs) -> dict[str, Expected]:
    from . import lesson
    from .tensors import expect, grads

    return expect(grads(lambda t: lesson.cross_entropy(t["inp"], t["targ"]), inputs, ["inp"]))


def _returns(name: str) -> Callable[[ModuleType, Inputs], dict[str, Tensor]]:
    def reference(ref: ModuleType, inputs: Inputs) -> dict[str, Tensor]:
        from .tensors import f64

        t = f64(inputs)
        args = (t["inp"], t["targ"]) if name in ("nll", "cross_entropy") else (t["inp"],)
        return {"return": getattr(ref, name)(*args)}

    return reference


def _reference_gradient(ref: ModuleType, inputs: Inputs) -> dict[str, Tensor]:
    from .tensors import f64

    t: dict[str, Any] = f64(inputs)  # Any: the lesson's `.g`, which Tensor does not declare
    ref.cross_entropy_grad(t["inp"], t["targ"])
    return {"inp.g": t["inp"].g}


def _lesson(name: str) -> Callable[[Inputs], Tensor]:
    def value(t: Inputs) -> Tensor:
        from . import lesson

        if name == "logsumexp":
            return t["inp"].logsumexp(-1)
        if name == "log_softmax":
            return lesson.log_softmax(t["inp"])
        loss: Callable[[Tensor, Tensor], Tensor] = getattr(lesson, name)
        return loss(t["inp"], t["targ"])

    return value


EXAMPLE = Case((6, 4))
LOG_SOFTMAX_MATHS = Maths("log_softmax", _logits, _values(_lesson("log_softmax")),
                          _returns("log_softmax"), example=EXAMPLE)  # fmt: skip
LOGSUMEXP_MATHS = Maths("logsumexp", _logits, _values(_lesson("logsumexp")),
                        _returns("logsumexp"), example=EXAMPLE)  # fmt: skip
NLL_MATHS = Maths("nll", _log_probabilities, _values(_lesson("nll")), _returns("nll"),
                  example=EXAMPLE)  # fmt: skip
CROSS_ENTROPY_MATHS = Maths("cross_entropy", _logits, _values(_lesson("cross_entropy")),
                            _returns("cross_entropy"), example=EXAMPLE)  # fmt: skip
GRAD_MATHS = Maths("cross_entropy_grad", _logits, _gradient, _reference_gradient,
                   example=EXAMPLE)  # fmt: skip

LOG_SOFTMAX = Protocol("log_softmax", LOG_SOFTMAX_MATHS, "{t}(x)", "{t}",
                       Recipe("function", ("inp",)))  # fmt: skip
LOGSUMEXP = Protocol("logsumexp", LOGSUMEXP_MATHS, "{t}(x)", "{t}", Recipe("function", ("inp",)))
NLL = Protocol("nll", NLL_MATHS, "{t}(inp, targ)", "{t}", Recipe("function", ("inp", "targ")))
CROSS_ENTROPY = Protocol("cross_entropy", CROSS_ENTROPY_MATHS, "{t}(x, targ)", "{t}",
                         Recipe("function", ("inp", "targ")))  # fmt: skip
GRAD = Protocol("cross_entropy_grad", GRAD_MATHS, "{t}(inp, targ)", "{t}",
                Recipe("function", ("inp", "targ"), grads=("inp",)))  # fmt: skip

# non-square, a batch of one, float64; the class count never equals the batch size, so a
# sum or a softmax over the wrong dimension has the wrong shape or the wrong values
CASES = (Case((6, 4)), Case((1, 10)), Case((64, 10)), Case((5, 3), "float64"))
STABLE = (Case((6, 4), variant=LARGE), Case((5, 3), "float64", variant=LARGE))
COLUMN_CASES = (Case((6, 4), variant=COLUMN), Case((1, 10), variant=COLUMN))


def _exercise(cell: str, checks: tuple[Check, ...], builds_on: tuple[str, ...] = ()) -> Exercise:
    return Exercise("training", cell, cell, checks, builds_on=builds_on)


EXERCISES = (
    _exercise("logsumexp", (
        Check("logsumexp returns one value per row", 1, "logsumexp", LOGSUMEXP, ("return",),
              CASES),
        Check("logsumexp is stable on logits of +-1000", 1, "logsumexp", LOGSUMEXP,
              ("return",), STABLE),
    )),
    _exercise("log_softmax", (
        Check("log_softmax returns log-probabilities", 1, "log_softmax", LOG_SOFTMAX,
              ("return",), CASES),
        Check("log_softmax is stable on logits of +-1000", 1, "log_softmax", LOG_SOFTMAX,
              ("return",), STABLE),
    ), builds_on=("logsumexp",)),
    _exercise("nll", (
        Check("nll of labels shaped (N,)", 1, "nll", NLL, ("return",), CASES),
        Check("nll of labels shaped (N, 1)", 1, "nll", NLL, ("return",), COLUMN_CASES),
    )),
    _exercise("cross_entropy", (
        Check("cross_entropy returns the loss", 1, "cross_entropy", CROSS_ENTROPY,
              ("return",), CASES + COLUMN_CASES),
        Check("cross_entropy is stable on logits of +-1000", 1, "cross_entropy",
              CROSS_ENTROPY, ("return",), STABLE),
    ), builds_on=("log_softmax", "nll")),
    _exercise("cross_entropy_grad", (
        Check("cross_entropy_grad sets inp.g", 1, "cross_entropy_grad", GRAD, ("inp.g",),
              tuple(c for c in CASES if c.dims[0] > 1) + COLUMN_CASES[:1]),
        Check("cross_entropy_grad sets inp.g on logits of +-1000 and a batch of 1", 1,
              "cross_entropy_grad", GRAD, ("inp.g",),
              STABLE + tuple(c for c in CASES if c.dims[0] == 1)),
    ), builds_on=("log_softmax",)),
)  # fmt: skip
