"""The type check: `python -m mypy` with the project's configuration (`[tool.mypy]` in
pyproject.toml: default settings on autograder, reference and coursedata; strict on the
course and the judge) reports no error. CI's own step runs the same command."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from notebook_tools import ROOT


@pytest.mark.slow  # mypy on a cold cache: about 20 s on 2 cores
def test_mypy_finds_no_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-pretty", "--show-error-codes"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = done.stdout + done.stderr
    if "No module named mypy" in output:
        pytest.fail("mypy is not installed: install the dev extra (README, Set-up)")
    # it checked the packages (a configuration that checks nothing also exits 0)
    assert re.search(r"\bno issues found in \d{2,} source files\b", output), output
    assert done.returncode == 0, output
