"""Reports of a grade, each in the format its reader expects: a terminal table for
students, Gradescope's results.json, Markdown for CI summaries. Pure functions of a
GradeResult; writing files is the caller's job."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .pipeline import GradeResult
from .score import CheckResult

__all__ = ["check_line", "gradescope_results", "markdown_report", "print_table"]


def _feedback(c: CheckResult) -> str:
    if c.passed:
        return ""
    return c.message + (f"\nHint: {c.hint}" if c.hint and c.hint != c.message else "")


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
    for c in score.checks:
        if c.advisory and c.passed:
            continue  # advice that needs no action is noise
        status = (
            Text("passed", "green")
            if c.passed
            else Text("advice", "yellow")
            if c.advisory
            else Text("failed", "red")
        )
        table.add_row(c.exercise, c.name, f"{c.score}/{c.max_score}", status, _feedback(c))
    console.print(table)
    for note in score.notes:
        console.print(f"[dim]{note}[/dim]", highlight=False)
    n_checks = len(score.checks)
    n_inputs = sum(c.cases for c in score.checks)
    console.print(
        f"[bold]Total: {score.total}/{score.max_total}[/bold]  ({n_checks} checks on {n_inputs} "
        f"grader-made inputs, seed {result.seed}, device {result.device}, "
        f"{result.seconds:.1f} s)",
        highlight=False,
    )


def gradescope_results(result: GradeResult, *, visibility: str = "visible") -> dict[str, Any]:
    """Gradescope's results.json: one test per check, points from the table."""
    score = result.score
    tests = []
    for c in score.checks:
        tests.append(
            {
                "name": check_line(c),
                "name_format": "text",
                "number": c.exercise,
                "score": c.score,
                "max_score": c.max_score,
                "status": c.status,
                "output": _feedback(c) or "Passed.",
                "output_format": "text",
                "tags": [c.exercise] + ([c.mistake] if c.mistake else []),
                "visibility": visibility,
            }
        )
    notes = "\n".join(score.notes)
    return {
        "score": score.total,
        "execution_time": round(result.seconds, 3),
        "output": (
            f"{score.total}/{score.max_total} on {result.assignment}, graded with seed "
            f"{result.seed} on {result.device}." + (f"\n{notes}" if notes else "")
        ),
        "output_format": "text",
        "visibility": visibility,
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {
            "assignment": result.assignment,
            "max_score": score.max_total,
            "notebook_sha256": result.digest,
            "grader_version": result.grader_version,
            "seed": result.seed,
            "device": result.device,
        },
    }


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def markdown_report(result: GradeResult) -> str:
    score = result.score
    lines = [
        f"### {result.notebook.name} ({result.assignment}): {score.total}/{score.max_total}",
        "",
        "| exercise | check | points | status | message |",
        "|---|---|---:|---|---|",
    ]
    for c in score.checks:
        if c.advisory and c.passed:
            continue
        mark = "✅ passed" if c.passed else ("💡 advice" if c.advisory else "❌ failed")
        lines.append(
            f"| {_md_cell(c.exercise_title)} | {_md_cell(c.name)} | "
            f"{c.score}/{c.max_score} | {mark} | {_md_cell(_feedback(c))} |"
        )
    if score.notes:
        lines += ["", *(f"- {_md_cell(n)}" for n in score.notes)]
    return "\n".join(lines) + "\n"
