"""Properties of the reference implementation, written once and run twice.

Each `*_property(impl, device, config)` factory returns a Hypothesis test that checks one
function (or class) of `impl` against torch autograd. `test_reference.py` runs them on the
real `reference` package and they must pass; `test_reference_mutants.py` runs the same
properties on deliberately broken copies and they must fail. A property that never fails
proves nothing, so the second half is what makes the first half worth trusting.

The functions under test are looked up at call time through the submodules
(`backprop_lab.reference.backprop.lin_grad`, not `reference.lin_grad`), so a monkeypatched submodule
reaches the properties exactly as it reaches `forward_and_backward` and the classes, which
call the module-level functions too. `test_reference.py` checks that the package exports
are those same objects.

The oracle is always autograd on fresh float64 CPU leaves holding the same values as the
inputs (float32 -> float64 is exact). Results are compared by `assert_matches`: exact
checks first (a Tensor, the same shape before any arithmetic so (1, 50) never broadcasts
against (50, 1), the input's dtype, the input's device), then the norm-relative error.
"""

from __future__ import annotations

import functools
import importlib
import math
import operator
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

import torch
from hypothesis import Phase, assume, example, given, settings
from hypothesis import strategies as st
from torch import Tensor

Property = Callable[[], None]
PropertyFactory = Callable[..., Property]
F = TypeVar("F", bound=Callable[..., Any])

# What test_reference.py runs: 60 random cases per property on top of the explicit ones
# below (batch 1, width 1, non-square, dead units); no example database, so a run never
# depends on what an earlier run (or a mutant run) stored.
REFERENCE_SETTINGS = settings(max_examples=60, deadline=None, database=None)

# What the mutant runs use: generate only (no shrinking, which costs seconds and is only
# needed to read a failure), stop at the first failure, and report it as the plain
# AssertionError it is rather than an ExceptionGroup of several.
# The explicit examples are skipped there, so each mutant must be found by random cases.
MUTANT_SETTINGS = settings(
    REFERENCE_SETTINGS, max_examples=100, phases=[Phase.generate], report_multiple_bugs=False
)

# ---------------------------------------------------------------------------------------
# Tolerances.
#
# Unit roundoff u: float32 2**-24 ~ 6.0e-8, float64 2**-53 ~ 1.1e-16. Every value here is
# a short chain of sums of at most a few dozen terms (sizes <= 8), and on well-conditioned
# random data a correct float32 result is measured 1e-7..1e-6 off a float64 oracle (1e-16
# ..1e-14 for float64). The norm-relative tolerances sit 10-100x above that and about five
# (float32) or eleven (float64) orders of magnitude below the smallest real mistake: a
# factor k is off by |k - 1| (0.5 for a missing 2, 1.0 for an extra one), a sign error by
# 2, a transposed, unmasked or unsummed gradient by O(1) or a shape error.
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}
UNIT_ROUNDOFF = {torch.float32: 2.0**-24, torch.float64: 2.0**-53}
#
# A fixed relative tolerance alone is not enough. With random signs a sum can cancel: the
# b2 gradient is one number, (2/N) sum_n (out_n - targ_n), and x.g at N = n_in = 1 is one
# dot product. When the exact result is small next to its terms, float32 rounding of the
# terms (which autograd's own float32 pass suffers as much as the reference) is large next
# to the result: measured on 10,000 random float32 networks of these shapes, 0.26 % of
# the correct forward_and_backward results are off by more than 1e-5 (the worst by
# 3.6e-4), so with 60 cases per property a fixed 1e-5 fails a correct reference in about
# one run of ten. So the allowed error is the larger of the tolerance above
# and the first-order rounding-error bound (Higham, "Accuracy and Stability of Numerical
# Algorithms", 2nd ed., sections 3.1 and 3.5): an inner product of k terms, summed in any
# order, is off by at most gamma_k ~ k*u times the same inner product of absolute values,
# and in a chain of such steps the gammas add while the absolute-value computation
# carries them along. `magnitude` is that absolute-value computation (the same formula on
# |inputs|, with subtractions turned into additions and the relu mask frozen), `terms`
# over-counts the gammas on the longest path, and the factor 2 covers the oracle's own
# rounding (float64 runs) and second-order terms. On well-conditioned data the bound is
# below the fixed tolerance; it only takes over when cancellation makes the exact result
# tiny, which a real mistake (off by O(1) of the result) cannot exploit in practice.
# Measured over 2,000 cases per property, no correct result used more than 6 % of its
# allowance, and no mutant in test_reference_mutants.py gets through.
# The bound assumes the float32 and float64 passes agree on every relu mask; they do at
# planted exact zeros (0.0 is exact in both) and a random pre-activation within rounding
# distance of 0 has probability ~1e-7 per entry.
# ---------------------------------------------------------------------------------------


