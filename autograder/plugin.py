"""The pytest face of the grader: `pytest --pyargs autograder.grading --notebook NB`.

A thin layer over `pipeline.grade`: the notebook is graded once per session, and each
check of the exercise table becomes one test (so `--junitxml` gives one testcase per
check), carrying its points in a `points` marker. Registered as a `pytest11` entry point,
so it works from any folder once backprop-lab is installed.
"""

from __future__ import annotations

import pytest

from .pipeline import SHARED_FLAGS

__all__ = ["pytest_addoption", "pytest_configure", "pytest_report_header"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("autograde", "grading a backprop-lab notebook")
    group.addoption("--notebook", default=None, help="the notebook to grade")
    for flag, kwargs in SHARED_FLAGS:
        group.addoption(flag, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "points(n): how many points a grading check is worth")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Like pytest-randomly's seed: how this run's student code is confined, up front."""
    if not config.getoption("notebook", None):
        return []
    from .sandbox import describe

    warning = describe()
    return [f"autograde: {'warning: ' + warning if warning else 'student code sandboxed'}"]
