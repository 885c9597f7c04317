"""What the `autograde` command shows on a terminal while it works and when it is done:
the progress of a class's grading and its summary. Used by cli.py only; the grading
itself (batch.py) returns data and prints nothing."""

from __future__ import annotations

import statistics
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .batch import BatchSummary, Step

__all__ = ["GradingProgress", "no_submissions", "print_summary", "stderr_console", "stdout_console"]


def stdout_console() -> Console:
    # markup=False: messages quote code like `a[i, None]`, which rich would read as tags
    console = Console(highlight=False, markup=False)
    if not console.is_terminal:  # logs and pipes: wide enough for the messages
        console = Console(highlight=False, markup=False, width=120)
    return console


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, markup=False)


class GradingProgress:
    """A progress bar for `batch.grade_submissions`, which calls it at each `Step`; a
    context manager, so the bar is put away however the grading ends."""

    def __init__(self, console: Console, show: bool = True) -> None:
        self.console = console
        self.done = self.total = 0
        self._bar = Progress(
            TextColumn("Grading", style="bold", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.description}", markup=False),
            console=console,
            disable=not show,
            transient=False,
        )
        self._task: TaskID | None = None

    def __call__(self, step: Step) -> None:
        if self._task is None:  # the first step: the grading starts
            self.total = step.total
            self._bar.start()
            self._task = self._bar.add_task("", total=step.total)
        if step.sub is None or step.record is None:
            return
        self.done += 1
        what = "already graded" if step.skipped else step.record.status
        description = f"{step.sub.student}: {step.record.score} ({what})"
        self._bar.update(self._task, advance=1, description=description)

    def __enter__(self) -> GradingProgress:
        return self

    def __exit__(self, *_) -> None:
        if self._task is not None:
            self._bar.stop()

    def interrupted(self, out: Path) -> None:
        self.console.print(
            f"Interrupted after {self.done} of {self.total} submissions; their results are "
            f"in {out}. Run the same command again to grade the rest."
        )


def no_submissions(console: Console, paths: list[Path]) -> None:
    console.print(
        f"autograde: no notebooks found under {', '.join(map(str, paths))}: expected "
        ".ipynb files, folders with one sub-folder per student, or nbgrader's submitted/"
    )


def print_summary(console: Console, summary: BatchSummary) -> None:
    """How the grading went, who needs a person, and where the time went."""
    graded = summary.count("graded")
    unchanged = (
        f" ({summary.skipped} unchanged since an earlier run, not graded again)"
        if summary.skipped
        else ""
    )
    console.print(
        f"{len(summary.graded)} submissions{unchanged} in {summary.seconds:.1f} s: "
        f"{graded} graded, "
        + (f"{summary.count('review')} need a person, " if summary.count("review") else "")
        + f"{summary.count('ungradeable')} could not be graded, "
        f"{summary.count('error')} grader errors."
    )
    for r in summary.graded:
        if r.status != "graded":
            console.print(f"  {r.student} ({r.status}): {r.message}")
    spent = [r.timings for r in summary.graded if r.status == "graded" and r.timings]
    if spent:

        def median(key: str) -> float:
            return statistics.median(t.get(key, 0.0) for t in spent)

        console.print(
            f"Per graded submission (medians): the notebook's run {median('execute'):.2f} s "
            f"(its cells {median('notebook cells'):.2f} s, the grader's calls "
            f"{median('grader calls'):.2f} s); the grader's own CPU {median('grader cpu'):.2f} s."
        )
    console.print(f"Grades: {summary.out / 'grades.csv'}; summary: {summary.out / 'summary.md'}")
