"""A picture of a wrong gradient, as PNG bytes.

A wrong gradient is hard to read as a wall of numbers: a heat map of the expected array,
the student's, and their difference shows at a glance whether the error is everywhere
(wrong formula), in a stripe (a missing sum over the batch, a broadcast gone wrong) or a
transposition (shapes swapped).
"""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

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
    vmin: float,
    vmax: float,
) -> None:
    rows, cols = data.shape
    aspect = "equal" if max(rows, cols) / min(rows, cols) <= _MAX_EQUAL_ASPECT else "auto"
    image = ax.imshow(
        np.ma.masked_invalid(data),
        cmap=_cmap(cmap),
        vmin=vmin,
        vmax=vmax,
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
        vmin=span[0],
        vmax=span[1],
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


def heatmap_png(
    value: str, want: np.ndarray, got: np.ndarray | None, *, caption: str = ""
) -> bytes:
    """A picture of a wrong gradient such as `w.g` (`value` is its name).

    Same shapes: expected, yours (on one colour scale, so a factor of two shows) and
    each element's error relative to its expected value (red above, blue below, white
    where right, full colour at 100% off). Different shapes: the two
    side by side, each titled with its shape. `got` None (not a tensor): the expected
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

    # Each element's error relative to its own expected value, so an element that is 8x
    # too small is as blue as a large one: white means right, full colour 100% off or more.
    _panel(
        fig,
        axes[2],
        relative_difference(want_2d, got_2d),
        want_raw,
        title="yours vs expected, relative",
        labels=_axis_labels(value, want_raw, True),
        cmap="RdBu_r",
        vmin=-1.0,
        vmax=1.0,
    )
    _title(fig, f"{value}: {_worst(want_raw, got_raw)}", caption)
    return png(fig)


def relative_difference(want: np.ndarray, got: np.ndarray) -> np.ndarray:
    """(yours - expected) / |expected| element by element, clipped to [-1, 1]; expected
    values near 0 (under a thousandth of the largest) are measured against that floor."""
    want, got = np.asarray(want, dtype=float), np.asarray(got, dtype=float)
    finite = np.abs(want[np.isfinite(want)])
    floor = 1e-3 * float(finite.max()) if finite.size and finite.max() > 0 else 1e-12
    rel = (got - want) / np.maximum(np.abs(want), floor)
    return np.clip(np.nan_to_num(rel, nan=1.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
