"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from browser_tools import chromium_path
from notebook_tools import OFFLINE_STARTUP


@pytest.fixture
def offline_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Kernels started while this fixture is active cannot reach the network."""
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
    path = chromium_path()
    if path is None:
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def sandboxed() -> dict:
    """What this machine isolates student code with (autograder.run.sandbox.probe). Tests of
    the sandbox need user namespaces and Landlock: skipped where the machine has neither,
    except in CI (CI set), which must run them."""
    from autograder.run import sandbox

    found = sandbox.probe()
    if not (found["namespaces"] and found["landlock"]):
        message = f"this machine cannot sandbox kernels ({sandbox.describe(found)})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found
