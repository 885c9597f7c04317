"""backprop_lab/course: the families, each complete, and the one table built from them.
(That each protocol's recipe names only inputs its maths makes is in test_kernel_parts.py,
beside the kernel's side.)"""

from __future__ import annotations

import subprocess
import sys

import pytest

from backprop_lab.course import (
    EXERCISES,
    FAMILIES,
    MATHS,
    PROTOCOLS,
    Case,
    Check,
    Maths,
    expected_values,
    get,
    make_inputs,
)


def test_every_check_calls_through_a_declared_protocol_graded_on_known_maths() -> None:
    for exercise in EXERCISES:
        for check in exercise.checks:
            assert PROTOCOLS[check.protocol.name] is check.protocol, check.name
    assert {p.maths.name for p in PROTOCOLS.values()} == set(MATHS)


@pytest.mark.parametrize("family", FAMILIES, ids=[f.__name__.split(".")[-1] for f in FAMILIES])
def test_each_family_is_complete(family) -> None:
    """A family holds its maths, its protocols (each graded on that maths), its exercises
    and their checks: every check's case can be drawn, the oracle answers every value the
    check compares, in float64, and the instructor's reference (installed here) agrees."""
    maths = [v for v in vars(family).values() if isinstance(v, Maths)]
    assert maths and family.__doc__
    protocols = {c.protocol for e in EXERCISES for c in e.checks if c.protocol.maths in maths}
    assert protocols, "a family whose maths no check uses"
    for exercise in EXERCISES:
        for check in exercise.checks:
            if check.protocol not in protocols:
                continue
            for case in check.cases:
                inputs = make_inputs(check.protocol, case, 0, f"{exercise.cell}/{check.name}")
                want = expected_values(check.protocol, inputs, check.values)
                for value in check.values:
                    assert want[value].value.dtype.is_floating_point, (check.name, value)


def test_the_table_is_the_families_in_notebook_order() -> None:
    assert tuple(e for f in FAMILIES for e in f.EXERCISES) == EXERCISES
    cells = [e.cell for e in EXERCISES]
    assert len(cells) == len(set(cells)), "two exercises of one cell"


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
        "import sys, backprop_lab.course, backprop_lab.pipeline, backprop_lab.verbs.cli; "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
