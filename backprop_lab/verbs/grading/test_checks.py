"""One pytest test per check of the exercise table, for the notebook given by
`--autograde-notebook`. Collected by
`pytest --pyargs backprop_lab.verbs.grading --autograde-notebook NB`."""

from __future__ import annotations

from pathlib import Path

import pytest

from backprop_lab.course import exercises_for
from backprop_lab.options import SHARED_FLAGS, options_from
from backprop_lab.pipeline import GradeResult, GradingError, Options, grade
from backprop_lab.plan.notebook import NotebookError, detect_assignment, read_notebook
from backprop_lab.verbs.plugin import flag, option


def _options(config: pytest.Config) -> tuple[Path, Options]:
    notebook = option(config, "notebook")
    if not notebook:
        raise pytest.UsageError(f"pass the notebook to grade: {flag('notebook')} PATH")
    try:
        options = options_from({f.dest: option(config, f.flag) for f in SHARED_FLAGS})
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    return Path(notebook), options


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "check" not in metafunc.fixturenames:
        return
    path, options = _options(metafunc.config)
    try:
        assignment = options.assignment or detect_assignment(read_notebook(path), path)
        exercises = exercises_for(assignment)
    except (NotebookError, KeyError) as exc:
        # the message names the `autograde` verbs' flag; here it is the namespaced one
        why = str(exc).replace("--assignment", flag("assignment"))
        raise pytest.UsageError(f"cannot grade {path}: {why}") from None
    params = [
        pytest.param(
            (ex.cell, check.name),
            id=f"{ex.cell}: {check.name}",
            marks=[pytest.mark.points(check.points)],
        )
        for ex in exercises
        for check in ex.checks
    ]
    metafunc.parametrize("check", params)


@pytest.fixture(scope="session")
def graded(pytestconfig: pytest.Config) -> GradeResult:
    path, options = _options(pytestconfig)
    try:
        return grade(path, options)
    except (NotebookError, GradingError) as exc:
        pytest.exit(f"cannot grade {path}: {exc}", returncode=2)


def test_check(graded: GradeResult, check: tuple[str, str], request: pytest.FixtureRequest) -> None:
    cell, name = check
    (result,) = [c for c in graded.score.checks if (c.exercise, c.name) == (cell, name)]
    # JUnit <property> elements of the testcase (GitHub test reporters show them), and the
    # plugin's points summary; appended directly, as `record_property` would.
    request.node.user_properties += [("points", result.score), ("max_points", result.max_score)]
    if result.passed:
        return
    text = result.message + (f"\nHint: {result.hint}" if result.hint else "")
    if result.advisory:
        pytest.xfail(f"advice (0 points): {text}")
    pytest.fail(text, pytrace=False)
