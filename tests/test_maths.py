"""course/oracle.py: the expected values come from autograd on the lesson's forward
functions, the same with or without the instructor's hand-written `reference` installed,
and where it is installed a disagreement with it is a GraderBug, never a grade."""

from __future__ import annotations

import types

import pytest
import torch

from backprop_lab import reference
from backprop_lab.course import EXERCISES, GraderBug, expected_values, make_inputs, oracle
from backprop_lab.plan.calls import call_key


def every_call():
    for ex in EXERCISES:
        for check in ex.checks:
            for case in check.cases:
                yield check.protocol, check.values, case, call_key(ex, check, case)


def test_the_installed_reference_is_found() -> None:
    assert oracle.hand_written() is reference


def test_without_the_reference_every_expected_value_is_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a student's install (no `reference`) expects is what the instructor's does, on
    every call the exercise table makes, to the last bits that matter (1e-12)."""
    calls = list(every_call())
    with_ref = [expected_values(p, make_inputs(p, case, 7, key), values)
                for p, values, case, key in calls]  # fmt: skip
    monkeypatch.setattr(oracle, "hand_written", lambda: None)
    for (p, values, case, key), want in zip(calls, with_ref, strict=True):
        got = expected_values(p, make_inputs(p, case, 7, key), values)
        assert set(got) == set(want), key
        for name in got:
            a, b = got[name].value, want[name].value
            assert a.dtype == torch.float64 and a.shape == b.shape, (key, name)
            assert torch.allclose(a, b, rtol=1e-12, atol=1e-12), (key, name)
            assert (got[name].free is None) == (want[name].free is None), (key, name)


def test_relu_expects_the_lesson_s_slope_0_at_the_kink_and_allows_0_to_1() -> None:
    from backprop_lab.course import Case

    inputs = make_inputs("relu_grad", Case((4, 6), zeros=True), seed=1, salt="kink")
    (want,) = expected_values("relu_grad", inputs, ("inp.g",)).values()
    zero = inputs["inp"] == 0
    assert want.free is not None and torch.equal(want.free, zero)
    assert (want.value[zero] == 0).all()  # autograd's clamp_min alone would give out.g


def wrong_reference(**wrong) -> types.ModuleType:
    fake = types.ModuleType("reference")
    for name in ("matmul", "mse_grad", "relu_grad", "lin_grad", "forward_and_backward"):
        setattr(fake, name, wrong.get(name, getattr(reference, name)))
    return fake


def mse_grad_without_2(inp, targ):
    reference.mse_grad(inp, targ)
    inp.g = inp.g / 2


def lin_grad_transposed_shape(inp, out, w, b):
    reference.lin_grad(inp, out, w, b)
    w.g = w.g.t().contiguous()


@pytest.mark.parametrize(
    ("protocol", "wrong"),
    [("mse_grad", {"mse_grad": mse_grad_without_2}),
     ("lin_grad", {"lin_grad": lin_grad_transposed_shape}),
     ("matmul", {"matmul": lambda a, b: (a @ b) * 1.001})],
)  # fmt: skip
def test_a_reference_that_disagrees_with_autograd_is_a_grader_bug(
    monkeypatch: pytest.MonkeyPatch, protocol: str, wrong: dict
) -> None:
    [(p, _, case, key)] = [c for c in every_call() if c[0].name == protocol][:1]
    inputs = make_inputs(p, case, 7, key)
    values = tuple(expected_values(p, inputs, ()))  # every value the call produces
    expected_values(p, inputs, values)  # the real reference agrees
    monkeypatch.setattr(oracle, "hand_written", lambda: wrong_reference(**wrong))
    with pytest.raises(GraderBug, match="reference and autograd disagree"):
        expected_values(p, inputs, values)
