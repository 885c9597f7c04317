"""protocols.py: one record per way of calling student code, and the exercise table that
uses them. (That each protocol's name has a recipe in the kernel, and no recipe lacks a
protocol, is in test_kernel_parts.py, beside the kernel's side.)"""

from __future__ import annotations

import subprocess
import sys

import pytest

from autograder.exercises import EXERCISES, Check
from autograder.maths import MATHS
from autograder.protocols import PROTOCOLS, Case, get


def test_every_check_calls_through_a_declared_protocol_graded_on_known_maths() -> None:
    for exercise in EXERCISES:
        for check in exercise.checks:
            assert PROTOCOLS[check.protocol.name] is check.protocol, check.name
    assert {p.maths_name for p in PROTOCOLS.values()} == set(MATHS)


def test_a_check_needs_a_protocol_record_and_a_name_lookup_says_what_exists() -> None:
    with pytest.raises(TypeError, match="Protocol record"):
        Check("x", 1, "lin_grad", "lin_grad", ("w.g",), (Case((2, 3, 4)),))  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="known: matmul, mse_grad"):
        get("lin_grads")
    assert get("lin_class").grad_function("Lin") == "Lin.backward"
    assert get("lin_grad").call_form("lin_grad") == "lin_grad(inp, out, w, b)"


def test_the_table_and_the_pipeline_import_without_torch() -> None:
    # grade() starts the notebook's process first, and it boots (importing torch) while
    # this process imports torch: the overlap needs the table itself to be torch-free.
    code = (
        "import sys, autograder.exercises, autograder.pipeline, autograder.cli; "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
