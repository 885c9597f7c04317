"""Fixtures shared by the test modules, and how the tests share two cores.

`python -m pytest` runs the tests on a pytest-xdist worker per core, two on this project's
machine (pyproject.toml's addopts: `-n auto --dist loadgroup --no-loadscope-reorder`).
Tests that read one expensive result (a class graded once, a release built once) carry
the same `xdist_group` mark and run on one worker; every other test goes to whichever
worker is free. The workers take the tests in the order `pytest_collection_modifyitems`
below leaves them: the longest first, so that neither waits alone at the end. A test
marked `alone` runs while no other test does (see `pytest_runtest_protocol`). `-n 0` runs
everything in one process, as before."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# What the fixtures below need is imported inside them: pytest-xdist's controller loads
# this file too, and runs no test (nbformat and papermill took it 3 s on 2 cores).

# The work that takes longest on two cores, longest first: an `xdist_group` name or a test
# file's path, as measured with --durations (each group and file in total). The tests of
# a file that has no group go one by one to whichever worker is free; the rest of the
# tests follow, in file order (short ones: neither worker waits long for the other).
LONGEST_FIRST = (
    "hostile-class",  # test_hostile.py: 62 notebooks, attackers among them
    "course",  # the generated course, the class of test_grader_mistakes and test_one_verdict
    "tests/test_term.py",
    "tests/test_hostile.py",
    "tests/test_class_under_attack.py",
    "tests/test_types.py",  # one test: mypy on the whole project
    "tests/test_batch.py",
    "tests/test_journey.py",
    "tests/test_commands_as_typed.py",
    "release",
    "tests/test_solutions.py",
    "gradescope",
    "tests/test_forkserver.py",
    "tests/test_feedback.py",
    "engine",
    "tests/test_gradebook_term.py",
    "tests/test_untrusted_input.py",
    "tests/test_ci.py",
    "sandbox-modes",
    "tests/test_gradwatch.py",
    "tests/test_pictures.py",
    "cleanroom-class",
    "tests/test_sandbox.py",
)


def _rank(item: pytest.Item) -> int:
    """Where `item` goes: by LONGEST_FIRST, then the rest, then the tests marked `alone`
    (last, where the other worker is only finishing short tests when one starts)."""
    if item.get_closest_marker("alone"):
        return len(LONGEST_FIRST) + 1
    names = [str(m.args[0]) for m in item.iter_markers("xdist_group") if m.args]
    for rank, key in enumerate(LONGEST_FIRST):
        if key in names or item.nodeid.startswith(f"{key}::"):
            return rank
    return len(LONGEST_FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: within a rank, the order of collection


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: a worker per core this process may use, at most 4 (each worker's
    gradings run two or three notebook processes of their own)."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


def _shared_folder(config: pytest.Config) -> Path | None:
    """A folder all the workers of this run share (their base temp's parent), or None
    when the tests run in one process."""
    if not hasattr(config, "workerinput") or not config.option.basetemp:
        return None
    return Path(config.option.basetemp).parent


@contextlib.contextmanager
def _flock(path: Path, how: int) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, how)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """A test marked `alone` (its attacks, should the sandbox fail, would reach every
    process on the machine) runs, its fixtures included, while no other worker runs a
    test: every test holds the run's lock shared, an `alone` test holds it exclusively.
    Each takes the turnstile first, so that a waiting `alone` test is not overtaken."""
    folder = _shared_folder(item.config)
    if folder is None:
        return (yield)
    how = fcntl.LOCK_EX if item.get_closest_marker("alone") else fcntl.LOCK_SH
    with contextlib.ExitStack() as held:
        with _flock(folder / "turnstile.lock", fcntl.LOCK_EX):
            held.enter_context(_flock(folder / "tests.lock", how))
        return (yield)


@pytest.fixture
def offline_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Kernels started while this fixture is active cannot reach the network."""
    from notebook_tools import OFFLINE_STARTUP

    ipython_dir = tmp_path / "ipython"
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-offline.py").write_text(OFFLINE_STARTUP)
    monkeypatch.setenv("IPYTHONDIR", str(ipython_dir))
    return ipython_dir


@pytest.fixture
def chromium() -> str:
    """Debian's chromium, for the tests that screenshot a report. Skipped where it is not
    installed, except in CI (CI set), where a skip would hide that nothing was checked."""
    from browser_tools import chromium_path

    path = chromium_path()
    if path is None:
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def sandboxed() -> dict:
    """What this machine isolates student code with (backprop_lab.run.sandbox.probe). Tests of
    the sandbox need user namespaces and Landlock: skipped where the machine has neither,
    except in CI (CI set), which must run them."""
    from backprop_lab.run import sandbox

    found = sandbox.probe()
    if not (found["namespaces"] and found["landlock"]):
        message = f"this machine cannot sandbox kernels ({sandbox.describe(found)})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def course_class(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The session's class, graded once (tests/course_class.py)."""
    from course_class import grade_class

    return grade_class(request.session.items, tmp_path_factory.mktemp("course-class"))


@pytest.fixture(scope="session")
def generated_course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the course in which `nbgrader generate_assignment` ran for every
    assignment (backprop_lab.verbs.assignments.regenerate), once a session: its `assignments/`
    (test_assignments.py compares them with the committed ones) and its gradebook, which
    knows them (test_one_verdict.py autogrades in copies of it). Read it, never write it."""
    from notebook_tools import ROOT

    from backprop_lab.verbs.assignments import regenerate

    scratch = tmp_path_factory.mktemp("generated-course")
    regenerate(ROOT, scratch)
    return scratch
