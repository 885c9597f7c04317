"""fit's loss curve, as PNG bytes: the student's training and validation loss epoch by
epoch beside the reference's, and the validation accuracy of both."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure

from .figure import DPI, png
from .ladder import REFERENCE_COLOUR, STUDENT_COLOUR

Epoch = tuple[float, float, float]  # training loss, validation loss, validation accuracy


def curve_png(expected: Sequence[Epoch], yours: Sequence[Epoch] | None, *, title: str) -> bytes:
    """Two panels: the losses (training solid, validation dashed) and the validation
    accuracy, per epoch; the reference's in grey, the student's highlighted (left out
    when `yours` is None)."""
    fig = Figure(figsize=(8, 3.2), dpi=DPI, layout="constrained")
    loss, accuracy = fig.subplots(1, 2)
    lines = [("the reference", expected, REFERENCE_COLOUR)]
    if yours is not None:
        lines.append(("yours", yours, STUDENT_COLOUR))
    for who, epochs, colour in lines:
        x = range(1, len(epochs) + 1)
        loss.plot(x, [e[0] for e in epochs], color=colour, marker="o", label=f"{who}, training")
        loss.plot(x, [e[1] for e in epochs], color=colour, marker="o", linestyle="--",
                  label=f"{who}, validation")  # fmt: skip
        accuracy.plot(x, [100 * e[2] for e in epochs], color=colour, marker="o", label=who)
    loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    accuracy.set(xlabel="epoch", ylabel="%", title="validation accuracy")
    for ax in (loss, accuracy):
        ax.set_xticks(range(1, len(expected) + 1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return png(fig)
