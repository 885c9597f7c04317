"""A picture of a wrong gradient, as PNG bytes.

A wrong gradient is hard to read as a wall of numbers: a heat map of the expected array,
the student's, and their ratio shows at a glance whether the error is one factor everywhere
(a 2 or a 1/N missing, a flipped sign: one flat colour), in a stripe (a missing sum over
the batch, a broadcast gone wrong) or a transposition (a patchwork, or shapes swapped).
"""

from __future__ import annotations

import textwrap
from typing import Literal

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, Normalize, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from backprop_lab.coursedata.checks import constant_ratio

from .figure import DPI, png

# Where the data is nan or inf: grey appears in neither viridis nor RdBu_r, so a
# non-finite element cannot be mistaken for a value.
_BAD_COLOUR = "0.55"
# Up to this many rows or columns every index gets a tick; beyond it they would overlap.
_ALL_TICKS = 12
# A panel keeps square cells unless that would squash it into a sliver.
_MAX_EQUAL_ASPECT = 4.0


def _as_2d(a: np.ndarray) -> np.ndarray:
    """A float array to draw: scalars as 1x1, vectors as one row, higher ranks flattened
    after the first axis (a picture can only show two)."""
    a = np.asarray(a, dtype=float)
    if a.ndim == 0:
        return a.reshape(1, 1)
    if a.ndim == 1:
        return a.reshape(1, -1)
    if a.ndim > 2:
        return a.reshape(a.shape[0], -1)
    return a


def _shape(a: np.ndarray) -> str:
    return str(tuple(int(n) for n in np.shape(a)))


def _role(value: str) -> str:
    """The parameter a gradient belongs to: "w" for "w.g", "lin1.w.grad", "w1.g"."""
    parts = [p for p in value.replace("[", ".").replace("]", "").split(".") if p]
    while len(parts) > 1 and parts[-1] in ("g", "grad"):
        parts.pop()
    return parts[-1].lower() if parts else ""


def _axis_labels(value: str, original: np.ndarray, meaningful: bool) -> tuple[str, str]:
    """(x label, y label). A weight (n_in, n_out) is read by unit, not by row and column;
    `meaningful` is False for an array whose shape is wrong, where that reading would lie."""
    role = _role(value)
    if np.ndim(original) <= 1:
        return ("output unit" if meaningful and role.startswith("b") else "element"), ""
    if meaningful and role.startswith("w") and np.ndim(original) == 2:
        return "output unit", "input unit"
    return "column", "row"


def _finite_range(*arrays: np.ndarray) -> tuple[float, float]:
    values = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays])
    if values.size == 0:
        return -1.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        # A constant array: Normalize and the colorbar need a range to spread over.
        pad = abs(lo) * 0.5 or 1.0
        return lo - pad, hi + pad
    return lo, hi


def _cmap(name: str) -> Colormap:
    # A copy: the registered colormap is shared, global state.
    return colormaps[name].with_extremes(bad=_BAD_COLOUR)


def _panel(
    fig: Figure,
    ax: Axes,
    data: np.ndarray,
    original: np.ndarray,
    *,
    title: str,
    labels: tuple[str, str],
    cmap: str,
    norm: Normalize,
) -> None:
    rows, cols = data.shape
    aspect: Literal["equal", "auto"] = (
        "equal" if max(rows, cols) / min(rows, cols) <= _MAX_EQUAL_ASPECT else "auto"
    )
    image = ax.imshow(
        np.ma.masked_invalid(data),
        cmap=_cmap(cmap),
        norm=norm,
        aspect=aspect,
        # Sharp cells when enlarged; when a 784-row weight is shrunk to a few hundred
        # pixels, nearest would drop whole rows (a wrong one among them), so it is filtered.
        interpolation="antialiased",
        interpolation_stage="rgba",
    )
    fig.colorbar(image, ax=ax, shrink=0.9)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    for axis, n in ((ax.xaxis, cols), (ax.yaxis, rows)):
        if n <= _ALL_TICKS:
            axis.set_ticks(range(n))
        else:
            axis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    if np.ndim(original) <= 1:
        # A vector drawn as one row: its only row index says nothing.
        ax.set_yticks([])


def _values(
    fig: Figure,
    ax: Axes,
    value: str,
    raw: np.ndarray,
    name: str,
    meaningful: bool,
    span: tuple[float, float],
) -> None:
    """A panel of values (expected or yours), titled `name` and its shape, on the viridis
    scale `span`; `meaningful`: whether `value`'s axes mean units (see `_axis_labels`)."""
    _panel(
        fig,
        ax,
        _as_2d(raw),
        raw,
        title=f"{name} {_shape(raw)}",
        labels=_axis_labels(value, raw, meaningful),
        cmap="viridis",
        norm=Normalize(*span),
    )


