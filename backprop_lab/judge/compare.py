"""Pure comparison: a value the student's code produced against the float64 reference.

Order matters, and is that of a numerical analyst: the kind of value first (a tensor at
all?), then its exact shape (a transposed (1, 50) `w2.g` must never broadcast against
(50, 1)), its dtype and device, and only then the numbers, by the norm-relative error
||got - want|| / ||want|| against the float64 reference. That measure forgives rounding
(float32 keeps about 7 digits, and sums in another order differ in the last ones) but not
a transposed, unsummed or mis-scaled gradient. Elementwise relative error would fail
correct gradients with entries near zero; an absolute epsilon would pass a factor-2 bug in
`inp.g`, whose entries are about 1/N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TypedDict

import torch
from torch import Tensor

from ..course import Expected
from .readback import Value


def _unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The index of element `flat` of a tensor of `shape` (row-major). By hand: the first
    `torch.unravel_index` in a process imports sympy and torch.fx, about a second."""
    index = []
    for size in reversed(shape):
        flat, i = divmod(flat, size)
        index.append(i)
    return tuple(reversed(index))


__all__ = ["TOLERANCE", "Verdict", "compare", "is_close", "norm_relative_error"]

# Norm-relative tolerances per dtype. float32 rounding on these sizes stays below 1e-6
# (measured: 3e-8 to 1e-6 on MNIST-sized passes); the smallest mistake in the catalogue
# (a mean instead of a sum over 2 elements) is off by 0.33. 1e-4 sits between with two
# orders of magnitude to spare on each side, on CPU and on CUDA with TF32 off.
TOLERANCE = {"float16": 1e-2, "bfloat16": 1e-2, "float32": 1e-4, "float64": 1e-10}


@dataclass(frozen=True)
class Verdict:
    value: str  # "w.g", "return", "loss"
    passed: bool
    reason: str  # ok | missing | none | not-tensor | shape | dtype | device | nan | values | kink
    message: str
    got_shape: tuple[int, ...] | None = None
    want_shape: tuple[int, ...] | None = None
    rel_error: float | None = None
    max_abs_error: float | None = None
    worst: tuple[int, ...] | None = None
    got_worst: float | None = None
    want_worst: float | None = None
    # The two tensors (float64, on the CPU) when the values or shape are wrong: reports
    # draw them. Not part of the verdict's identity.
    got: Tensor | None = field(default=None, compare=False, repr=False)
    want: Tensor | None = field(default=None, compare=False, repr=False)


def norm_relative_error(got: Tensor, want: Tensor) -> float:
    """||got - want|| / ||want|| in float64; ||got - want|| when want is all zeros."""
    diff = float((got.double() - want.double()).norm().item())
    scale = float(want.double().norm().item())
    return diff / scale if scale > 0 else diff


class _Shapes(TypedDict):
    got_shape: tuple[int, ...]
    want_shape: tuple[int, ...]


class _Stats(_Shapes):
    """The numbers of a comparison that got as far as the values: Verdict's fields."""

    rel_error: float
    max_abs_error: float
    worst: tuple[int, ...]
    got_worst: float | None
    want_worst: float | None


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(int(s) for s in t.shape)


def _not_a_tensor(value: str, got: Value) -> Verdict:
    is_grad = value.endswith(".g")
    if got.kind == "missing":
        return Verdict(value, False, "missing", f"{value} was not set")
    if got.kind == "none":
        return Verdict(value, False, "none", f"{value} is None" if is_grad else "returned None")
    if got.kind == "sequence":
        return Verdict(
            value, False, "not-tensor", f"{value} is a {got.type} of {len(got.items)}, not a tensor"
        )
    shown = f" ({got.repr})" if got.repr else ""
    return Verdict(value, False, "not-tensor", f"{value} is a {got.type}{shown}, not a tensor")


