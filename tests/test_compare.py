"""compare.py: plain tensors in, verdicts out (no kernel, milliseconds).

The two failure modes the comparison is built to avoid are shown side by side with the
helpers that have them: an elementwise relative error that fails a correct gradient, and
an absolute epsilon that passes a factor-2 bug."""

from __future__ import annotations

import pytest
import torch

from backprop_lab.course import Case, Expected, expected_values, make_inputs
from backprop_lab.judge.compare import TOLERANCE, compare, norm_relative_error
from backprop_lab.judge.mistakes import Observation, diagnose
from backprop_lab.judge.readback import Value


def tensor_value(t: torch.Tensor, device: str = "cpu") -> Value:
    return Value("tensor", t, str(t.dtype).removeprefix("torch."), device)


def lesson_x_grad(n: int = 50_000, n_in: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """A correct float32 `x.g` of a small MLP and its float64 reference: entries ~1/N."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, n_in, generator=gen, dtype=torch.float64)
    w = torch.randn(n_in, 1, generator=gen, dtype=torch.float64)
    targ = torch.randn(n, generator=gen, dtype=torch.float64)
    want = 2 * ((x @ w)[:, 0] - targ)[:, None] / n @ w.t()
    xf, wf, tf = x.float(), w.float(), targ.float()
    got = 2 * ((xf @ wf)[:, 0] - tf)[:, None] / n @ wf.t()
    return got, want


def test_shape_is_compared_before_values_so_a_transposed_w2_g_cannot_broadcast() -> None:
    want = torch.randn(50, 1, dtype=torch.float64)
    got = want.t().float()  # (1, 50): broadcasting (1,50) - (50,1) would give (50, 50)
    verdict = compare("w2.g", tensor_value(got), Expected(want), dtype="float32", device="cpu")
    assert not verdict.passed
    assert verdict.reason == "shape"
    assert "(1, 50)" in verdict.message and "(50, 1)" in verdict.message


def test_correct_float32_gradient_with_near_zero_entries_passes() -> None:
    got, want = lesson_x_grad()
    # CS231n's elementwise relative error fails this correct gradient...
    elementwise = (got.double() - want).abs() / (got.double().abs() + want.abs()).clamp_min(1e-8)
    assert elementwise.max().item() > TOLERANCE["float32"]
    # ...the norm-relative error does not.
    verdict = compare("inp.g", tensor_value(got), Expected(want), dtype="float32", device="cpu")
    assert verdict.passed, verdict.message
    assert verdict.rel_error < 1e-6


def test_factor_two_bug_in_small_entries_fails() -> None:
    got, want = lesson_x_grad()
    bug = got / 2  # mse_grad without the 2
    # an absolute epsilon (fastcore's test_close, eps=1e-3) passes it: the entries are ~1/N
    assert (bug.double() - want).abs().max().item() < 1e-3
    verdict = compare("inp.g", tensor_value(bug), Expected(want), dtype="float32", device="cpu")
    assert not verdict.passed and verdict.reason == "values"
    assert verdict.rel_error == pytest.approx(0.5, rel=1e-3)
    assert "worst element" in verdict.message


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_and_inf_fail(bad: float) -> None:
    want = torch.ones(3, 2, dtype=torch.float64)
    got = torch.ones(3, 2)
    got[1, 1] = bad
    verdict = compare("w.g", tensor_value(got), Expected(want), dtype="float32", device="cpu")
    assert not verdict.passed and verdict.reason == "nan"
    assert "(1, 1)" in verdict.message


def test_dtype_must_be_kept() -> None:
    want = torch.ones(2, 2, dtype=torch.float64)
    verdict = compare("return", tensor_value(torch.ones(2, 2)), Expected(want),
                      dtype="float64", device="cpu")  # fmt: skip
    assert not verdict.passed and verdict.reason == "dtype"


def test_device_must_be_kept() -> None:
    want = torch.ones(2, 2, dtype=torch.float64)
    got = tensor_value(torch.ones(2, 2), device="cpu")
    verdict = compare("return", got, Expected(want), dtype="float32", device="cuda")
    assert not verdict.passed and verdict.reason == "device"
    assert "cuda" in verdict.message


def test_device_mistake_gets_its_hint_without_a_gpu() -> None:
    # The catalogue's device entry, from both ways it shows: a result left on the CPU,
    # and torch's error when a CPU tensor meets the GPU inputs (graded on a GPU in
    # test_feedback.py; here the observation is built by hand).
    want = {"return": Expected(torch.ones(2, 2, dtype=torch.float64))}
    got = tensor_value(torch.ones(2, 2), device="cpu")
    verdict = compare("return", got, want["return"], dtype="float32", device="cuda")
    inputs = {"a": torch.ones(2, 2, dtype=torch.float64)}
    left = Observation("matmul", "matmul", "return", verdict, None, {"return": got}, want, inputs)
    error = {"type": "RuntimeError", "message": "Expected all tensors to be on the same "
             "device, but found at least two devices, cuda:0 and cpu!"}  # fmt: skip
    mixed = Observation("matmul", "matmul", "return", None, error, {}, want, inputs)
    for obs in (left, mixed):
        mistake, hint = diagnose(obs)
        assert mistake == "device" and "device=inp.device" in hint


@pytest.mark.parametrize(
    ("value", "reason", "phrase"),
    [
        (Value("missing"), "missing", "was not set"),
        (Value("none"), "none", "None"),
        (Value("sequence", type="tuple", items=(Value("none"),)), "not-tensor", "tuple of 1"),
        (Value("other", type="float", repr="0.5"), "not-tensor", "float (0.5)"),
    ],
)
def test_non_tensors_fail_with_a_message(value: Value, reason: str, phrase: str) -> None:
    verdict = compare("w.g", value, Expected(torch.zeros(2)), dtype="float32", device="cpu")
    assert not verdict.passed and verdict.reason == reason
    assert phrase in verdict.message


def relu_zero_case() -> tuple[dict[str, torch.Tensor], Expected]:
    inputs = make_inputs("relu_grad", Case((4, 6), zeros=True), seed=1, salt="kink")
    assert (inputs["inp"] == 0).any()
    (want,) = expected_values("relu_grad", inputs, ("inp.g",)).values()
    return inputs, want


@pytest.mark.parametrize("slope", [0.0, 0.5, 1.0])
def test_any_subgradient_in_0_1_at_relu_kink_passes(slope: float) -> None:
    inputs, want = relu_zero_case()
    inp, out_g = inputs["inp"], inputs["out.g"]
    got = torch.where(inp > 0, out_g, torch.where(inp == 0, slope * out_g, 0 * out_g))
    verdict = compare("inp.g", tensor_value(got), want, dtype="float32", device="cpu")
    assert verdict.passed, verdict.message


@pytest.mark.parametrize("slope", [-1.0, 2.0])
def test_slope_outside_0_1_at_relu_kink_fails(slope: float) -> None:
    inputs, want = relu_zero_case()
    inp, out_g = inputs["inp"], inputs["out.g"]
    got = torch.where(inp > 0, out_g, torch.where(inp == 0, slope * out_g, 0 * out_g))
    verdict = compare("inp.g", tensor_value(got), want, dtype="float32", device="cpu")
    assert not verdict.passed and verdict.reason == "kink"
    assert "exactly 0" in verdict.message


def test_norm_relative_error_of_a_scale_factor() -> None:
    want = torch.randn(10, 3, dtype=torch.float64)
    assert norm_relative_error(3 * want, want) == pytest.approx(2.0)
    assert norm_relative_error(want, torch.zeros(10, 3)) == pytest.approx(want.norm().item())