def _worst(want: np.ndarray, got: np.ndarray) -> str:
    """Where the largest error is, in the array's own indexing, for the figure title."""
    err = np.abs(got - want)
    nonfinite = ~np.isfinite(got)
    if nonfinite.any():
        return f"{int(nonfinite.sum())} element(s) are nan or inf (grey)"
    if err.size == 0 or not np.any(err > 0):
        return "no difference"
    flat = int(np.argmax(err))
    index = np.unravel_index(flat, want.shape) if want.ndim else ()
    where = "[" + ", ".join(str(int(i)) for i in index) + "]" if index else ""
    return (
        f"largest error {err.flat[flat]:.3g} at {where or 'the value'} "
        f"(expected {want.flat[flat]:.4g}, yours {got.flat[flat]:.4g})"
    )


def _title(fig: Figure, title: str, caption: str) -> None:
    lines = textwrap.wrap(title, 110)
    if caption:
        # The caption is a second paragraph of the same title, so constrained layout
        # leaves room for both above the panels.
        lines += ["", *textwrap.wrap(caption, 120)]
    fig.suptitle("\n".join(lines), fontsize=11)


# A ratio is "one factor everywhere" within this: the picture's claim, not the check's
# tolerance (the check has already failed; this only decides what the caption says).
_FLAT = 1e-3


def heatmap_png(
    value: str, want: np.ndarray, got: np.ndarray | None, *, caption: str = ""
) -> bytes:
    """A picture of a wrong gradient such as `w.g` (`value` is its name).

    Same shapes: expected, yours (on one colour scale, so a factor of two shows) and yours
    divided by expected, element by element: white where right (1), red above, blue below
    (0 or negative), grey where the expected value is 0. A gradient off by one factor
    everywhere is one flat colour, and the title says the factor. Different shapes: the
    two side by side, each titled with its shape. `got` None (not a tensor): the expected
    values alone. `caption` is printed under the figure's title."""
    want_raw = np.asarray(want, dtype=float)
    want_2d = _as_2d(want_raw)
    if got is None:
        fig = Figure(figsize=(4.5, 3.2), dpi=DPI, layout="constrained")
        span = _finite_range(want_2d)
        _values(fig, fig.subplots(), value, want_raw, f"expected {value}", True, span)
        _title(fig, f"{value} is not a tensor; the expected values are shown", caption)
        return png(fig)

    got_raw = np.asarray(got, dtype=float)
    got_2d = _as_2d(got_raw)
    same = got_raw.shape == want_raw.shape
    fig = Figure(figsize=(9.5 if same else 7.0, 3.2), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, 3 if same else 2)
    # One scale for both: a gradient off by a constant factor must look different.
    span = _finite_range(want_2d, got_2d)
    _values(fig, axes[0], value, want_raw, f"expected {value}", True, span)
    _values(fig, axes[1], value, got_raw, "yours", same, span)
    if not same:
        _title(fig, f"{value} has shape {_shape(got_raw)}, expected {_shape(want_raw)}", caption)
        return png(fig)

    ratio = ratio_map(want_2d, got_2d)
    _panel(
        fig,
        axes[2],
        ratio,
        want_raw,
        title="yours ÷ expected",
        labels=_axis_labels(value, want_raw, True),
        cmap="RdBu_r",
        norm=_ratio_norm(ratio),
    )
    _title(fig, f"{value}: {ratio_summary(want_raw, got_raw)}", caption)
    return png(fig)


def ratio_map(want: np.ndarray, got: np.ndarray) -> np.ndarray:
    """yours / expected element by element; nan (drawn grey) where the expected value is
    under a thousandth of the largest, where a ratio would only magnify rounding, and
    where yours is nan or inf."""
    want, got = np.asarray(want, dtype=float), np.asarray(got, dtype=float)
    finite = np.abs(want[np.isfinite(want)])
    floor = 1e-3 * float(finite.max()) if finite.size and finite.max() > 0 else np.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = got / want
    ratio[~(np.abs(want) >= floor) | ~np.isfinite(got)] = np.nan
    return ratio


def _ratio_norm(ratio: np.ndarray) -> TwoSlopeNorm:
    """White at 1; the scale reaches at least from 0 to 2 and out to the 2nd and 98th
    percentiles, so a factor of 8 is as strong as 2 is mild, and one stray element does
    not wash the rest out."""
    finite = ratio[np.isfinite(ratio)]
    lo, hi = np.percentile(finite, [2, 98]) if finite.size else (0.0, 2.0)
    return TwoSlopeNorm(vcenter=1.0, vmin=min(float(lo), 0.0), vmax=max(float(hi), 2.0))


def ratio_summary(want: np.ndarray, got: np.ndarray) -> str:
    """The figure's headline: the one factor yours is off by, if there is one (in the
    course's own words, backprop_lab.coursedata.checks), else where the largest error is."""
    import torch

    factor = constant_ratio(torch.from_numpy(np.asarray(got, dtype=float)),
                            torch.from_numpy(np.asarray(want, dtype=float)), _FLAT)  # fmt: skip
    if factor is not None:
        return (f"yours is {factor:.3g}x the expected everywhere (one flat colour): "
                "a constant factor or sign")  # fmt: skip
    if want.ndim == 2 and want.shape[0] == want.shape[1] > 1 and np.allclose(got, want.T):
        return "yours is the transpose of the expected (white on the diagonal only)"
    return _worst(want, got)
