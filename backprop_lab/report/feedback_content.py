"""What a feedback report says, whatever its format (feedback.py renders it as HTML and
as Markdown): the pictures, each failed check's details, the advice, whether the code is
ready for a GPU, how fast the student's matmul is, and how their fit trains."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..judge.curve import LossCurve
from ..judge.score import CheckResult
from ..judge.speed import TORCH, LadderRow, ladder, ratio_text
from ..pipeline import GradeResult

__all__ = [
    "Picture",
    "advice_entries",
    "checks_to_fix",
    "curve_sentence",
    "detail_lines",
    "device_lines",
    "human_time",
    "ladder_rows",
    "other_notes",
    "picture_legend",
    "pictures",
    "same_mistake",
    "speed_sentence",
]


@dataclass(frozen=True)
class Picture:
    key: str  # a file-name-safe name, unique within a report
    alt: str
    png: bytes
    check: CheckResult | None = None  # the failed check it illustrates, if any


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "picture"


def human_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def ladder_rows(result: GradeResult) -> tuple[LadderRow, ...]:
    if result.speed is None:
        return ()
    # The lesson's rungs are timed on the grader's CPU: reference points for CPU runs only.
    return ladder(result.speed, with_lesson=result.device == "cpu",
                  wrong=result.score.failed_exercises)  # fmt: skip


def pictures(result: GradeResult) -> tuple[Picture, ...]:
    """The report's pictures: one heat map per failed check whose first wrong value is a
    gradient with both tensors at hand, then the speed ladder."""
    from .pictures import Bar, curve_png, heatmap_png, ladder_png

    out: list[Picture] = []
    for c in result.score.checks:
        v = c.verdict
        if c.passed or v is None or v.want is None or not v.value.endswith(".g"):
            continue
        if _drawn_before(result, c) is not None:
            continue  # one picture per recognised mistake: the others point to it
        got = v.got.numpy() if v.got is not None else None
        caption = c.message.split(": ", 1)[0]
        png = heatmap_png(v.value, v.want.numpy(), got, caption=caption)
        key = _slug(f"{c.exercise}-{c.name}-{v.value}")
        out.append(Picture(key, f"heat map of {v.value}: yours against expected", png, c))
    if result.curve is not None:
        png = curve_png(result.curve.expected, result.curve.yours,
                        title="fit on the digits, epoch by epoch")  # fmt: skip
        out.append(Picture("fit-curve", "fit's loss and accuracy per epoch: yours and the "
                           "reference's", png))  # fmt: skip
    rows = ladder_rows(result)
    if rows:
        ar, ac, bc = result.speed.shape  # type: ignore[union-attr]
        png = ladder_png(
            [Bar(r.label, r.seconds, r.student, r.at_least, r.why_unranked) for r in rows],
            title=f"matmul of ({ar}, {ac}) @ ({ac}, {bc}), seconds per call (log scale)",
        )
        out.append(Picture("matmul-speed", "the matmul speed ladder, log scale", png))
    return tuple(out)


def curve_sentence(curve: LossCurve) -> str:
    """What the loss curve says, in one sentence."""
    epochs = len(curve.expected)
    _, _, theirs = curve.expected[-1]
    if curve.yours is None:
        return (f"No loss curve of yours: {curve.why_not_yours}. The reference reaches "
                f"{theirs:.1%} validation accuracy after {epochs} epochs.")  # fmt: skip
    train, _, mine = curve.yours[-1]
    said = (f"After {epochs} epochs on the digits your fit reports a training loss of "
            f"{train:.3f} and {mine:.1%} validation accuracy; the reference's: "
            f"{curve.expected[-1][0]:.3f} and {theirs:.1%}.")  # fmt: skip
    if curve.on_the_training_set is not None:
        reported, valid = curve.on_the_training_set
        said += (f" Your {reported:.1%} is the accuracy on the training set, which the model "
                 f"has learnt; on the validation set it is {valid:.1%}. Measure it on "
                 "x_valid and y_valid, examples it has not seen (0 points: the grade "
                 "comes from the parameters).")  # fmt: skip
    return said


def speed_sentence(rows: tuple[LadderRow, ...]) -> str:
    mine = [(r, r.times_torch) for r in rows if r.student and r.times_torch is not None]
    if not mine:
        return ""
    fastest, times_torch = min(mine, key=lambda m: m[0].seconds)
    torch_row = next(r for r in rows if r.label == TORCH)
    return (
        f"Your fastest matmul ({fastest.label.removeprefix('your ')}) takes "
        f"{human_time(fastest.seconds)} per call, "
        f"{ratio_text(times_torch)} the time of "
        f"torch.matmul ({human_time(torch_row.seconds)}): each rung of the lesson moves a loop "
        "out of Python and into torch's compiled code."
    )


def detail_lines(c: CheckResult) -> list[tuple[str, str]]:
    """(label, text) lines for a failed check: what came back against what was expected."""
    lines = [("What went wrong", c.message)]
    v = c.verdict
    if v is not None and v.want_shape is not None and v.got_shape != v.want_shape:
        lines.append(("Shape", f"yours {v.got_shape}, expected {v.want_shape}"))
    if v is not None and v.rel_error is not None:
        lines.append(
            (
                "Error",
                f"norm-relative {v.rel_error:.2e}, largest absolute {v.max_abs_error:.3g}"
                + (
                    f"; worst element {v.worst}: yours {v.got_worst:.6g}, expected "
                    f"{v.want_worst:.6g}"
                    if v.worst is not None and v.got_worst is not None
                    else ""
                ),
            )
        )
    if c.hint and c.hint != c.message:
        lines.append(("Hint", c.hint))
    return lines


def checks_to_fix(checks: tuple[CheckResult, ...]) -> list[CheckResult]:
    """The failed checks that cost points."""
    return [c for c in checks if not c.passed and not c.advisory]


def advice_entries(checks: tuple[CheckResult, ...]) -> list[tuple[str, str]]:
    """Advice (failed 0-point checks) as (where, text), once per distinct text: the same
    float64 note on three matmul rungs is one entry naming the three."""
    groups: dict[str, list[str]] = {}
    for c in checks:
        if c.advisory and not c.passed:
            text = c.message + (f" Hint: {c.hint}" if c.hint and c.hint != c.message else "")
            groups.setdefault(text, []).append(f"{c.exercise_title}: {c.name}")
    return [("; ".join(where), text) for text, where in groups.items()]


def _drawn_before(result: GradeResult, c: CheckResult) -> CheckResult | None:
    """An earlier failed check whose picture shows the same recognised mistake."""
    if not c.mistake:
        return None
    for other in result.score.checks:
        if other is c:
            return None
        v = other.verdict
        if (
            not other.passed
            and other.mistake == c.mistake
            and v is not None
            and v.want is not None
            and v.value.endswith(".g")
        ):
            return other
    return None


def same_mistake(result: GradeResult, c: CheckResult) -> str | None:
    first = _drawn_before(result, c)
    if first is None or c.verdict is None or c.verdict.want is None:
        return None
    return f"The same mistake as in “{first.exercise_title}: {first.name}”: see its picture above."


def picture_legend(c: CheckResult) -> str:
    v = c.verdict
    if v is not None and v.got is not None and v.got_shape == v.want_shape:
        return (
            "Left: the expected gradient; middle: yours, on the same colour scale; right: "
            "yours divided by the expected, element by element (white where it is right, "
            "red where yours is larger, blue where it is smaller or of the other sign, grey "
            "where the expected value is 0). One flat colour: yours is off by one factor "
            "everywhere, and the title says which."
        )
    return "The expected gradient and yours, side by side: their shapes differ."


def device_lines(result: GradeResult) -> list[str]:
    if not result.device_findings:
        return [
            "No tensor was made without the inputs' device and none was moved to the CPU "
            "during the grader's calls: as far as the grader can see on "
            f"{result.device}, your functions are ready for a GPU."
        ]
    return [n.removeprefix("Device readiness: ") for n in result.score.notes
            if n.startswith("Device readiness: ")]  # fmt: skip


def other_notes(result: GradeResult) -> list[str]:
    review = [f"A person will look at this: {reason}" for reason in result.review]
    return review + [n for n in result.score.notes if not n.startswith("Device readiness: ")]
