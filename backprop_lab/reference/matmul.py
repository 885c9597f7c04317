"""Matrix multiply from scratch: the lesson's ladder, slowest rung first.

Every rung computes `a @ b` for 2-D `a` (ar x ac) and `b` (br x bc) with ac == br, keeps
the inputs' device, and returns the dtype torch would (`torch.promote_types`), so a
float64 or CUDA input never meets a float32 CPU buffer.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "LADDER",
    "matmul",
    "matmul_broadcast",
    "matmul_einsum",
    "matmul_elementwise",
    "matmul_loops",
    "matmul_torch",
]


def _shapes(a: Tensor, b: Tensor) -> tuple[int, int, int]:
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError(f"matmul takes 2-D tensors, got {tuple(a.shape)} and {tuple(b.shape)}")
    (ar, ac), (br, bc) = a.shape, b.shape
    if ac != br:
        raise ValueError(f"inner sizes differ: {tuple(a.shape)} @ {tuple(b.shape)}")
    return ar, ac, bc


def _empty_result(a: Tensor, b: Tensor, ar: int, bc: int) -> Tensor:
    return torch.zeros(ar, bc, dtype=torch.promote_types(a.dtype, b.dtype), device=a.device)


def matmul_loops(a: Tensor, b: Tensor) -> Tensor:
    """Three Python loops: c[i, j] = sum_k a[i, k] * b[k, j]."""
    ar, ac, bc = _shapes(a, b)
    c = _empty_result(a, b, ar, bc)
    for i in range(ar):
        for j in range(bc):
            for k in range(ac):
                c[i, j] += a[i, k] * b[k, j]
    return c


def matmul_elementwise(a: Tensor, b: Tensor) -> Tensor:
    """The inner loop becomes one elementwise product and a sum: row i of a times column j of b."""
    ar, _, bc = _shapes(a, b)
    c = _empty_result(a, b, ar, bc)
    for i in range(ar):
        for j in range(bc):
            c[i, j] = (a[i, :] * b[:, j]).sum()
    return c


def matmul_broadcast(a: Tensor, b: Tensor) -> Tensor:
    """One loop: row i of a as a column (ac, 1) broadcasts against b (ac, bc); summing
    over the rows gives row i of c."""
    ar, _, bc = _shapes(a, b)
    c = _empty_result(a, b, ar, bc)
    for i in range(ar):
        c[i] = (a[i, :, None] * b).sum(dim=0)
    return c


def matmul_einsum(a: Tensor, b: Tensor) -> Tensor:
    """Einstein summation: the repeated index k is summed over."""
    _shapes(a, b)
    return torch.einsum("ik,kj->ij", a, b)


def matmul_torch(a: Tensor, b: Tensor) -> Tensor:
    """PyTorch's own kernel (BLAS on CPU, cuBLAS on CUDA)."""
    _shapes(a, b)
    return a @ b


# The lesson's answer for `matmul` is the last hand-written rung.
matmul = matmul_broadcast

# Name -> function, in the order the lesson climbs it; benchmarks and reports read this.
LADDER: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "loops": matmul_loops,
    "elementwise": matmul_elementwise,
    "broadcast": matmul_broadcast,
    "einsum": matmul_einsum,
    "torch": matmul_torch,
}
