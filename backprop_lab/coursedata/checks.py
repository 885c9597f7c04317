"""What the course's checks say about a wrong tensor, in one place: the notebooks'
`check_close` and the grader's hints both read it, so the two never say different things
about the same answer."""

from __future__ import annotations

import torch

__all__ = ["constant_ratio", "ratio_sentence"]


def constant_ratio(got: torch.Tensor, want: torch.Tensor, rtol: float) -> float | None:
    """The one number `got` is `want` times, within `rtol` (a factor of 2 or 1/N missing
    or doubled, a flipped sign); None when there is none, or it is 1."""
    if got.shape != want.shape:
        return None
    g, w = got.detach().double().flatten().cpu(), want.detach().double().flatten().cpu()
    nonzero = w.abs() > 0
    if nonzero.sum() < 2 or not torch.isfinite(g).all():
        return None
    ratio = (g[nonzero] / w[nonzero]).median().item()
    if ratio == 0 or (g - ratio * w).norm().item() > rtol * abs(ratio) * w.norm().item():
        return None
    return None if abs(ratio - 1) <= rtol else ratio


def ratio_sentence(ratio: float) -> str:
    return f"Yours is {ratio:.3g}x the expected everywhere: a constant factor or sign."
