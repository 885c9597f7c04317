"""The grader's inputs expose bugs that friendlier inputs hide: every exercise runs on a
batch of one, a batch of several and non-square shapes; relu meets exact zeros; matmul
meets a single row and a single column. And the proof that it matters: bugs that a
square-only or batch-of-one suite would pass fail on the grader's cases. (Pure: the
functions below are the tests' own, compared in this process with the same reference
and comparison the grader uses.)"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from backprop_lab.course import EXERCISES, RELU, Case, exercises_for, expected_values, make_inputs
from backprop_lab.judge.compare import compare
from backprop_lab.judge.readback import Value


def batch(protocol: str, case: Case) -> int:
    return case.dims[0]  # every protocol's first dimension is the batch (matmul: a's rows)


def square(protocol: str, case: Case) -> bool:
    """Could a transposed or mixed-up dimension go unnoticed on this case?"""
    dims = case.dims
    if protocol == "matmul":
        return len(set(dims)) < 3
    if protocol.startswith("mse"):
        return False  # (N, 1) against (N,): the shape bugs are about N > 1, checked above
    return dims[0] == dims[1] or (len(dims) > 2 and dims[1] == dims[2])


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.cell)
def test_every_exercise_sees_batch_one_batch_many_and_non_square(exercise) -> None:
    cases = [(c.protocol.name, case) for c in exercise.checks if not c.advisory for case in c.cases]
    assert any(batch(p, case) == 1 for p, case in cases), "no batch of one"
    assert any(batch(p, case) > 1 for p, case in cases), "no batch of several"
    assert any(not square(p, case) for p, case in cases), "only square shapes"
    every = [case for c in exercise.checks for case in c.cases]  # advisory ones too
    assert any(case.dtype == "float64" for case in every), "float32 only"


def test_relu_meets_exact_zeros_and_matmul_a_row_and_a_column() -> None:
    relu_cases = [case for e in exercises_for("backprop") for c in e.checks
                  if c.protocol.maths is RELU for case in c.cases]  # fmt: skip
    assert any(case.zeros for case in relu_cases)
    zeros_case = next(c for c in relu_cases if c.zeros)
    inputs = make_inputs("relu_grad", zeros_case, 0, "zeros")
    assert (inputs["inp"] == 0).any(), "the zeros case has no exact zero"
    matmul_cases = [case for e in exercises_for("matmul") for c in e.checks for case in c.cases]
    assert any(case.dims[0] == 1 for case in matmul_cases), "no single-row a"
    assert any(case.dims[2] == 1 for case in matmul_cases), "no single-column b"


def passes(protocol: str, value: str, cases, run: Callable[[dict], torch.Tensor]) -> bool:
    """Does `run` (inputs -> the value) match the reference on every case?"""
    for i, case in enumerate(cases):
        inputs = make_inputs(protocol, case, 1, f"coverage/{i}")
        want = expected_values(protocol, inputs, (value,))[value]
        got = run({k: v.clone() for k, v in inputs.items()})
        verdict = compare(value, Value("tensor", got, case.dtype, "cpu"), want,
                          dtype=case.dtype, device="cpu")  # fmt: skip
        if not verdict.passed:
            return False
    return True


def grader_cases(protocol: str) -> tuple[Case, ...]:
    return tuple(
        case for e in EXERCISES for c in e.checks if c.protocol.name == protocol and not c.advisory
        for case in c.cases
    )  # fmt: skip


def matmul_zeros_ac_bc(t: dict) -> torch.Tensor:
    a, b = t["a"], t["b"]
    (ar, ac), (_, bc) = a.shape, b.shape
    c = torch.zeros(ac, bc, dtype=a.dtype)  # the bug: ac for ar
    for i in range(ar):
        c[i] = (a[i].unsqueeze(-1) * b).sum(0)
    return c


def mse_grad_without_squeeze(t: dict) -> torch.Tensor:
    inp, targ = t["inp"], t["targ"]
    inp.g = 2.0 * (inp - targ) / inp.shape[0]  # the bug: (N, 1) - (N,) is (N, N)
    return inp.g


def mse_grad_right(t: dict) -> torch.Tensor:
    inp, targ = t["inp"], t["targ"]
    inp.g = 2.0 * (inp[:, 0] - targ).unsqueeze(-1) / inp.shape[0]
    return inp.g


def test_square_only_inputs_would_pass_zeros_ac_bc_and_the_grader_does_not() -> None:
    square_only = (Case((3, 3, 3)), Case((4, 4, 2)), Case((5, 5, 5), "float64"))
    assert passes("matmul", "return", square_only, matmul_zeros_ac_bc)
    assert not passes("matmul", "return", grader_cases("matmul"), matmul_zeros_ac_bc)


def test_batch_one_inputs_would_pass_mse_without_squeeze_and_the_grader_does_not() -> None:
    batch_one = (Case((1,)), Case((1,), "float64"))
    assert passes("mse_grad", "inp.g", batch_one, mse_grad_without_squeeze)
    assert not passes("mse_grad", "inp.g", grader_cases("mse_grad"), mse_grad_without_squeeze)
    # and the right answer passes both, so the difference is the bug's
    assert passes("mse_grad", "inp.g", batch_one + grader_cases("mse_grad"), mse_grad_right)
