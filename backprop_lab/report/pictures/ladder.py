"""The matmul speed ladder, as PNG bytes: the student's timings among the lesson's
reference points, on a log scale because they span six orders of magnitude."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Bar:
    """One rung of the ladder. A `bound` is a run stopped after `seconds`: drawn as an
    open bar, "> 100 ms". A rung with a reason `unranked` (stopped, a wrong answer) is
    drawn below the ranked ones, open and hatched, with the reason and no ratio."""

    label: str
    seconds: float
    student: bool = False
    bound: bool = False
    unranked: str = ""


def ladder_png(bars: Sequence[Bar], *, title: str) -> bytes:
    """The matmul speed ladder: one horizontal bar per row, the ranked rows top to bottom
    in the given order and the unranked ones under a dashed line, on a log axis of
    seconds. The student's bars are highlighted; each bar says its time and, if a ranked
    row is labelled "torch.matmul (@)", how many times slower than it. Rows without a
    usable time (<= 0, nan, inf) are left out."""
    kept = [b for b in bars if math.isfinite(float(b.seconds)) and float(b.seconds) > 0]
    kept = [b for b in kept if not b.unranked] + [b for b in kept if b.unranked]
    fig = Figure(figsize=(9.0, 1.4 + 0.38 * max(len(kept), 1)), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    ax.set_title(title, fontsize=11)
    if not kept:
        ax.text(0.5, 0.5, "no timings to show", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return png(fig)

    torch = next((b.seconds for b in kept if b.label == TORCH_LABEL and not b.unranked), None)
    seconds = [b.seconds for b in kept]
    # A log axis has no zero: bars start a little left of the fastest time.
    left = min(seconds) / 3
    decades = math.log10(max(seconds) / left)
    # Room to the right of the slowest bar for its label; on a log axis that is a factor.
    # A reason why a rung is not ranked is a longer label than a ratio.
    room = 2.6 if any(b.unranked for b in kept) else 1.6
    right = max(seconds) * 10 ** max(room, 0.45 * decades)
    for y, b in enumerate(kept):
        colour = STUDENT_COLOUR if b.student else REFERENCE_COLOUR
        # A measured time is a filled bar; a bound or an unranked rung an open one, so it
        # cannot be read as a time beside the others.
        open_bar = b.bound or bool(b.unranked)
        ax.barh(
            y,
            b.seconds - left,
            left=left,
            height=0.7,
            color="none" if open_bar else colour,
            edgecolor=colour,
            linewidth=1.5 if open_bar else 0,
            linestyle="--" if b.bound else "-",
            hatch="//" if b.unranked and not b.bound else None,
        )
    ax.set_xscale("log")
    ax.set_xlim(left, right)
    ys = range(len(kept))
    ax.set_yticks(list(ys), [b.label for b in kept])
    for tick, b in zip(ax.get_yticklabels(), kept, strict=True):
        if b.student:
            tick.set_color(STUDENT_COLOUR)
            tick.set_fontweight("bold")
    ax.invert_yaxis()  # the first row on top, as a ladder is read
    ranked = sum(1 for b in kept if not b.unranked)
    if 0 < ranked < len(kept):
        ax.axhline(ranked - 0.5, color="0.4", linestyle=":", linewidth=1)
    for y, b in enumerate(kept):
        text = ("> " if b.bound else "") + time_label(b.seconds)
        if b.unranked:
            text += f"  ·  {b.unranked}"
        elif torch is not None and b.label != TORCH_LABEL:
            text += f"  ·  {ratio_label(b.seconds, torch)}"
        ax.annotate(
            text,
            (b.seconds, y),
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
    if any(b.student for b in kept):
        handles.append(Patch(color=STUDENT_COLOUR, label="yours"))
    if not all(b.student for b in kept):
        handles.append(Patch(color=REFERENCE_COLOUR, label="the lesson's reference points"))
    if any(b.bound or b.unranked for b in kept):
        handles.append(Patch(facecolor="none", edgecolor=STUDENT_COLOUR, linestyle="--",
                             label="open: not a measured time, not ranked"))  # fmt: skip
    # Outside the axes: inside, it would cover a bar's label whichever corner it took.
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    return png(fig)
