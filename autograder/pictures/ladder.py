"""The matmul speed ladder, as PNG bytes: the student's timings among the lesson's
reference points, on a log scale because they span six orders of magnitude."""

from __future__ import annotations

import math
from collections.abc import Sequence

from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import NullLocator

from .figure import DPI, png

# Bars of the speed ladder: the student's stand out, the lesson's stay in the background.
STUDENT_COLOUR = "#e8590c"
REFERENCE_COLOUR = "#9e9e9e"
# The ladder's ratios are relative to this row: the speed a student can actually reach.
TORCH_LABEL = "torch.matmul (@)"


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
        return png(fig)

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
    return png(fig)