def compare(value: str, got: Value, want: Expected, *, dtype: str, device: str) -> Verdict:
    """Does `got` match `want`, to the tolerance of `dtype` (the inputs' dtype, which
    the result must keep), on `device` (the inputs' device, where it must stay)?"""
    verdict = _compare(value, got, want, dtype=dtype, device=device)
    if verdict.reason in ("shape", "values", "kink") and got.tensor is not None:
        verdict = replace(
            verdict,
            got=got.tensor.detach().to("cpu", torch.float64),
            want=want.value.detach().to("cpu", torch.float64),
        )
    return verdict


def _compare(value: str, got: Value, want: Expected, *, dtype: str, device: str) -> Verdict:
    if got.kind != "tensor" or got.tensor is None:
        return _not_a_tensor(value, got)
    g, w = got.tensor, want.value
    shapes: _Shapes = {"got_shape": _shape(g), "want_shape": _shape(w)}
    if g.shape != w.shape:
        return Verdict(
            value, False, "shape", f"{value} has shape {_shape(g)}, expected {_shape(w)}", **shapes
        )
    if got.dtype != dtype:
        return Verdict(
            value, False, "dtype", f"{value} has dtype {got.dtype} for {dtype} inputs", **shapes
        )
    if got.device is not None and torch.device(got.device).type != torch.device(device).type:
        return Verdict(
            value,
            False,
            "device",
            f"{value} is on {got.device} but the inputs are on {device}",
            **shapes,
        )
    g64, w64 = g.double(), w.double()
    if not torch.isfinite(g64).all():
        first_bad = (~torch.isfinite(g64)).nonzero()[0].tolist()
        return Verdict(
            value,
            False,
            "nan",
            f"{value} contains NaN or infinity (first at {tuple(first_bad)})",
            **shapes,
        )
    rtol = TOLERANCE.get(dtype, 1e-4)
    keep = ~want.free if want.free is not None else torch.ones_like(w64, dtype=torch.bool)
    diff = torch.where(keep, g64 - w64, torch.zeros_like(w64))
    err = norm_relative_error(g64[keep], w64[keep]) if keep.any() else 0.0
    flat = int(diff.abs().argmax().item())
    worst = _unravel(flat, tuple(w64.shape))
    stats: _Stats = {
        "rel_error": err,
        "max_abs_error": float(diff.abs().max().item()) if diff.numel() else 0.0,
        "worst": worst,
        "got_worst": float(g64[worst].item()) if g64.numel() else None,
        "want_worst": float(w64[worst].item()) if w64.numel() else None,
        **shapes,
    }
    if not err <= rtol:  # `not <=`: NaN fails too
        got_w, want_w = stats["got_worst"], stats["want_worst"]
        where = f"; worst element {worst}: got {got_w:.6g}, expected {want_w:.6g}"
        return Verdict(
            value,
            False,
            "values",
            f"{value} is wrong: norm-relative error {err:.2e} (tolerance {rtol:.0e}), "
            f"max abs error {stats['max_abs_error']:.3g}{where}",
            **stats,
        )
    if want.free is not None and want.low is not None and want.high is not None:
        scale = max(w64.abs().max().item(), 1.0) * rtol
        lo, hi = want.low.double(), want.high.double()
        bad = want.free & ((g64 < lo - scale) | (g64 > hi + scale))
        if bad.any():
            at = tuple(int(i) for i in bad.nonzero()[0].tolist())
            return Verdict(
                value,
                False,
                "kink",
                f"{value} at an input exactly 0 {at} is {g64[at].item():.6g}; there any "
                f"slope in [0, 1] is right, so it must lie between 0 and "
                f"{(hi[at] if hi[at] != 0 else lo[at]).item():.6g}",
                **stats,
            )
    return Verdict(value, True, "ok", "", **stats)


def is_close(got: Tensor, want: Tensor, rtol: float = 1e-3) -> bool:
    """Loose equality for recognising a known mistake's pattern (shape must match)."""
    if got.shape != want.shape:
        return False
    err = norm_relative_error(got, want)
    return math.isfinite(err) and err <= rtol
