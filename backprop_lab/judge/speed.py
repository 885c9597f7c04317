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
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..plan.calls import SPEED_SHAPE
from .readback import Speed

if TYPE_CHECKING:  # torch is imported only when the lesson's rungs are timed
    from torch import Tensor

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
    times_torch: float | None  # seconds / torch.matmul's seconds; None when not ranked
    at_least: bool = False  # stopped after `seconds`: a lower bound
    wrong: bool = False  # the student's rung returned a wrong answer

    @property
    def over(self) -> str:
        """ "over " for a lower bound, to put before its time or ratio."""
        return "over " if self.at_least else ""

    @property
    def ranked(self) -> bool:
        """Whether this row takes part in the ranking: a bound is not a time, and a wrong
        answer's speed says nothing about the rung it was meant to be."""
        return not (self.at_least or self.wrong)

    @property
    def why_unranked(self) -> str:
        if self.wrong:
            return "returned a wrong answer: not ranked"
        if self.at_least:
            return "stopped: a lower bound, not ranked"
        return ""


def _best_of(
    fn: Callable[[Tensor, Tensor], object], a: Tensor, b: Tensor, budget: float = 0.1
) -> float:
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

    from ..course import hand_written

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


def ladder(
    speed: Speed, *, with_lesson: bool = True, wrong: frozenset[str] = frozenset()
) -> tuple[LadderRow, ...]:
    """Every timing with its ratio to torch.matmul: the measured ones slowest first, then
    the student's rungs that are not ranked, a stopped one (a lower bound) or one whose
    exercise (a cell in `wrong`) failed its checks. Rows that failed (None) are left out,
    and so is everything when the timings were too noisy to rank."""
    if speed.noisy:
        return ()
    rows = [
        LadderRow(label, s, mine, None, at_least, mine and label.removeprefix("your ") in wrong)
        for label, s, mine, at_least in speed.rows
        if s is not None and s > 0
    ]
    if with_lesson:
        rows += [LadderRow(label, s, False, None) for label, s in lesson_times(speed.shape)]
    torch_s = next((r.seconds for r in rows if r.label == TORCH), None)
    ranked = sorted((r for r in rows if r.ranked), key=lambda r: -r.seconds)
    return tuple(
        [replace(r, times_torch=r.seconds / torch_s if torch_s else None) for r in ranked]
        + [r for r in rows if not r.ranked]
    )
