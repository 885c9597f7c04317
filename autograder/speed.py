"""The matmul speed ladder: the student's matmuls, timed in their kernel on the lesson's
5x784 @ 784x10, against the lesson's own rungs (loops, elementwise, broadcasting) and
torch, as ratios to `torch.matmul`.

The student's rungs, einsum and `torch.matmul` are timed in the student's kernel (see
`kernel._speed`), one after the other, so the headline ratio compares like with like.
The lesson's hand-written rungs are timed once per grading process here, with the same
method, as reference points: they are the same code for every student.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

from .harvest import SPEED_SHAPE
from .readback import Speed

__all__ = ["NOISY", "TORCH", "LadderRow", "ladder", "lesson_times", "ratio_text"]

NOISY = (
    "The machine was too busy while your matmuls were timed (torch.matmul's own time moved "
    "more than 3x), so no ratios this time: run the check again when it is quieter."
)


def ratio_text(ratio: float) -> str:
    """`151x`, `2.5x`, `0.42x`: never a ratio rounded to 0x."""
    return f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.2g}x"


TORCH = "torch.matmul (@)"  # the row every ratio is taken against


@dataclass(frozen=True)
class LadderRow:
    label: str
    seconds: float
    student: bool
    times_torch: float | None  # seconds / torch.matmul's seconds
    at_least: bool = False  # stopped after `seconds`: a lower bound

    @property
    def over(self) -> str:
        """ "over " for a lower bound, to put before its time or ratio."""
        return "over " if self.at_least else ""


def _best_of(fn, a, b, budget: float = 0.1) -> float:
    best, spent, runs = math.inf, 0.0, 0
    while runs == 0 or (spent < budget and runs < 200):
        started = time.perf_counter()
        fn(a, b)
        took = time.perf_counter() - started
        best, spent, runs = min(best, took), spent + took, runs + 1
    return best


@functools.cache
def lesson_times(shape: tuple[int, int, int] = SPEED_SHAPE) -> tuple[tuple[str, float], ...]:
    """(label, seconds) of the lesson's hand-written rungs on CPU, measured once; none
    where the instructor's `reference` is not installed (the grader students install:
    those rungs are the matmul exercise's answers)."""
    import torch

    from .maths import hand_written

    ref = hand_written()
    if ref is None:
        return ()
    matmul_loops, matmul_elementwise = ref.matmul_loops, ref.matmul_elementwise
    matmul_broadcast = ref.matmul_broadcast
    ar, ac, bc = shape
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(ar, ac, generator=gen), torch.randn(ac, bc, generator=gen)
    return (
        # a second a call: timed on one row, times the rows (the loop over rows is linear)
        ("lesson: loops", ar * _best_of(matmul_loops, a[:1], b)),
        ("lesson: elementwise", _best_of(matmul_elementwise, a, b)),
        ("lesson: broadcasting", _best_of(matmul_broadcast, a, b)),
    )


def ladder(speed: Speed, *, with_lesson: bool = True) -> tuple[LadderRow, ...]:
    """Every timing, slowest first, with its ratio to torch.matmul. Rows that failed
    (None) are left out, and so is everything when the timings were too noisy to rank."""
    if speed.noisy:
        return ()
    rows = [row for row in speed.rows if row[1] is not None and row[1] > 0]
    if with_lesson:
        rows += [(label, s, False, False) for label, s in lesson_times(speed.shape)]
    torch_s = next((s for label, s, *_ in rows if label == TORCH), None)
    rows.sort(key=lambda r: -r[1])
    return tuple(
        LadderRow(label, s, mine, s / torch_s if torch_s else None, at_least)
        for label, s, mine, at_least in rows
    )
