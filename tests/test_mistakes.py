"""mistakes.py: every catalogue entry recognises its mistake from an observation built by
hand (tests/catalogue_cases.py), without a notebook or a kernel (milliseconds each). An
observation is what score.py builds for a failed call: the reference values for real
inputs, what the student's code produced or the error it raised, and the comparison's
verdict.

tests/test_grader_mistakes.py shows the same mistakes end to end, in notebooks.
"""

from __future__ import annotations

import pytest
from catalogue_cases import CASES, CatalogueCase, tensor

from backprop_lab.course import EXERCISES, PROTOCOLS, Case, expected_values, make_inputs
from backprop_lab.judge.mistakes import CATALOGUE, Observation, diagnose, observe
from backprop_lab.judge.readback import Value

# Each family's example: small inputs, no two sizes equal, so that a transposed or
# unsummed result has the wrong shape and a square one cannot hide it.
DIMS = {name: p.maths.example.dims for name, p in PROTOCOLS.items()}
# the graded name each protocol calls, as the exercise table has it (Mse, Relu.backward...)
TARGETS = {c.protocol.name: c.target for e in EXERCISES for c in e.checks}


def observe_case(case: CatalogueCase) -> Observation:
    """The observation score.py builds for `case`: a verdict when the call returned, the
    error when it raised."""
    inputs = make_inputs(case.protocol, Case(DIMS[case.protocol], case.dtype, variant=case.variant),
                         0, case.mistake)  # fmt: skip
    want = expected_values(case.protocol, inputs, (case.value,))
    produced = case.got(
        {k: e.value for k, e in want.items()}, {k: v.double() for k, v in inputs.items()}
    )
    got = {
        k: v if isinstance(v, Value) else tensor(v, case.dtype, "cpu") for k, v in produced.items()
    }
    obs = observe(case.protocol, TARGETS[case.protocol], case.value, inputs=inputs, want=want,
                  got=got, error=case.error, facts=case.facts, dtype=case.dtype,
                  device=case.device)  # fmt: skip
    assert obs.verdict is None or not obs.verdict.passed, "the catalogue reads failed values"
    return obs


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id or c.mistake)
def test_catalogue_names_the_mistake_and_gives_its_hint(case: CatalogueCase) -> None:
    found = diagnose(observe_case(case))
    assert found is not None, f"{case.mistake} not recognised"
    mistake, hint = found
    assert mistake == case.mistake, hint
    assert case.hint in hint


def test_every_catalogue_entry_has_a_case() -> None:
    # a mistake added to the catalogue needs a case in tests/catalogue_cases.py too
    assert {m.id for m in CATALOGUE} == {c.mistake for c in CASES}


def test_a_wrong_value_that_is_no_known_mistake_gets_no_hint() -> None:
    case = CatalogueCase(
        mistake="",
        protocol="lin_grad",
        value="w.g",
        got=lambda want, x: {"w.g": want["w.g"] + 1.0},
        hint="",
    )
    assert diagnose(observe_case(case)) is None
