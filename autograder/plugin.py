"""The pytest face of the grader: `pytest --pyargs autograder.grading --notebook NB`.

A thin layer over `pipeline.grade`: the notebook is graded once per session, and each
check of the exercise table becomes one test (so `--junitxml` gives one testcase per
check), carrying its points in a `points` marker and as JUnit properties (`points`,
`max_points` per testcase; their totals on the test suite, and in the terminal summary).
Registered as a `pytest11` entry point, so it works from any folder once backprop-lab is
installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .pipeline import SHARED_FLAGS

__all__ = ["pytest_addoption", "pytest_configure", "pytest_report_header", "pytest_sessionstart"]


class _Points:
    """The session's points, from the checks' testcases: in the terminal summary and as
    the JUnit test suite's properties (`points`, `max_points`)."""

    def __init__(self) -> None:
        self.earned = self.possible = 0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        if report.when == "call" and "max_points" in props:
            self.earned += int(props["points"])
            self.possible += int(props["max_points"])

    @pytest.hookimpl(tryfirst=True)  # before junitxml writes its file
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from _pytest.junitxml import xml_key

        xml = session.config.stash.get(xml_key, None)
        if xml is not None and self.possible:
            xml.add_global_property("points", self.earned)
            xml.add_global_property("max_points", self.possible)

    def pytest_terminal_summary(self, terminalreporter, config: pytest.Config) -> None:
        if self.possible:
            notebook = config.getoption("notebook", None)
            terminalreporter.write_line(
                f"autograde: {self.earned}/{self.possible} points for {notebook}"
            )


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("autograde", "grading a backprop-lab notebook")
    group.addoption("--notebook", default=None, help="the notebook to grade")
    for flag, kwargs in SHARED_FLAGS:
        group.addoption(flag, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "points(n): how many points a grading check is worth")
    if config.getoption("notebook", None):
        config.pluginmanager.register(_Points(), "autograde-points")


def pytest_sessionstart(session: pytest.Session) -> None:
    """A notebook that cannot be graded (not a notebook, too large, too deep, too many
    cells) ends the session before collection with the reason and what to do, as `check`
    says it: collecting would show where pytest was, not what is wrong with the file."""
    notebook = session.config.getoption("notebook", None)
    if not notebook:
        return
    from .notebook import NotebookError, read_notebook

    try:
        read_notebook(Path(notebook))
    except NotebookError as exc:
        pytest.exit(f"cannot grade {notebook}: {exc}", returncode=2)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Like pytest-randomly's seed: how this run's student code is confined, up front."""
    if not config.getoption("notebook", None):
        return []
    from .sandbox import describe

    warning = describe()
    return [f"autograde: {'warning: ' + warning if warning else 'student code sandboxed'}"]
