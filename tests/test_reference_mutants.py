"""The test of the tests: the properties of `test_reference.py` fail on broken references.

Each mutant is one mistake students of the lesson make (as the grader's hints name them), patched
into `backprop_lab.reference`'s `backprop`, `matmul` or `modules` with monkeypatch.
`forward_and_backward` and the classes call the module-level functions, so a patched
`lin_grad` reaches them too. Every (mutant, property) pair below must raise the
AssertionError the property raises for a wrong result; a pair that passes means the
property is blind to that mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from reference_checks import (
    MUTANT_SETTINGS,
    PROPERTIES,
    REFERENCE_SETTINGS,
    check_lin_grad_memory,
    submodule,
)
from torch import Tensor

from backprop_lab import reference

# --- lin_grad -----------------------------------------------------------------------------


def lin_grad_w_transposed(inp: Tensor, out: Tensor, w: Tensor, b: Tensor) -> None:
    inp.g = out.g @ w.t()
    w.g = out.g.t() @ inp  # (n_out, n_in)
    b.g = out.g.sum(0)


def lin_grad_b_not_summed(inp: Tensor, out: Tensor, w: Tensor, b: Tensor) -> None:
    inp.g = out.g @ w.t()
    w.g = inp.t() @ out.g
    b.g = out.g


def lin_grad_b_averaged(inp: Tensor, out: Tensor, w: Tensor, b: Tensor) -> None:
    inp.g = out.g @ w.t()
    w.g = inp.t() @ out.g
    b.g = out.g.mean(0)


def lin_grad_inp_not_transposed(inp: Tensor, out: Tensor, w: Tensor, b: Tensor) -> None:
    inp.g = out.g @ w
    w.g = inp.t() @ out.g
    b.g = out.g.sum(0)


def lin_grad_outer_product(inp: Tensor, out: Tensor, w: Tensor, b: Tensor) -> None:
    inp.g = out.g @ w.t()
    w.g = (inp.unsqueeze(-1) * out.g.unsqueeze(1)).sum(0)
    b.g = out.g.sum(0)


# --- mse, mse_grad ------------------------------------------------------------------------


def mse_grad_without_2(inp: Tensor, targ: Tensor) -> None:
    inp.g = (inp[:, 0] - targ).unsqueeze(-1) / inp.shape[0]


def mse_grad_without_1_over_n(inp: Tensor, targ: Tensor) -> None:
    inp.g = 2.0 * (inp[:, 0] - targ).unsqueeze(-1)


def mse_grad_n_by_n(inp: Tensor, targ: Tensor) -> None:
    inp.g = 2 * (inp - targ) / inp.shape[0]  # (N, 1) - (N,) is (N, N)


def mse_grad_sign(inp: Tensor, targ: Tensor) -> None:
    inp.g = 2.0 * (targ - inp[:, 0]).unsqueeze(-1) / inp.shape[0]


def mse_grad_float64(inp: Tensor, targ: Tensor) -> None:
    inp.g = (2.0 * (inp[:, 0] - targ).unsqueeze(-1) / inp.shape[0]).double()


def mse_n_by_n(output: Tensor, targ: Tensor) -> Tensor:
    return (output - targ).pow(2).mean()


def mse_sum(output: Tensor, targ: Tensor) -> Tensor:
    return (output[:, 0] - targ).pow(2).sum()


# --- relu, relu_grad ----------------------------------------------------------------------


def relu_grad_mask_from_out_g(inp: Tensor, out: Tensor) -> None:
    inp.g = (out.g > 0).to(out.g.dtype) * out.g


def relu_grad_mask_only(inp: Tensor, out: Tensor) -> None:
    inp.g = (inp > 0).to(out.g.dtype)


def relu_grad_times_output(inp: Tensor, out: Tensor) -> None:
    inp.g = out * out.g  # the `l2 * l2.g` mistake


def relu_grad_slope_minus_one_at_zero(inp: Tensor, out: Tensor) -> None:
    # -1 is not a subgradient of relu at 0 (those are [0, 1]).
    inp.g = torch.where(inp == 0, -out.g, (inp > 0).to(out.g.dtype) * out.g)


def relu_grad_slope_one_at_zero(inp: Tensor, out: Tensor) -> None:
    # Not a mistake: slope 1 at 0 (autograd's choice for clamp_min) is a valid subgradient.
    inp.g = (inp >= 0).to(out.g.dtype) * out.g


def relu_in_place(x: Tensor) -> Tensor:
    return x.clamp_min_(0.0)


def lin_on_meta_device(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    # Stands in for "a result on another device" where no GPU is at hand.
    return (x @ w + b).to("meta")


# --- forward_and_backward, classes -------------------------------------------------------


def forward_and_backward_wrong_order(
    inp: Tensor, targ: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor
) -> Tensor:
    bp = submodule(reference, "backprop")
    l1 = bp.lin(inp, w1, b1)
    l2 = bp.relu(l1)
    out = bp.lin(l2, w2, b2)
    loss = bp.mse(out, targ)
    bp.mse_grad(out, targ)
    bp.relu_grad(l1, l2)  # l2.g is not there yet: lin_grad of layer 2 comes first
    bp.lin_grad(l2, out, w2, b2)
    bp.lin_grad(inp, l1, w1, b1)
    return loss


def model_backward_in_forward_order(self: Any) -> None:
    self.loss.backward()
    for layer in self.layers:
        layer.backward()


def relu_backward_mask_from_output_ge(self: Any) -> None:
    # (out >= 0) is true everywhere for a relu's output: no mask at all.
    self.inp.g = (self.out >= 0).to(self.out.g.dtype) * self.out.g


# --- matmul -------------------------------------------------------------------------------


def empty_result_ar_by_ac(a: Tensor, b: Tensor, ar: int, bc: int) -> Tensor:
    return torch.zeros(ar, a.shape[1], dtype=a.dtype, device=a.device)  # right when square


def empty_result_default_dtype(a: Tensor, b: Tensor, ar: int, bc: int) -> Tensor:
    return torch.zeros(ar, bc)  # float32 on the CPU, whatever a and b are


def matmul_broadcast_a_i_none(a: Tensor, b: Tensor) -> Tensor:
    ar, bc = a.shape[0], b.shape[1]
    c = torch.zeros(ar, bc, dtype=a.dtype, device=a.device)
    for i in range(ar):
        c[i] = (a[i, None] * b).sum(dim=0)  # (1, ac) * (ac, bc), not (ac, 1) * (ac, bc)
    return c


def matmul_einsum_transposed(a: Tensor, b: Tensor) -> Tensor:
    return torch.einsum("ik,kj->ji", a, b)


def matmul_torch_float32(a: Tensor, b: Tensor) -> Tensor:
    return (a @ b).float()


@dataclass(frozen=True)
class Mutant:
    id: str
    module: str  # submodule of reference
    attr: str  # "name" or "Class.method"
    replacement: Callable[..., Any]
    caught_by: tuple[str, ...]  # names in PROPERTIES
    match: str | None = None  # what the failure must say, where only one check can catch it


LIN_GRAD_USERS = ("lin_grad", "Lin", "forward_and_backward", "Model")
MSE_GRAD_USERS = ("mse_grad", "Mse", "forward_and_backward", "Model")
MSE_USERS = ("mse", "Mse", "forward_and_backward", "Model")
RELU_GRAD_USERS = ("relu_grad", "Relu", "forward_and_backward", "Model")
HAND_RUNGS = ("matmul_loops", "matmul_elementwise", "matmul_broadcast")

MUTANTS = [
    Mutant("w.g transposed", "backprop", "lin_grad", lin_grad_w_transposed, LIN_GRAD_USERS),
    Mutant(
        "b.g not summed",
        "backprop",
        "lin_grad",
        lin_grad_b_not_summed,
        LIN_GRAD_USERS,
        match="shape",
    ),
    Mutant("b.g averaged", "backprop", "lin_grad", lin_grad_b_averaged, LIN_GRAD_USERS),
    Mutant(
        "inp.g = out.g @ w", "backprop", "lin_grad", lin_grad_inp_not_transposed, LIN_GRAD_USERS
    ),
    Mutant("mse_grad without 2", "backprop", "mse_grad", mse_grad_without_2, MSE_GRAD_USERS),
    Mutant(
        "mse_grad without 1/N", "backprop", "mse_grad", mse_grad_without_1_over_n, MSE_GRAD_USERS
    ),
    Mutant("mse_grad (N,1)-(N,)", "backprop", "mse_grad", mse_grad_n_by_n, MSE_GRAD_USERS),
    Mutant("mse_grad sign", "backprop", "mse_grad", mse_grad_sign, MSE_GRAD_USERS),
    Mutant(
        "mse_grad upcasts", "backprop", "mse_grad", mse_grad_float64, ("mse_grad",), match="dtype"
    ),
    Mutant("mse (N,1)-(N,)", "backprop", "mse", mse_n_by_n, MSE_USERS),
    Mutant("mse sums", "backprop", "mse", mse_sum, MSE_USERS),
    Mutant(
        "relu_grad mask from out.g",
        "backprop",
        "relu_grad",
        relu_grad_mask_from_out_g,
        RELU_GRAD_USERS,
    ),
    Mutant("relu_grad drops out.g", "backprop", "relu_grad", relu_grad_mask_only, RELU_GRAD_USERS),
    Mutant(
        "relu_grad out * out.g",
        "backprop",
        "relu_grad",
        relu_grad_times_output,
        (*RELU_GRAD_USERS, "relu_grad_clamp_min", "forward_and_backward_clamp_min"),
    ),
    Mutant(
        "relu_grad slope -1 at 0",
        "backprop",
        "relu_grad",
        relu_grad_slope_minus_one_at_zero,
        ("relu_subgradient", "relu_grad", "forward_and_backward"),
    ),
    Mutant(
        "relu in place",
        "backprop",
        "relu",
        relu_in_place,
        ("relu", "Relu"),
        match="modified its input",
    ),
    Mutant(
        "lin on another device", "backprop", "lin", lin_on_meta_device, ("lin",), match="device"
    ),
    Mutant(
        "forward_and_backward wrong order",
        "backprop",
        "forward_and_backward",
        forward_and_backward_wrong_order,
        ("forward_and_backward",),
        match="raised AttributeError",
    ),
    Mutant(
        "Model.backward not reversed",
        "modules",
        "Model.backward",
        model_backward_in_forward_order,
        ("Model",),
        match="raised AttributeError",
    ),
    Mutant(
        "Relu.backward mask out >= 0",
        "modules",
        "Relu.backward",
        relu_backward_mask_from_output_ge,
        ("Relu", "Model"),
    ),
    Mutant("matmul zeros(ar, ac)", "matmul", "_empty_result", empty_result_ar_by_ac, HAND_RUNGS),
    Mutant(
        "matmul zeros(ar, bc) float32",
        "matmul",
        "_empty_result",
        empty_result_default_dtype,
        HAND_RUNGS,
        match="dtype",
    ),
    Mutant(
        "broadcast a[i, None]",
        "matmul",
        "matmul_broadcast",
        matmul_broadcast_a_i_none,
        ("matmul_broadcast",),
    ),
    Mutant("matmul = a[i, None] rung", "matmul", "matmul", matmul_broadcast_a_i_none, ("matmul",)),
    Mutant("einsum ->ji", "matmul", "matmul_einsum", matmul_einsum_transposed, ("matmul_einsum",)),
    Mutant(
        "torch rung .float()",
        "matmul",
        "matmul_torch",
        matmul_torch_float32,
        ("matmul_torch",),
        match="dtype",
    ),
]


def patch(monkeypatch: pytest.MonkeyPatch, mutant: Mutant) -> None:
    target: Any = submodule(reference, mutant.module)
    *owner, name = mutant.attr.split(".")
    for part in owner:
        target = getattr(target, part)
    assert hasattr(target, name), f"nothing called {mutant.attr} to mutate"
    monkeypatch.setattr(target, name, mutant.replacement)


@pytest.mark.parametrize(
    ("mutant", "prop"),
    [
        pytest.param(m, p, id=f"{m.id} | {p}")
        for m in MUTANTS
        for p in m.caught_by  # each property must catch it on its own
    ],
)
def test_property_catches_mutant(monkeypatch: pytest.MonkeyPatch, mutant: Mutant, prop: str):
    patch(monkeypatch, mutant)
    with pytest.raises(AssertionError, match=mutant.match):
        PROPERTIES[prop](reference, "cpu", MUTANT_SETTINGS)()


def test_outer_product_lin_grad_is_caught_by_the_memory_check(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(submodule(reference, "backprop"), "lin_grad", lin_grad_outer_product)
    with pytest.raises(AssertionError, match="outer product"):
        check_lin_grad_memory(reference)


def test_outer_product_lin_grad_is_numerically_right(monkeypatch: pytest.MonkeyPatch):
    # ... which is why only the memory check can catch it.
    monkeypatch.setattr(submodule(reference, "backprop"), "lin_grad", lin_grad_outer_product)
    PROPERTIES["lin_grad"](reference, "cpu", REFERENCE_SETTINGS)()


@pytest.mark.parametrize(
    "prop", ["relu_subgradient", "relu_grad_clamp_min", "forward_and_backward_clamp_min"]
)
def test_slope_one_at_zero_is_accepted_where_the_convention_is_free(
    monkeypatch: pytest.MonkeyPatch, prop: str
):
    # These properties hold for any valid subgradient; only relu_grad, Relu,
    # forward_and_backward and Model pin the reference's own choice (slope 0).
    monkeypatch.setattr(submodule(reference, "backprop"), "relu_grad", relu_grad_slope_one_at_zero)
    PROPERTIES[prop](reference, "cpu", REFERENCE_SETTINGS)()


def test_every_property_catches_some_mutant():
    caught = {p for m in MUTANTS for p in m.caught_by}
    assert set(PROPERTIES) <= caught, set(PROPERTIES) - caught
