"""From what the kernel produced to points: compare every value of every check with the
reference, name the mistake where the catalogue knows it, and add up. Pure: no files, no
processes. Points come only from explicit passes; anything not graded scores zero."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..course import Check, Exercise, expected_values
from ..plan.calls import Call, Plan
from .compare import Verdict
from .mistakes import diagnose
from .mistakes import mistake as catalogued
from .observation import Observation, observe
from .readback import CallResult, Harvest

__all__ = ["CheckResult", "Score", "score"]


@dataclass(frozen=True)
class CheckResult:
    exercise: str  # the exercise's cell (nbgrader grade_id)
    exercise_title: str
    name: str
    max_score: int
    score: int
    passed: bool
    message: str  # empty when passed
    hint: str | None = None
    mistake: str | None = None  # the catalogue id of the recognised mistake
    advisory: bool = False
    cases: int = 0
    cases_failed: int = 0
    verdict: Verdict | None = None  # the first failing comparison, for reports

    @property
    def status(self) -> str:
        return "passed" if self.passed else "failed"


@dataclass(frozen=True)
class Score:
    assignment: str
    checks: tuple[CheckResult, ...]
    notes: tuple[str, ...] = ()  # what happened while running the notebook

    @property
    def total(self) -> int:
        return sum(c.score for c in self.checks)

    @property
    def max_total(self) -> int:
        return sum(c.max_score for c in self.checks)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if not c.passed and not c.advisory)

    @property
    def failed_exercises(self) -> frozenset[str]:
        """The cells of the exercises with a failed graded check."""
        return frozenset(c.exercise for c in self.failed)

    def by_exercise(self) -> dict[str, tuple[int, int]]:
        """exercise cell -> (score, max)."""
        out: dict[str, tuple[int, int]] = {}
        for c in self.checks:
            s, m = out.get(c.exercise, (0, 0))
            out[c.exercise] = (s + c.score, m + c.max_score)
        return out


def _call_error_message(check: Check, case_name: str, error: dict[str, Any]) -> str:
    form = check.protocol.call_form(check.target)
    where = f" at `{error['line'].strip()}`" if error.get("line") else ""
    summary = error.get("summary") or f"{error.get('type')}: {error.get('message')}"
    return f"{form} on {case_name} raised {summary.splitlines()[-1]}{where}"


def _judge_case(
    check: Check, case_name: str, result: CallResult, plan_call: Call, device: str
) -> tuple[bool, str, str | None, str | None, Verdict | None]:
    """(passed, message, hint, mistake id, verdict) for one call of one check."""
    memo = (check.protocol.name, *check.values)
    if memo not in plan_call.expected:
        plan_call.expected[memo] = expected_values(check.protocol, plan_call.inputs, check.values)
    want = plan_call.expected[memo]

    def observed(value: str, error: dict[str, Any] | None) -> Observation:
        return observe(check.protocol, check.target, value, inputs=plan_call.inputs, want=want,
                       got=result.values, error=error, facts=result.facts,
                       dtype=plan_call.case.dtype, device=device)  # fmt: skip

    if result.error is not None:
        mistake, hint = diagnose(observed(check.values[0], result.error)) or (None, None)
        if mistake and catalogued(mistake).no_answer:
            return False, hint or "", None, mistake, None
        return False, _call_error_message(check, case_name, result.error), hint, mistake, None
    form = check.protocol.call_form(check.target)
    for value in check.values:
        obs = observed(value, None)
        verdict = obs.verdict
        assert verdict is not None, "observe compares whenever the call did not raise"
        if not verdict.passed:
            mistake, hint = diagnose(obs) or (None, None)
            return (
                False,
                f"{form} on {case_name}: {verdict.message}",
                hint,
                mistake,
                verdict,
            )
    return True, "", None, None, None


# One failed call of a check: (message, hint, mistake id, verdict).
_Failure = tuple[str, str | None, str | None, Verdict | None]
_NO_FAILURE: _Failure = ("", None, None, None)


def score(
    exercises: tuple[Exercise, ...],
    plan: Plan,
    harvest: Harvest | None,
    *,
    not_graded: str | None = None,
    notes: tuple[str, ...] = (),
    broken_cells: dict[str, str] | None = None,
    course_failures: dict[str, str] | None = None,
) -> Score:
    """Points for every check. `harvest` is None when the kernel produced no results;
    `not_graded` then says why, and every check scores zero with that message.
    `broken_cells` says why an exercise's own cell failed: a function it should define
    that is missing is put down to that, not to a wrong name. `course_failures`: the
    exercises whose own test cell (the instructor's, hidden tests included) failed, and
    the kind of error (course_tests.py)."""
    broken_cells = broken_cells or {}
    course_failures = course_failures or {}
    # a function another check finds undefined, and why: its exercise's cell failed
    never_defined = {
        plan.calls[key].target: why
        for ex in exercises
        if (why := broken_cells.get(ex.cell))
        for check in ex.checks
        for key in plan.checks[(ex.cell, check.name)]
    }
    results: list[CheckResult] = []
    for ex in exercises:
        first = len(results)
        for check in ex.checks:
            keys = plan.checks[(ex.cell, check.name)]
            failures: list[_Failure] = []
            for key in keys:
                call = plan.calls[key]
                if harvest is None or key not in harvest.calls:
                    reason = not_graded or "the notebook stopped before this check could run"
                    failures.append((f"not graded: {reason}", None, None, None))
                    break
                ok, message, hint, mistake, verdict = _judge_case(
                    check, call.case.name, harvest.calls[key], call, plan.device
                )
                if not ok:
                    failures.append((message, hint, mistake, verdict))
            passed = not failures
            message, hint, mistake, verdict = failures[0] if failures else _NO_FAILURE
            if mistake == "missing-definition" and ex.cell in broken_cells:
                target = plan.calls[keys[0]].target
                message = f"{broken_cells[ex.cell]}, so `{target}` was never defined"
                hint = "fix that error first: run the cell and read the message under it"
            elif mistake == "name-not-defined":
                for name, why in never_defined.items():
                    if f"name '{name}' is not defined" in message:
                        hint = f"{why}, so `{name}` was never defined: fix that first"
            quiet = bool(mistake and catalogued(mistake).no_answer)
            if len(failures) > 1 and harvest is not None and not quiet:
                message += f" (failed on {len(failures)} of {len(keys)} inputs)"
            results.append(
                CheckResult(
                    ex.cell,
                    ex.title,
                    check.name,
                    check.points,
                    check.points if passed else 0,
                    passed,
                    message,
                    hint,
                    mistake,
                    check.advisory,
                    len(keys),
                    len(failures),
                    verdict,
                )
            )
        if ex.cell in course_failures:
            results[first:] = _failed_by_course_tests(ex, results[first:], course_failures[ex.cell])
    return Score(exercises[0].assignment, _attributed(exercises, results), notes)


def _failed_by_course_tests(
    ex: Exercise, results: list[CheckResult], error: str
) -> list[CheckResult]:
    """An exercise whose every check passed but whose own test cell failed scores what
    nbgrader gives it: nothing (where a check failed already, its own message says more)."""
    if not all(r.passed for r in results if not r.advisory):
        return results
    message = (f"the course's own tests for {ex.title} fail on your code (an {error}), "
               "though the grader's checks pass")  # fmt: skip
    hint = ("run the exercise's test cell in your notebook and read its message; the "
            "course may also test what the instructions ask beyond it")  # fmt: skip
    return [r if r.advisory else replace(r, score=0, passed=False, message=message, hint=hint)
            for r in results]  # fmt: skip


def _attributed(
    exercises: tuple[Exercise, ...], results: list[CheckResult]
) -> tuple[CheckResult, ...]:
    """Cascades told as such: a check of an exercise that builds on one that failed says
    so first and drops a hint that would blame its own code (forward_and_backward is not
    told to reorder steps when lin_grad is wrong); then each hint once per exercise."""
    titles = {ex.cell: ex.title for ex in exercises}
    builds_on = {ex.cell: ex.builds_on for ex in exercises}
    failed = {r.exercise for r in results if not r.passed and not r.advisory}
    out: list[CheckResult] = []
    hinted: set[tuple[str, str]] = set()
    for r in results:
        causes = [titles[d] for d in builds_on.get(r.exercise, ()) if d in failed]
        if not r.passed and causes and not (r.mistake and catalogued(r.mistake).own):
            keep = bool(r.mistake and catalogued(r.mistake).locates)
            r = replace(
                r,
                message=f"Caused by {' and '.join(causes)} (above), which this calls: fix "
                f"{'that' if len(causes) == 1 else 'those'} first. Here: {r.message}",
                hint=r.hint if keep else None,
                mistake=r.mistake if keep else None,
            )
        if r.hint and (r.exercise, r.hint) in hinted:
            r = replace(r, hint="the same as above")
        elif r.hint:
            hinted.add((r.exercise, r.hint))
        out.append(r)
    return tuple(out)