def rounding_bound(magnitude: Tensor, terms: int, dtype: torch.dtype) -> float:
    return 2.0 * terms * UNIT_ROUNDOFF[dtype] * magnitude.double().norm().item()


def assert_matches(
    name: str,
    got: object,
    want: Tensor,
    *,
    like: Tensor,
    magnitude: Tensor | None = None,
    terms: int = 0,
) -> None:
    """`got` (from the implementation) against `want` (float64 oracle). `like` is an input
    of the call: `got` must have its dtype and device."""
    if not isinstance(got, Tensor):
        raise AssertionError(f"{name}: expected a torch.Tensor, got {type(got).__name__}")
    # Exact checks before any arithmetic: (1, 50) - (50, 1) would broadcast to (50, 50).
    if got.shape != want.shape:
        raise AssertionError(f"{name}: shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    if got.dtype != like.dtype:
        raise AssertionError(f"{name}: dtype {got.dtype}, expected {like.dtype} (the input's)")
    if got.device != like.device:
        raise AssertionError(f"{name}: device {got.device}, expected {like.device} (the input's)")
    got64 = got.detach().to("cpu", torch.float64)
    want64 = want.detach().to("cpu", torch.float64)
    err = (got64 - want64).norm().item()
    scale = want64.norm().item()
    # Exact-zero guard: both zero (a dead relu unit's gradient) is a match, not 0/0.
    rel = 0.0 if err == 0.0 else (err / scale if scale > 0 else math.inf)
    bound = 0.0 if magnitude is None else rounding_bound(magnitude, terms, like.dtype)
    allowed = max(TOLERANCE[like.dtype] * scale, bound)
    if not math.isfinite(err) or err > allowed:
        allowed_rel = allowed / scale if scale > 0 else 0.0
        raise AssertionError(
            f"{name}: norm-relative error {rel:.3g} vs float64 autograd "
            f"(allowed {allowed_rel:.1e}; |want| = {scale:.3g})"
        )


def call(label: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run the implementation; anything it raises becomes an AssertionError, so a mutant
    that crashes fails the property the same way as one that computes a wrong number."""
    try:
        return fn(*args)
    except Exception as e:
        raise AssertionError(f"{label}: implementation raised {type(e).__name__}: {e}") from e


def grad_of(t: Tensor, name: str) -> Tensor:
    g = getattr(t, "g", None)
    if g is None:
        raise AssertionError(f"{name}.g was not set by the backward pass")
    return g


@contextmanager
def unchanged(**tensors: Tensor) -> Iterator[None]:
    """The implementation must not write into its inputs (or into the `.g` it reads)."""
    before = {name: t.detach().clone() for name, t in tensors.items()}
    yield
    for name, t in tensors.items():
        if not torch.equal(t.detach(), before[name]):
            raise AssertionError(f"the implementation modified its input {name} in place")


def submodule(impl: ModuleType, name: str) -> ModuleType:
    # Not getattr(impl, name): the package re-exports the function `matmul`, which hides
    # the submodule `backprop_lab.reference.matmul` behind it.
    return importlib.import_module(f"{impl.__name__}.{name}")


# ---------------------------------------------------------------------------------------
# The oracle: autograd in float64 on the CPU.
# ---------------------------------------------------------------------------------------


def as64(t: Tensor) -> Tensor:
    """The same values as a new float64 CPU tensor (float32 -> float64 is exact)."""
    return t.detach().to("cpu", torch.float64).clone()


def autograd(
    fn: Callable[..., Tensor], *inputs: Tensor, grad_output: Tensor | None = None
) -> tuple[Tensor, list[Tensor]]:
    """fn's value and the gradients of its inputs, by autograd on float64 leaves."""
    leaves = [as64(t).requires_grad_(True) for t in inputs]
    value = fn(*leaves)
    value.backward(None if grad_output is None else as64(grad_output))
    grads = [leaf.grad if leaf.grad is not None else torch.zeros_like(leaf) for leaf in leaves]
    return value.detach(), grads


def masked_relu(x: Tensor) -> Tensor:
    # Autograd differentiates this as the mask (x > 0): slope 0 at exactly 0, the
    # reference's subgradient. Autograd of clamp_min(0) takes 1 there instead; both are
    # valid, see test_reference.py.
    return x * (x > 0).to(x.dtype)


def clamp_relu(x: Tensor) -> Tensor:
    return x.clamp_min(0.0)


def mlp_loss(
    x: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    *,
    targ: Tensor,
    relu: Callable[[Tensor], Tensor] = masked_relu,
    residual: Callable[[Tensor, Tensor], Tensor] = operator.sub,
) -> Tensor:
    """The lesson's lin -> relu -> lin -> mse, written directly for autograd."""
    out = relu(x @ w1 + b1) @ w2 + b2
    return residual(out[:, 0], targ).pow(2).mean()


def mlp_oracle(
    x: Tensor,
    targ: Tensor,
    params: tuple[Tensor, Tensor, Tensor, Tensor],
    relu: Callable[[Tensor], Tensor] = masked_relu,
) -> tuple[Tensor, list[Tensor], Tensor, list[Tensor]]:
    """Loss and gradients (x, w1, b1, w2, b2), and their absolute-value companions."""
    loss, grads = autograd(functools.partial(mlp_loss, targ=as64(targ), relu=relu), x, *params)
    # Magnitudes: the same chain on |inputs|, the residual's subtraction turned into an
    # addition and the relu mask frozen at the real one.
    w1, b1 = params[0], params[1]
    mask = ((as64(x) @ as64(w1) + as64(b1)) > 0).to(torch.float64)
    mag_loss, mag_grads = autograd(
        functools.partial(
            mlp_loss, targ=as64(targ).abs(), relu=lambda h: h * mask, residual=operator.add
        ),
        *(t.abs() for t in (x, *params)),
    )
    return loss, grads, mag_loss, mag_grads


# ---------------------------------------------------------------------------------------
# Cases. Hypothesis draws shapes, dtype, a seed and where to plant exact zeros; the values
# come from torch.randn with that seed. Drawing the values themselves from Hypothesis
# would give subnormals, huge and all-equal arrays, for which a norm-relative error says
# nothing about the code under test.
# ---------------------------------------------------------------------------------------

# Small enough for the triple-loop matmul (<= 8**3 Python-level steps), large enough for
# every mistake in the lesson to show; 1 is in range so batch 1 and width 1 come up.
SIZES = st.integers(1, 8)
DTYPES = st.sampled_from([torch.float32, torch.float64])
SEEDS = st.integers(0, 2**32 - 1)


def randn(gen: torch.Generator, *shape: int, dtype: torch.dtype, device: str) -> Tensor:
    # Generated on the CPU so the same seed gives the same values on every device.
    return torch.randn(*shape, generator=gen, dtype=dtype).to(device)


@dataclass(frozen=True)
class MatmulCase:
    ar: int
    ac: int
    bc: int
    dtype: torch.dtype
    seed: int


@dataclass(frozen=True)
class LinCase:
    n: int
    n_in: int
    n_out: int
    dtype: torch.dtype
    seed: int

    def tensors(self, device: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """inp, w, b and an upstream gradient for out."""
        g = torch.Generator().manual_seed(self.seed)
        shapes = ((self.n, self.n_in), (self.n_in, self.n_out), (self.n_out,), (self.n, self.n_out))
        inp, w, b, out_g = (randn(g, *s, dtype=self.dtype, device=device) for s in shapes)
        return inp, w, b, out_g


@dataclass(frozen=True)
class MseCase:
    n: int
    dtype: torch.dtype
    seed: int

    def tensors(self, device: str) -> tuple[Tensor, Tensor]:
        """The network's output (n, 1) and the targets (n,)."""
        g = torch.Generator().manual_seed(self.seed)
        out = randn(g, self.n, 1, dtype=self.dtype, device=device)
        return out, randn(g, self.n, dtype=self.dtype, device=device)


@dataclass(frozen=True)
class ReluCase:
    n: int
    m: int
    dtype: torch.dtype
    seed: int
    zeros: bool  # about a third of the entries set to exactly +0.0 or -0.0

    def tensors(self, device: str) -> tuple[Tensor, Tensor]:
        """The relu's input and an upstream gradient for its output."""
        g = torch.Generator().manual_seed(self.seed)
        inp = torch.randn(self.n, self.m, generator=g, dtype=self.dtype)
        out_g = torch.randn(self.n, self.m, generator=g, dtype=self.dtype)
        if self.zeros:
            at = torch.rand(self.n, self.m, generator=g) < 1 / 3
            at.view(-1)[0] = True  # at least one
            negative = torch.rand(self.n, self.m, generator=g) < 0.5
            inp[at] = torch.where(negative, -0.0, 0.0).to(self.dtype)[at]
        return inp.to(device), out_g.to(device)


@dataclass(frozen=True)
class MlpCase:
    n: int
    n_in: int
    n_hidden: int
    dtype: torch.dtype
    seed: int
    # Exact zeros at the relu's input l1 = x @ w1 + b1:
    dead_unit: int | None  # w1[:, j] = 0 and b1[j] = 0, so l1[:, j] == 0
    zero_row: int | None  # x[r] = 0 ...
    zero_bias: tuple[int, ...]  # ... and b1[k] = 0 for these k, so l1[r, k] == 0

    def tensors(self, device: str) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor, Tensor]]:
        """x, targ and (w1, b1, w2, b2)."""
        g = torch.Generator().manual_seed(self.seed)
        kw = {"dtype": self.dtype, "device": "cpu"}
        x = randn(g, self.n, self.n_in, **kw)
        w1 = randn(g, self.n_in, self.n_hidden, **kw)
        b1 = randn(g, self.n_hidden, **kw)
        w2 = randn(g, self.n_hidden, 1, **kw)
        b2 = randn(g, 1, **kw)
        targ = randn(g, self.n, **kw)
        if self.dead_unit is not None:
            w1[:, self.dead_unit] = 0.0
            b1[self.dead_unit] = 0.0
        if self.zero_row is not None:
            x[self.zero_row] = 0.0
            b1[list(self.zero_bias)] = 0.0
        x, targ, w1, b1, w2, b2 = (t.to(device) for t in (x, targ, w1, b1, w2, b2))
        return x, targ, (w1, b1, w2, b2)

    @property
    def terms(self) -> int:
        # The gammas add up along the worst path: l1 carries n_in + 1 roundings, out
        # n_hidden + 1 more, the residual and 2/N 3 more, the backward matmuls N (w.g, b.g)
        # or n_hidden (x.g); w2.g and the loss see l1's rounding twice (once through l2,
        # once through the residual). The largest total is N + 2 (n_in + n_hidden) + 7.
        return self.n + 2 * (self.n_in + self.n_hidden) + 8


matmul_cases = st.builds(MatmulCase, SIZES, SIZES, SIZES, DTYPES, SEEDS)
lin_cases = st.builds(LinCase, SIZES, SIZES, SIZES, DTYPES, SEEDS)
mse_cases = st.builds(MseCase, SIZES, DTYPES, SEEDS)


def relu_cases(zeros: st.SearchStrategy[bool]) -> st.SearchStrategy[ReluCase]:
    return st.builds(ReluCase, SIZES, SIZES, DTYPES, SEEDS, zeros)


@st.composite
def mlp_cases(draw: st.DrawFn, plant_zeros: bool = True) -> MlpCase:
    n, n_in, n_hidden = draw(SIZES), draw(SIZES), draw(SIZES)
    units = st.integers(0, n_hidden - 1)
    dead_unit = zero_row = None
    zero_bias: tuple[int, ...] = ()
    if plant_zeros:
        dead_unit = draw(st.none() | units)
        zero_row = draw(st.none() | st.integers(0, n - 1))
        if zero_row is not None:
            zero_bias = tuple(sorted(draw(st.sets(units, max_size=n_hidden))))
    return MlpCase(n, n_in, n_hidden, draw(DTYPES), draw(SEEDS), dead_unit, zero_row, zero_bias)


f32, f64 = torch.float32, torch.float64

# Cases every reference run includes whatever Hypothesis draws: batch 1, width 1 and
# non-square shapes always (square shapes hide a transpose, batch 1 a missing 1/N or sum),
# and the relu's exact zeros, down to a network whose only hidden unit is dead.
MATMUL_EXAMPLES = [
    MatmulCase(1, 1, 1, f32, 1),
    MatmulCase(1, 8, 1, f64, 2),  # row times column
    MatmulCase(8, 1, 8, f32, 3),  # column times row
    MatmulCase(3, 5, 2, f64, 4),
]
LIN_EXAMPLES = [LinCase(1, 1, 1, f32, 1), LinCase(1, 5, 3, f64, 2), LinCase(6, 4, 1, f32, 3)]
MSE_EXAMPLES = [MseCase(1, f32, 1), MseCase(5, f64, 2)]
RELU_EXAMPLES = [
    ReluCase(1, 1, f32, 1, zeros=True),  # a single exact zero
    ReluCase(4, 3, f64, 2, zeros=True),
    ReluCase(1, 5, f32, 3, zeros=False),
    ReluCase(3, 2, f64, 4, zeros=False),
]
MLP_EXAMPLES = [
    MlpCase(1, 1, 1, f32, 1, dead_unit=None, zero_row=None, zero_bias=()),
    MlpCase(5, 3, 4, f64, 2, dead_unit=None, zero_row=None, zero_bias=()),
    MlpCase(1, 3, 2, f64, 3, dead_unit=0, zero_row=0, zero_bias=(1,)),
    MlpCase(5, 3, 4, f32, 4, dead_unit=2, zero_row=1, zero_bias=(0, 3)),
    MlpCase(4, 2, 1, f32, 5, dead_unit=0, zero_row=None, zero_bias=()),  # all of l1 is 0
]


def with_examples(cases: Iterable[object]) -> Callable[[F], F]:
    def decorate(test: F) -> F:
        for case in cases:
            test = example(case=case)(test)
        return test

    return decorate


def _has_zeros(case: ReluCase | MlpCase) -> bool:
    if isinstance(case, ReluCase):
        return case.zeros
    return case.dead_unit is not None or case.zero_row is not None


# ---------------------------------------------------------------------------------------
# The properties.
# ---------------------------------------------------------------------------------------

MATMUL_RUNGS = ("loops", "elementwise", "broadcast", "einsum", "torch")


def matmul_property(
    impl: ModuleType, device: str = "cpu", config: settings = REFERENCE_SETTINGS, *, rung: str
) -> Property:
    """`rung` is a LADDER name, or "matmul" for the lesson's answer."""
    attr = "matmul" if rung == "matmul" else f"matmul_{rung}"

    @config
    @given(case=matmul_cases)
    @with_examples(MATMUL_EXAMPLES)
    def prop(case: MatmulCase) -> None:
        fn = getattr(submodule(impl, "matmul"), attr)
        g = torch.Generator().manual_seed(case.seed)
        a = randn(g, case.ar, case.ac, dtype=case.dtype, device=device)
        b = randn(g, case.ac, case.bc, dtype=case.dtype, device=device)
        with unchanged(a=a, b=b):
            got = call(attr, fn, a, b)
        a64, b64 = as64(a), as64(b)
        mag = a64.abs() @ b64.abs()
        assert_matches(attr, got, a64 @ b64, like=a, magnitude=mag, terms=case.ac)

    return prop


def lin_property(
    impl: ModuleType, device: str = "cpu", config: settings = REFERENCE_SETTINGS
) -> Property:
    @config
    @given(case=lin_cases)
    @with_examples(LIN_EXAMPLES)
    def prop(case: LinCase) -> None:
        inp, w, b, _ = case.tensors(device)
        with unchanged(inp=inp, w=w, b=b):
            got = call("lin", submodule(impl, "backprop").lin, inp, w, b)
        want = as64(inp) @ as64(w) + as64(b)
        mag = as64(inp).abs() @ as64(w).abs() + as64(b).abs()
        assert_matches("lin", got, want, like=inp, magnitude=mag, terms=case.n_in + 1)

    return prop


def relu_property(
    impl: ModuleType, device: str = "cpu", config: settings = REFERENCE_SETTINGS
) -> Property:
    @config
    @given(case=relu_cases(st.booleans()))
    @with_examples(RELU_EXAMPLES)
    def prop(case: ReluCase) -> None:
        inp, _ = case.tensors(device)
        with unchanged(inp=inp):
            got = call("relu", submodule(impl, "backprop").relu, inp)
        assert_matches("relu", got, masked_relu(as64(inp)), like=inp)  # exact: no rounding

    return prop


def _mse_oracle(out: Tensor, targ: Tensor) -> tuple[Tensor, Tensor]:
    """Loss and d loss / d out. No magnitudes needed: with exact inputs the residual is one
    correctly rounded subtraction (off by at most u times itself, cancellation or not) and
    the rest are squares and sums of positive terms, so the float32 loss is within
    (N + 4) u ~ 7e-7 and the gradient within 3u of exact, well inside the tolerance."""

    def loss(o: Tensor) -> Tensor:
        return (o[:, 0] - as64(targ)).pow(2).mean()

    want, (want_g,) = autograd(loss, out)
    return want, want_g


def mse_property(
    impl: ModuleType, device: str = "cpu", config: settings = REFERENCE_SETTINGS
) -> Property:
    @config
    @given(case=mse_cases)
    @with_examples(MSE_EXAMPLES)
    def prop(case: MseCase) -> None:
        out, targ = case.tensors(device)
        with unchanged(out=out, targ=targ):
            got = call("mse", submodule(impl, "backprop").mse, out, targ)
        want, _ = _mse_oracle(out, targ)
        assert_matches("mse", got, want, like=out)

    return prop


def mse_grad_property(
    impl: ModuleType, device: str = "cpu", config: settings = REFERENCE_SETTINGS
) -> Property:
    @config
    @given(case=mse_cases)
    @with_examples(MSE_EXAMPLES)
    def prop(case: MseCase) -> None:
        out, targ = case.tensors(device)
        with unchanged(out=out, targ=targ):
            call("mse_grad", submodule(impl, "backprop").mse_grad, out, targ)
        _, want_g = _mse_oracle(out, targ)
        assert_matches("out.g", grad_of(out, "out"), want_g, like=out)

    return prop


def _relu_grad_check(
    impl: ModuleType, device: str, case: ReluCase, relu: Callable[[Tensor], Tensor]
) -> None:
    inp, out_g = case.tensors(device)
    out = inp.clamp_min(0.0)
    out.g = out_g
    with unchanged(inp=inp, out=out, out_g=out_g):
        call("relu_grad", submodule(impl, "backprop").relu_grad, inp, out)
    _, (want,) = autograd(relu, inp, grad_output=out_g)
    assert_matches("inp.g", grad_of(inp, "inp"), want, like=inp)  # a mask times out.g: exact


def relu_grad_property(
    impl: ModuleType, device: str = "cpu", config: settings = REFERENCE_SETTINGS
) -> Property:
    @config
    @given(case=relu_cases(st.booleans()))
    @with_examples(RELU_EXAMPLES)
    def prop(case: ReluCase) -> None:
        _relu_grad_check(impl, device, case, masked_relu)

    return prop


def relu_grad_clamp_min_property(
    impl: ModuleType, device: str = "cpu", config: settings = REFERENCE_SETTINGS
) -> Property:
    """Away from exact zeros every subgradient convention agrees, so the reference must
    also match autograd of the plain clamp_min(0) that the lesson's relu is."""

    @config
    @given(case=relu_cases(st.just(False)))
    @with_examples([c for c in RELU_EXAMPLES if not _has_zeros(c)])
    def prop(case: ReluCase) -> None:
        assume(bool((case.tensors("cpu")[0] != 0).all()))  # randn: never 0 in practice
        _relu_grad_check(impl, device, case, clamp_relu)

    return prop


def relu_subgradient_property(
    impl: ModuleType, device: str = "cpu", config: settings = REFERENCE_SETTINGS
) -> Property:
    """At an exact zero relu has no derivative; any slope s in [0, 1] is a subgradient, so
    inp.g must lie between 0 and out.g there (the reference picks s = 0)."""

    @config
    @given(case=relu_cases(st.just(True)))
    @with_examples([c for c in RELU_EXAMPLES if _has_zeros(c)])
    def prop(case: ReluCase) -> None:
        inp, out_g = case.tensors(device)
        out = inp.clamp_min(0.0)
        out.g = out_g
        call("relu_grad", submodule(impl, "backprop").relu_grad, inp, out)
        got = grad_of(inp, "inp")
        if not isinstance(got, Tensor) or got.shape != inp.shape:
            raise AssertionError(f"inp.g: expected a tensor of shape {tuple(inp.shape)}")
        at_zero = inp == 0
        g, up = got[at_zero].double(), out_g[at_zero].double()
        inside = (g >= torch.minimum(up, torch.zeros_like(up))) & (
            g <= torch.maximum(up, torch.zeros_like(up))
        )
        if not bool(inside.all()):
            bad = int((~inside).sum())
            raise AssertionError(
                f"inp.g at exact zeros is outside the subgradient range [0, 1] * out.g "
                f"at {bad} of {int(at_zero.sum())} zeros"
            )

    return prop


def _lin_oracle(
    inp: Tensor, w: Tensor, b: Tensor, out_g: Tensor
) -> tuple[Tensor, list[Tensor], Tensor, list[Tensor]]:
    def lin(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
        return x @ w + b

    want, want_g = autograd(lin, inp, w, b, grad_output=out_g)
    mag, mag_g = autograd(lin, inp.abs(), w.abs(), b.abs(), grad_output=out_g.abs())
    return want, want_g, mag, mag_g


def _assert_lin_grads(case: LinCase, inp: Tensor, w: Tensor, b: Tensor, out_g: Tensor) -> None:
    _, want_g, _, mag_g = _lin_oracle(inp, w, b, out_g)
    terms = max(case.n, case.n_out) + 1
    for name, t, want, mag in zip(("inp", "w", "b"), (inp, w, b), want_g, mag_g, strict=True):
        assert_matches(f"{name}.g", grad_of(t, name), want, like=t, magnitude=mag, terms=terms)


def lin_grad_property(
    impl: ModuleType, device: str = "cpu", config: settings = REFERENCE_SETTINGS
) -> Property:
    @config
    @given(case=lin_cases)
    @with_examples(LIN_EXAMPLES)
    def prop(case: LinCase) -> None:
        inp, w, b, out_g = case.tensors(device)
        out = inp @ w + b
        out.g = out_g
        with unchanged(inp=inp, w=w, b=b, out_g=out_g):
            call("lin_grad", submodule(impl, "backprop").lin_grad, inp, out, w, b)
        _assert_lin_grads(case, inp, w, b, out_g)

    return prop


MLP_NAMES = ("x", "w1", "b1", "w2", "b2")


def _assert_mlp(
    case: MlpCase,
    loss: object,
    x: Tensor,
    targ: Tensor,
    params: tuple[Tensor, Tensor, Tensor, Tensor],
    relu: Callable[[Tensor], Tensor],
) -> None:
    want, want_g, mag, mag_g = mlp_oracle(x, targ, params, relu)
    assert_matches("loss", loss, want, like=x, magnitude=mag, terms=case.terms)
    leaves = (x, *params)
    for name, t, w, m in zip(MLP_NAMES, leaves, want_g, mag_g, strict=True):
        assert_matches(f"{name}.g", grad_of(t, name), w, like=t, magnitude=m, terms=case.terms)


def _forward_and_backward_check(
    impl: ModuleType, device: str, case: MlpCase, relu: Callable[[Tensor], Tensor]
) -> None:
    x, targ, params = case.tensors(device)
    named = dict(zip(MLP_NAMES, (x, *params), strict=True))
    forward_and_backward = submodule(impl, "backprop").forward_and_backward
    with unchanged(targ=targ, **named):
        loss = call("forward_and_backward", forward_and_backward, x, targ, *params)
    _assert_mlp(case, loss, x, targ, params, relu)


def forward_and_backward_property(
    impl: ModuleType, device: str = "cpu", config: settings = REFERENCE_SETTINGS
) -> Property:
    @config
    @given(case=mlp_cases())
    @with_examples(MLP_EXAMPLES)
    def prop(case: MlpCase) -> None:
        _forward_and_backward_check(impl, device, case, masked_relu)

    return prop


def forward_and_backward_clamp_min_property(
    impl: ModuleType, device: str = "cpu", config: settings = REFERENCE_SETTINGS
) -> Property:
    """Without exact zeros at the relu, the plain autograd of the lesson's clamp_min
    network is an oracle too."""

    @config
    @given(case=mlp_cases(plant_zeros=False))
    @with_examples([c for c in MLP_EXAMPLES if not _has_zeros(c)])
    def prop(case: MlpCase) -> None:
        x, _, (w1, b1, _, _) = case.tensors("cpu")
        assume(bool((x @ w1 + b1 != 0).all()))  # randn: never 0 in practice
        _forward_and_backward_check(impl, device, case, clamp_relu)

    return prop


def model_property(
    impl: ModuleType, device: str = "cpu", config: settings = REFERENCE_SETTINGS
) -> Property:
    @config
    @given(case=mlp_cases())
    @with_examples(MLP_EXAMPLES)
    def prop(case: MlpCase) -> None:
        x, targ, params = case.tensors(device)
        named = dict(zip(MLP_NAMES, (x, *params), strict=True))
        with unchanged(targ=targ, **named):
            model = call("Model", submodule(impl, "modules").Model, *params)
            loss = call("Model.__call__", model, x, targ)
            call("Model.backward", model.backward)
        _assert_mlp(case, loss, x, targ, params, masked_relu)

    return prop


def relu_class_property(
    impl: ModuleType, device: str = "cpu", config: settings = REFERENCE_SETTINGS
) -> Property:
    @config
    @given(case=relu_cases(st.booleans()))
    @with_examples(RELU_EXAMPLES)
    def prop(case: ReluCase) -> None:
        inp, out_g = case.tensors(device)
        layer = call("Relu", submodule(impl, "modules").Relu)
        with unchanged(inp=inp):
            out = call("Relu.__call__", layer, inp)
        assert_matches("Relu()(inp)", out, masked_relu(as64(inp)), like=inp)
        out.g = out_g
        with unchanged(inp=inp, out_g=out_g):
            call("Relu.backward", layer.backward)
        _, (want,) = autograd(masked_relu, inp, grad_output=out_g)
        assert_matches("inp.g", grad_of(inp, "inp"), want, like=inp)

    return prop


def lin_class_property(
    impl: ModuleType, device: str = "cpu", config: settings = REFERENCE_SETTINGS
) -> Property:
    @config
    @given(case=lin_cases)
    @with_examples(LIN_EXAMPLES)
    def prop(case: LinCase) -> None:
        inp, w, b, out_g = case.tensors(device)
        with unchanged(inp=inp, w=w, b=b):
            layer = call("Lin", submodule(impl, "modules").Lin, w, b)
            out = call("Lin.__call__", layer, inp)
        want, _, mag, _ = _lin_oracle(inp, w, b, out_g)
        assert_matches("Lin(w, b)(inp)", out, want, like=inp, magnitude=mag, terms=case.n_in + 1)
        out.g = out_g
        with unchanged(inp=inp, w=w, b=b, out_g=out_g):
            call("Lin.backward", layer.backward)
        _assert_lin_grads(case, inp, w, b, out_g)

    return prop


def mse_class_property(
    impl: ModuleType, device: str = "cpu", config: settings = REFERENCE_SETTINGS
) -> Property:
    @config
    @given(case=mse_cases)
    @with_examples(MSE_EXAMPLES)
    def prop(case: MseCase) -> None:
        out, targ = case.tensors(device)
        with unchanged(out=out, targ=targ):
            layer = call("Mse", submodule(impl, "modules").Mse)
            loss = call("Mse.__call__", layer, out, targ)
            call("Mse.backward", layer.backward)
        want, want_g = _mse_oracle(out, targ)
        assert_matches("Mse()(out, targ)", loss, want, like=out)
        assert_matches("out.g", grad_of(out, "out"), want_g, like=out)

    return prop


# Name -> factory(impl, device="cpu", config=REFERENCE_SETTINGS); both test modules use
# these names (the mutant tests list, per mutant, the properties that must catch it).
PROPERTIES: dict[str, PropertyFactory] = {
    **{f"matmul_{rung}": functools.partial(matmul_property, rung=rung) for rung in MATMUL_RUNGS},
    "matmul": functools.partial(matmul_property, rung="matmul"),
    "lin": lin_property,
    "relu": relu_property,
    "mse": mse_property,
    "mse_grad": mse_grad_property,
    "relu_grad": relu_grad_property,
    "relu_grad_clamp_min": relu_grad_clamp_min_property,
    "relu_subgradient": relu_subgradient_property,
    "lin_grad": lin_grad_property,
    "forward_and_backward": forward_and_backward_property,
    "forward_and_backward_clamp_min": forward_and_backward_clamp_min_property,
    "Relu": relu_class_property,
    "Lin": lin_class_property,
    "Mse": mse_class_property,
    "Model": model_property,
}


# ---------------------------------------------------------------------------------------
# lin_grad's memory.
# ---------------------------------------------------------------------------------------


def check_lin_grad_memory(impl: ModuleType, n: int = 4096, n_in: int = 64, n_out: int = 32) -> None:
    """w.g must come from one (n_in, N) @ (N, n_out) matmul, never from the (N, n_in, n_out)
    outer product summed over N: same numbers, but 7 GiB at MNIST scale.

    torch's CPU allocations are invisible to tracemalloc, so this asks torch's profiler,
    which records every allocation of its CPU allocator and charges it to the op that
    made it. The largest op allocation must stay within 2x the largest legitimate tensor
    (inp.g, N x n_in; 2x leaves room for a contiguous copy of a transposed operand); the
    outer product is n_out / 2 = 16x that here. The profiler must also have seen inp.g
    itself, or the check would pass blind."""
    from torch.profiler import ProfilerActivity, profile

    g = torch.Generator().manual_seed(0)
    inp, w, b = (torch.randn(*s, generator=g) for s in ((n, n_in), (n_in, n_out), (n_out,)))
    out = inp @ w + b
    out.g = torch.randn(n, n_out, generator=g)
    lin_grad = submodule(impl, "backprop").lin_grad
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call("lin_grad", lin_grad, inp, out, w, b)
    largest = max((e.cpu_memory_usage for e in prof.events()), default=0)
    itemsize = inp.element_size()
    legit = max(n * n_in, n * n_out, n_in * n_out) * itemsize
    if largest < n * n_in * itemsize:
        raise AssertionError(
            f"the profiler saw no allocation as large as inp.g ({n * n_in * itemsize} B): "
            "it is not recording memory, so this check cannot work"
        )
    if largest > 2 * legit:
        raise AssertionError(
            f"lin_grad allocated {largest / 2**20:.1f} MiB in one op for N={n}, n_in={n_in}, "
            f"n_out={n_out}; the largest gradient is {legit / 2**20:.1f} MiB and the "
            f"(N, n_in, n_out) outer product {n * n_in * n_out * itemsize / 2**20:.0f} MiB"
        )
