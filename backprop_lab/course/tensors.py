"""The torch the families' maths shares: inputs drawn for a case, float64 copies, and
gradients by autograd. Imported only inside the functions that make inputs or answers, so
the exercise table stays free of torch."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .core import Case, Expected, Inputs

__all__ = ["expect", "f64", "grads", "randn"]


def randn(gen: torch.Generator, case: Case, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=gen, dtype=getattr(torch, case.dtype))


def f64(inputs: Inputs) -> Inputs:
    """Floating-point inputs in float64; integer ones (class labels, indices) as they are:
    a label is an index, never a number to round."""
    return {k: v.detach().double() if v.is_floating_point() else v.detach()
            for k, v in inputs.items()}  # fmt: skip


def grads(f: Callable[[Inputs], Tensor], inputs: Inputs, names: list[str]) -> dict[str, Tensor]:
    """d f / d each named input, by autograd, in float64."""
    leaves = {k: v.clone().requires_grad_(k in names) for k, v in f64(inputs).items()}
    torch.autograd.backward(f(leaves))
    return {f"{k}.g": leaves[k].grad for k in names}  # type: ignore[misc]


def expect(values: dict[str, Tensor]) -> dict[str, Expected]:
    return {k: Expected(v) for k, v in values.items()}
