"""The pytest face of the grader:
`pytest --pyargs backprop_lab.verbs.grading --autograde-notebook NB`.

A thin layer over `pipeline.grade`: the notebook is graded once per session, and each
check of the exercise table becomes one test (so `--junitxml` gives one testcase per
check), carrying its points in a `points` marker and as JUnit properties (`points`,
`max_points` per testcase; their totals on the test suite, and in the terminal summary).
Registered as a `pytest11` entry point, so it works from any folder once backprop-lab is
installed; and so it is loaded into every pytest run in that environment, other projects'
included. Its options are therefore all namespaced, flag and destination both
(`--autograde-device` into `autograde_device`): a project whose conftest.py adds its own
`--device` or `--seed` must not fail with "option dest 'device' already used", and it does
nothing at all unless `--autograde-notebook` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from ..pipeline import SHARED_FLAGS

__all__ = [
    "PREFIX",
    "flag",
    "option",
    "pytest_addoption",
    "pytest_configure",
    "pytest_report_header",
    "pytest_sessionstart",
]

PREFIX = "autograde"


def flag(name: str) -> str:
    """The pytest form's flag for a grading option: `seed` -> `--autograde-seed`."""
    return f"--{PREFIX}-{name.removeprefix('--')}"


def _dest(name: str) -> str:
    return flag(name).removeprefix("--").replace("-", "_")


def option(config: pytest.Config, name: str) -> Any:
    """The value of the grading option `name` (`notebook`, `seed`, `require-sandbox`...)."""
    return config.getoption(_dest(name), None)


class _Points:
    """The session's points, from the checks' testcases: in the terminal summary and as
    the JUnit test suite's properties (`points`, `max_points`)."""

    def __init__(self) -> None:
        self.earned = self.possible = 0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        if report.when == "call" and "max_points" in props:
            # ints, as grading/test_checks.py writes them (pytest types the values `object`)
            self.earned += int(cast(int, props["points"]))
            self.possible += int(cast(int, props["max_points"]))

    @pytest.hookimpl(tryfirst=True)  # before junitxml writes its file
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from _pytest.junitxml import xml_key

        xml = session.config.stash.get(xml_key, None)
        if xml is not None and self.possible:
            xml.add_global_property("points", self.earned)
            xml.add_global_property("max_points", self.possible)

    def pytest_terminal_summary(self, terminalreporter, config: pytest.Config) -> None:
        if self.possible:
            notebook = option(config, "notebook")
            terminalreporter.write_line(
                f"autograde: {self.earned}/{self.possible} points for {notebook}"
            )


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("autograde", "grading a backprop-lab notebook")
    group.addoption(flag("notebook"), dest=_dest("notebook"), default=None,
                    help="the notebook to grade")  # fmt: skip
    for f in SHARED_FLAGS:
        group.addoption(flag(f.flag), dest=_dest(f.flag), **f.addoption_kwargs())


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "points(n): how many points a grading check is worth")
    if option(config, "notebook"):
        config.pluginmanager.register(_Points(), "autograde-points")


def pytest_sessionstart(session: pytest.Session) -> None:
    """A notebook that cannot be graded (not a notebook, too large, too deep, too many
    cells) ends the session before collection with the reason and what to do, as `check`
    says it: collecting would show where pytest was, not what is wrong with the file."""
    notebook = option(session.config, "notebook")
    if not notebook:
        return
    from ..plan.notebook import NotebookError, read_notebook

    try:
        read_notebook(Path(notebook))
    except NotebookError as exc:
        pytest.exit(f"cannot grade {notebook}: {exc}", returncode=2)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Like pytest-randomly's seed: how this run's student code is confined, up front."""
    if not option(config, "notebook"):
        return []
    from ..run.sandbox import describe

    warning = describe()
    return [f"autograde: {'warning: ' + warning if warning else 'student code sandboxed'}"]
