"""Reports of a grade, each in the format its reader expects: a terminal table for
students, Gradescope's results.json, Markdown for CI summaries. Pure functions of a
GradeResult; writing files is the caller's job."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..judge.score import CheckResult
from ..options import seed_words
from ..pipeline import GradeResult
from .markdown import markdown_text
from .records import feedback_text, record_from

__all__ = [
    "MARKS",
    "check_line",
    "gradescope_results",
    "markdown_report",
    "print_table",
    "shown_checks",
]

MARKS = {"passed": "✅ passed", "advice": "💡 advice", "failed": "❌ failed"}  # Markdown


def shown_checks(checks: tuple[CheckResult, ...]) -> list[tuple[CheckResult, str]]:
    """The checks a report lists, each with its status (passed, advice or failed):
    advice that needs no action is noise, so passed advisory checks are left out."""
    return [
        (c, "passed" if c.passed else "advice" if c.advisory else "failed")
        for c in checks
        if not (c.advisory and c.passed)
    ]


def check_line(c: CheckResult) -> str:
    """`exercise: check` as one name, the same in every report."""
    return f"{c.exercise_title}: {c.name}"


def print_table(result: GradeResult, console: Console) -> None:
    score = result.score
    table = Table(
        title=f"{result.notebook.name} ({result.assignment})",
        show_lines=True,
        title_justify="left",
        expand=True,
    )
    table.add_column("exercise", no_wrap=True)
    table.add_column("check", overflow="fold", ratio=3)
    table.add_column("points", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("message", overflow="fold", ratio=6)
    colours = {"passed": "green", "advice": "yellow", "failed": "red"}
    for c, status in shown_checks(score.checks):
        table.add_row(  # Text, never markup: messages quote code like `a[i, None]`
            Text(c.exercise), Text(c.name), f"{c.score}/{c.max_score}",
            Text(status, colours[status]), Text(feedback_text(c)),
        )  # fmt: skip
    console.print(table)
    for note in score.notes:
        console.print(Text(note, style="dim"))
    for reason in result.review:  # not dim: it decides whether the score stands
        console.print(Text.assemble(("A person will look at this: ", "bold yellow"), reason))
    n_checks = len(score.checks)
    n_inputs = sum(c.cases for c in score.checks)
    console.print(
        Text.assemble(
            (f"Total: {score.total}/{score.max_total}", "bold"),
            f"  ({n_checks} checks on {n_inputs} grader-made inputs, {seed_words(result.seed)}, "
            f"device {result.device}, {result.seconds:.1f} s)",
        )
    )
    if result.speed is not None:
        from ..judge.speed import NOISY, ladder, ratio_text

        if result.speed.noisy:
            console.print(Text(NOISY))
            return
        mine = [(r, r.times_torch) for r in ladder(result.speed, with_lesson=False,
                                                   wrong=result.score.failed_exercises)
                if r.student and r.times_torch]  # fmt: skip
        if mine:
            fastest, times_torch = min(mine, key=lambda m: m[0].seconds)
            ar, ac, bc = result.speed.shape
            console.print(
                Text(
                    f"Speed on the lesson's {ar}x{ac} @ {ac}x{bc}: your fastest matmul "
                    f"({fastest.label.removeprefix('your ')}) takes "
                    f"{fastest.over}{ratio_text(times_torch)} the time of "
                    "torch.matmul; --report "
                    "shows the whole ladder."
                )
            )


def gradescope_results(result: GradeResult, *, visibility: str = "visible") -> dict[str, Any]:
    """Gradescope's results.json: one test per check, points from the table."""
    return record_from(result, visibility=visibility).to_dict()


def markdown_report(result: GradeResult) -> str:
    score = result.score
    lines = [
        f"### {markdown_text(result.notebook.name, one_line=True)} "
        f"({markdown_text(result.assignment, one_line=True)}): {score.total}/{score.max_total}",
        "",
        "| exercise | check | points | status | message |",
        "|---|---|---:|---|---|",
    ]
    for c, status in shown_checks(score.checks):
        lines.append(
            f"| {markdown_text(c.exercise_title, table=True)} | "
            f"{markdown_text(c.name, table=True)} | {c.score}/{c.max_score} | {MARKS[status]} | "
            f"{markdown_text(feedback_text(c), table=True)} |"
        )
    review = [f"**A person will look at this:** {markdown_text(r)}" for r in result.review]
    if score.notes or review:
        lines += ["", *(f"- {r}" for r in review), *(f"- {markdown_text(n)}" for n in score.notes)]
    return "\n".join(lines) + "\n"
