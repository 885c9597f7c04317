"""The maths behind each check, on the grader's side: the inputs a case asks for, and the
right answers.

The answers come from torch autograd on the lesson's forward functions (`lesson.py`: the
`lin`, `relu` and `mse` the notebook gives students) and from `torch.matmul`, in float64:
the lesson's own oracle, and no hand-written answer, so the grader a student installs
holds none, nor does Gradescope's. Where the instructor's hand-written `reference/` is
installed (the course checkout, where `autograde verify` runs), every graded value is also
computed by it and the two must agree, so a bug in either is a loud grader error, never a
wrong grade.

Each `Protocol` (protocols.py) names the `Maths` it is graded on; this module is the one
that imports torch, so the exercise table and the protocols stay cheap to import.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import torch
from torch import Tensor

from . import lesson
from .protocols import Case, Protocol, get

__all__ = [
    "LIN",
    "MATHS",
    "MATMUL",
    "MSE",
    "NETWORK",
    "RELU",
    "Expected",
    "GraderBug",
    "Inputs",
    "Maths",
    "expected_values",
    "hand_written",
    "make_inputs",
]


Inputs = dict[str, Tensor]


class GraderBug(RuntimeError):
    """The reference and autograd disagree: the grader, not the student, is wrong."""


@dataclass(frozen=True)
class Expected:
    """The right answer for one value. Where `free` is True the maths allows a range
    (a subgradient at a relu kink): any value in [`low`, `high`] there is right."""

    value: Tensor
    free: Tensor | None = None
    low: Tensor | None = None
    high: Tensor | None = None


@dataclass(frozen=True)
class Maths:
    """One layer's maths, whichever way the student's code is called: `make(case, gen)`
    the inputs; `oracle(inputs)` the right answers in float64, from autograd on the
    lesson's forward functions (what grades); `reference(ref, inputs)` the same from the
    hand-written `reference` package `ref`, the cross-check where it is installed."""

    name: str
    make: Callable[[Case, torch.Generator], Inputs]
    oracle: Callable[[Inputs], dict[str, Expected]]
    reference: Callable[[ModuleType, Inputs], dict[str, Tensor]]


@functools.cache
def hand_written() -> ModuleType | None:
    """The instructor's `reference` package (the lesson's hand-written answers) where it
    is installed; None in the grader students install, which grades without it."""
    try:
        return importlib.import_module("reference")
    except ModuleNotFoundError as exc:
        if exc.name != "reference":
            raise
        return None


def _dtype(case: Case) -> torch.dtype:
    return getattr(torch, case.dtype)


def _randn(gen: torch.Generator, case: Case, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=gen, dtype=_dtype(case))


def _f64(inputs: Inputs) -> Inputs:
    return {k: v.detach().double() for k, v in inputs.items()}


def _grads(f: Callable[..., Tensor], inputs: Inputs, names: list[str]) -> dict[str, Tensor]:
    """d f / d each named input, by autograd, in float64."""
    leaves = {k: v.clone().requires_grad_(k in names) for k, v in _f64(inputs).items()}
    f(leaves).backward()
    return {f"{k}.g": leaves[k].grad for k in names}


def _expect(values: dict[str, Tensor]) -> dict[str, Expected]:
    return {k: Expected(v) for k, v in values.items()}


# -- matmul -------------------------------------------------------------------------------


def _make_matmul(case: Case, gen: torch.Generator) -> Inputs:
    ar, ac, bc = case.dims
    return {"a": _randn(gen, case, ar, ac), "b": _randn(gen, case, ac, bc)}


def _oracle_matmul(inputs: Inputs) -> dict[str, Expected]:
    t = _f64(inputs)
    return {"return": Expected(torch.matmul(t["a"], t["b"]))}


def _ref_matmul(ref: ModuleType, inputs: Inputs) -> dict[str, Tensor]:
    t = _f64(inputs)
    return {"return": ref.matmul(t["a"], t["b"])}


# -- mse ----------------------------------------------------------------------------------


def _make_mse(case: Case, gen: torch.Generator) -> Inputs:
    (n,) = case.dims
    return {"inp": _randn(gen, case, n, 1), "targ": _randn(gen, case, n)}


def _oracle_mse(inputs: Inputs) -> dict[str, Expected]:
    return _expect(_grads(lambda t: lesson.mse(t["inp"], t["targ"]), inputs, ["inp"]))


def _ref_mse(ref: ModuleType, inputs: Inputs) -> dict[str, Tensor]:
    t = _f64(inputs)
    ref.mse_grad(t["inp"], t["targ"])
    return {"inp.g": t["inp"].g}


# -- relu ---------------------------------------------------------------------------------


def _make_relu(case: Case, gen: torch.Generator) -> Inputs:
    rows, cols = case.dims
    inp = _randn(gen, case, rows, cols)
    if case.zeros:
        # Every third element exactly 0 (and one -0.0), so both conventions at the kink
        # are exercised on every row.
        inp.view(-1)[::3] = 0.0
        inp.view(-1)[1] = -0.0
    # `out` is relu(inp) itself, not a random tensor: a mask taken from `out > 0` is
    # as right as one from `inp > 0`.
    return {"inp": inp, "out": lesson.relu(inp), "out.g": _randn(gen, case, rows, cols)}


def _oracle_relu(inputs: Inputs) -> dict[str, Expected]:
    g = inputs["out.g"].double()
    (grad,) = _grads(lambda t: (lesson.relu(t["inp"]) * g).sum(), inputs, ["inp"]).values()
    zero = inputs["inp"] == 0
    # At inp == 0 any slope in [0, 1] is a subgradient: inp.g between 0 and out.g. The
    # value shown there is the lesson's slope 0 (autograd's clamp_min picks 1).
    low, high = torch.minimum(g, g * 0), torch.maximum(g, g * 0)
    value = torch.where(zero, g * 0, grad)
    return {"inp.g": Expected(value, free=zero if zero.any() else None, low=low, high=high)}


def _ref_relu(ref: ModuleType, inputs: Inputs) -> dict[str, Tensor]:
    t = _f64(inputs)
    out = t["out"]
    out.g = t["out.g"]
    ref.relu_grad(t["inp"], out)
    return {"inp.g": t["inp"].g}


# -- lin ----------------------------------------------------------------------------------


def _make_lin(case: Case, gen: torch.Generator) -> Inputs:
    n, n_in, n_out = case.dims
    inp, w, b = _randn(gen, case, n, n_in), _randn(gen, case, n_in, n_out), _randn(gen, case, n_out)
    return {
        "inp": inp,
        "w": w,
        "b": b,
        "out": lesson.lin(inp, w, b),
        "out.g": _randn(gen, case, n, n_out),
    }


def _oracle_lin(inputs: Inputs) -> dict[str, Expected]:
    g = inputs["out.g"].double()
    grads = _grads(lambda t: (lesson.lin(t["inp"], t["w"], t["b"]) * g).sum(), inputs,
                   ["inp", "w", "b"])  # fmt: skip
    return _expect(grads)


def _ref_lin(ref: ModuleType, inputs: Inputs) -> dict[str, Tensor]:
    t = _f64(inputs)
    out = t["out"]
    out.g = t["out.g"]
    ref.lin_grad(t["inp"], out, t["w"], t["b"])
    return {f"{k}.g": t[k].g for k in ("inp", "w", "b")}


# -- the whole network --------------------------------------------------------------------

_PARAMS = ("w1", "b1", "w2", "b2")


def _make_network(case: Case, gen: torch.Generator) -> Inputs:
    n, n_in, nh = case.dims
    for _ in range(100):
        t = {
            "inp": _randn(gen, case, n, n_in),
            "targ": _randn(gen, case, n),
            "w1": _randn(gen, case, n_in, nh) * (2 / n_in) ** 0.5,
            "b1": _randn(gen, case, nh) * 0.1,
            "w2": _randn(gen, case, nh, 1) / nh**0.5,
            "b2": _randn(gen, case, 1) * 0.1,
        }
        # No hidden pre-activation may be exactly 0: there the gradient of w1, b1 and inp
        # is not unique, and this check is about the chain rule, not about the kink.
        if (lesson.lin(t["inp"], t["w1"], t["b1"]) != 0).all():
            return t
    raise GraderBug(f"could not draw network inputs without a relu kink for {case.name}")


def _oracle_network(inputs: Inputs) -> dict[str, Expected]:
    def loss(t: Inputs) -> Tensor:
        return lesson.network_loss(t["inp"], t["targ"], *(t[k] for k in _PARAMS))

    values = _grads(loss, inputs, ["inp", *_PARAMS])
    values["loss"] = loss(_f64(inputs)).detach()
    return _expect(values)


def _ref_network(ref: ModuleType, inputs: Inputs) -> dict[str, Tensor]:
    t = _f64(inputs)
    loss = ref.forward_and_backward(t["inp"], t["targ"], *(t[k] for k in _PARAMS))
    values = {f"{k}.g": t[k].g for k in ("inp", *_PARAMS)}
    values["loss"] = loss
    return values


MATMUL = Maths("matmul", _make_matmul, _oracle_matmul, _ref_matmul)
MSE = Maths("mse", _make_mse, _oracle_mse, _ref_mse)
RELU = Maths("relu", _make_relu, _oracle_relu, _ref_relu)
LIN = Maths("lin", _make_lin, _oracle_lin, _ref_lin)
NETWORK = Maths("network", _make_network, _oracle_network, _ref_network)

MATHS: dict[str, Maths] = {m.name: m for m in (MATMUL, MSE, RELU, LIN, NETWORK)}


def make_inputs(protocol: Protocol | str, case: Case, seed: int, salt: str) -> Inputs:
    """The inputs for one case. Each (seed, salt) gives its own stream, so adding a case
    or a check does not change the inputs of the others."""
    gen = torch.Generator().manual_seed(_stable_hash(f"{seed}/{salt}"))
    inputs = get(protocol).maths.make(case, gen)
    if case.strided:  # the same values, laid out as a transpose's view
        inputs = {k: v.t().contiguous().t() if v.dim() == 2 else v for k, v in inputs.items()}
    return inputs


def expected_values(
    protocol: Protocol | str, inputs: Inputs, values: tuple[str, ...]
) -> dict[str, Expected]:
    """The right answer for everything the protocol produces, from autograd. Where the
    hand-written reference is installed, `values` (those graded) are cross-checked against
    it where the maths has a single answer. The rest help recognise mistakes (right
    second-layer gradients point at the first layer)."""
    maths = get(protocol).maths
    want = maths.oracle(inputs)
    ref = hand_written()
    if ref is None:
        return want
    other = maths.reference(ref, inputs)
    for name in values:
        exp, hand = want[name], other[name]
        keep = ~exp.free if exp.free is not None else torch.ones_like(exp.value, dtype=torch.bool)
        if exp.value.shape != hand.shape:
            raise GraderBug(f"reference and autograd disagree on {name}'s shape "
                            f"({get(protocol).name})")  # fmt: skip
        a, b = hand[keep], exp.value[keep]
        scale = max(b.norm().item(), 1e-300)
        if (a - b).norm().item() / scale > 1e-9:
            raise GraderBug(f"reference and autograd disagree on {name} ({get(protocol).name})")
    return want


def _stable_hash(text: str) -> int:
    # Python's hash() is salted per process; grading must be repeatable.
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & (2**63 - 1)
