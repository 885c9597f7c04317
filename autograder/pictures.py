"""Pictures for feedback reports, as PNG bytes.

A wrong gradient is hard to read as a wall of numbers: a heat map of the expected array,
the student's, and their difference shows at a glance whether the error is everywhere
(wrong formula), in a stripe (a missing sum over the batch, a broadcast gone wrong) or a
transposition (shapes swapped). The matmul speed ladder puts the student's timings among
the lesson's reference points, on a log scale because they span six orders of magnitude.

Pure functions: numpy arrays and numbers in, PNG bytes out. Only matplotlib's object API is
used (Figure + the Agg canvas, never pyplot), so nothing touches matplotlib's global state
and the functions are safe to call from a grader that is doing other things. Importing
matplotlib costs about a second, which is why nothing imports this module until a report
is actually written.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from io import BytesIO

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, NullLocator

__all__ = [
    "REFERENCE_COLOUR",
    "STUDENT_COLOUR",
    "TORCH_LABEL",
    "heatmap_png",
    "ladder_png",
    "ratio_label",
    "time_label",
]

DPI = 100
# Bars of the speed ladder: the student's stand out, the lesson's stay in the background.
STUDENT_COLOUR = "#e8590c"
REFERENCE_COLOUR = "#9e9e9e"
# The ladder's ratios are relative to this row: the speed a student can actually reach.
TORCH_LABEL = "torch.matmul (@)"
# Where the data is nan or inf: grey appears in neither viridis nor RdBu_r, so a
# non-finite element cannot be mistaken for a value.
_BAD_COLOUR = "0.55"
# Up to this many rows or columns every index gets a tick; beyond it they would overlap.
_ALL_TICKS = 12
# A panel keeps square cells unless that would squash it into a sliver.
_MAX_EQUAL_ASPECT = 4.0


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = BytesIO()
    # No "Software"/date metadata: the same arrays give the same bytes.
    # No bbox_inches="tight": constrained layout already fits the figure, and "tight"
    # draws it twice (half the time of a picture).
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


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
        ax = fig.subplots()
        lo, hi = _finite_range(want_2d)
        _panel(
            fig,
            ax,
            want_2d,
            want_raw,
            title=f"expected {value} {_shape(want_raw)}",
            labels=_axis_labels(value, want_raw, True),
            cmap="viridis",
            vmin=lo,
            vmax=hi,
        )
        _title(fig, f"{value} is not a tensor; the expected values are shown", caption)
        return _png(fig)

    got_raw = np.asarray(got, dtype=float)
    got_2d = _as_2d(got_raw)
    same = got_raw.shape == want_raw.shape
    fig = Figure(figsize=(9.5 if same else 7.0, 3.2), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, 3 if same else 2)
    # One scale for both: a gradient off by a constant factor must look different.
    lo, hi = _finite_range(want_2d, got_2d)
    _panel(
        fig,
        axes[0],
        want_2d,
        want_raw,
        title=f"expected {value} {_shape(want_raw)}",
        labels=_axis_labels(value, want_raw, True),
        cmap="viridis",
        vmin=lo,
        vmax=hi,
    )
    _panel(
        fig,
        axes[1],
        got_2d,
        got_raw,
        title=f"yours {_shape(got_raw)}",
        labels=_axis_labels(value, got_raw, same),
        cmap="viridis",
        vmin=lo,
        vmax=hi,
    )
    if not same:
        _title(fig, f"{value} has shape {_shape(got_raw)}, expected {_shape(want_raw)}", caption)
        return _png(fig)

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
    return _png(fig)


def relative_difference(want: np.ndarray, got: np.ndarray) -> np.ndarray:
    """(yours - expected) / |expected| element by element, clipped to [-1, 1]; expected
    values near 0 (under a thousandth of the largest) are measured against that floor."""
    want, got = np.asarray(want, dtype=float), np.asarray(got, dtype=float)
    finite = np.abs(want[np.isfinite(want)])
    floor = 1e-3 * float(finite.max()) if finite.size and finite.max() > 0 else 1e-12
    rel = (got - want) / np.maximum(np.abs(want), floor)
    return np.clip(np.nan_to_num(rel, nan=1.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)


def time_label(seconds: float) -> str:
    """Seconds in the unit a person reads: 12.3 µs, 4.56 ms, 7.89 s."""
    unit, scale = next(
        ((unit, scale) for unit, scale in (("s", 1.0), ("ms", 1e-3)) if seconds >= scale),
        ("µs", 1e-6),
    )
    v = seconds / scale
    return f"{v:,.0f} {unit}" if v >= 100 else f"{v:.3g} {unit}"


def ratio_label(seconds: float, reference: float) -> str:
    """How many times slower than torch: "1,234x torch", "3.5x torch", "0.8x torch"."""
    r = seconds / reference
    if r >= 10:
        return f"{r:,.0f}x torch"
    return f"{r:.2g}x torch"


def ladder_png(rows: Sequence[tuple[str, float, bool] | tuple[str, float, bool, bool]], *,
               title: str) -> bytes:  # fmt: skip
    """The matmul speed ladder: one horizontal bar per (label, seconds, is_student[, at
    least]) row, top to bottom in the given order, on a log axis of seconds. The student's
    bars are highlighted; each bar says its time ("over" it for a run stopped there) and,
    if a row is labelled "torch.matmul (@)", how many times slower than it. Rows without a
    usable time (<= 0, nan, inf) are left out."""
    over = {label for label, _, _, *at_least in rows if at_least and at_least[0]}
    kept = [
        (label, float(s), bool(student))
        for label, s, student, *_ in rows
        if math.isfinite(float(s)) and float(s) > 0
    ]
    fig = Figure(figsize=(9.0, 1.4 + 0.38 * max(len(kept), 1)), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    ax.set_title(title, fontsize=11)
    if not kept:
        ax.text(0.5, 0.5, "no timings to show", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return _png(fig)

    torch = next((s for label, s, _ in kept if label == TORCH_LABEL), None)
    seconds = [s for _, s, _ in kept]
    # A log axis has no zero: bars start a little left of the fastest time.
    left = min(seconds) / 3
    decades = math.log10(max(seconds) / left)
    # Room to the right of the slowest bar for its label; on a log axis that is a factor.
    right = max(seconds) * 10 ** max(1.6, 0.45 * decades)
    ys = range(len(kept))
    ax.barh(
        ys,
        [s - left for s in seconds],
        left=left,
        color=[STUDENT_COLOUR if student else REFERENCE_COLOUR for _, _, student in kept],
        height=0.7,
    )
    ax.set_xscale("log")
    ax.set_xlim(left, right)
    ax.set_yticks(list(ys), [label for label, _, _ in kept])
    for tick, (_, _, student) in zip(ax.get_yticklabels(), kept, strict=True):
        if student:
            tick.set_color(STUDENT_COLOUR)
            tick.set_fontweight("bold")
    ax.invert_yaxis()  # the first row on top, as a ladder is read
    for y, (label, s, _) in zip(ys, kept, strict=True):
        prefix = "over " if label in over else ""
        text = prefix + time_label(s)
        if torch is not None and label != TORCH_LABEL:
            text += f"  ·  {prefix}{ratio_label(s, torch)}"
        ax.annotate(
            text,
            (s, y),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=9,
            annotation_clip=False,
        )
    ax.set_xlabel("seconds per call (log scale)")
    # Decades only: a log axis's unlabelled minor ticks cost most of the drawing time
    # (every one is measured by the layout) and say nothing here.
    ax.xaxis.set_minor_locator(NullLocator())
    ax.grid(axis="x", which="major", alpha=0.3)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    handles = []
    if any(student for _, _, student in kept):
        handles.append(Patch(color=STUDENT_COLOUR, label="yours"))
    if not all(student for _, _, student in kept):
        handles.append(Patch(color=REFERENCE_COLOUR, label="the lesson's reference points"))
    # Outside the axes: inside, it would cover a bar's label whichever corner it took.
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return _png(fig)
