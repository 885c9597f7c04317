"""The reference implementation equals torch autograd, function by function.

Every grade is measured against `reference`, so it is checked here against the one oracle
that does not share its author: autograd in float64. The properties live in
`reference_checks.py`; `test_reference_mutants.py` shows that each of them fails on the
mistakes it is meant to catch.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from reference_checks import (
    MATMUL_RUNGS,
    PROPERTIES,
    check_lin_grad_memory,
    clamp_relu,
    masked_relu,
    submodule,
)

from backprop_lab import reference

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason="no CUDA device; the same checks ran on cpu"
        ),
    ),
]


@pytest.fixture
def full_precision_matmul() -> Iterator[None]:
    # TF32 rounds CUDA float32 matmuls to about 1e-3 relative error, far outside the
    # tolerance; grading runs turn it off, so these do too. No effect on the CPU.
    old = torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    yield
    torch.backends.cuda.matmul.allow_tf32 = old[0]
    torch.set_float32_matmul_precision(old[1])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(PROPERTIES))
def test_reference_matches_autograd(name: str, device: str, full_precision_matmul: None) -> None:
    PROPERTIES[name](reference, device)()


def test_exports_are_the_functions_the_properties_check() -> None:
    # The properties look functions up in the submodules (so a monkeypatch reaches them);
    # the package's public names must be those very objects.
    backprop, modules, matmul = (submodule(reference, m) for m in ("backprop", "modules", "matmul"))
    for name in backprop.__all__:
        assert getattr(reference, name) is getattr(backprop, name), name
    for name in modules.__all__:
        assert getattr(reference, name) is getattr(modules, name), name
    for name in matmul.__all__:
        assert getattr(reference, name) is getattr(matmul, name), name
    assert reference.matmul is matmul.matmul_broadcast  # the lesson's answer


def test_ladder_lists_every_rung_in_lesson_order() -> None:
    matmul = submodule(reference, "matmul")
    assert tuple(reference.LADDER) == MATMUL_RUNGS
    for rung, fn in reference.LADDER.items():
        assert fn is getattr(matmul, f"matmul_{rung}"), rung


def test_autograd_of_clamp_min_takes_slope_one_at_zero() -> None:
    # Why the gradient oracle is `masked_relu` and not the lesson's clamp_min: at exactly 0
    # autograd picks slope 1 for clamp_min, the reference picks 0, and both are valid
    # subgradients. Comparing against clamp_min would fail correct code wherever a relu
    # input is exactly 0 (a dead unit, a zero row of x), which student code meets often.
    x = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64, requires_grad=True)
    clamp_relu(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0]
    x.grad = None
    masked_relu(x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0]


def test_reference_relu_grad_takes_slope_zero_at_zero() -> None:
    # The convention, stated exactly (relu_subgradient only asks for a slope in [0, 1]).
    inp = torch.tensor([[-0.0, 0.0, 2.0, -3.0]])
    out = reference.relu(inp)
    out.g = torch.tensor([[5.0, -7.0, 11.0, 13.0]])
    reference.relu_grad(inp, out)
    assert inp.g.tolist() == [[0.0, 0.0, 11.0, 0.0]]


def test_lin_grad_weight_gradient_needs_no_outer_product_memory() -> None:
    check_lin_grad_memory(reference)
