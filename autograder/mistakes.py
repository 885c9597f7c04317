"""The catalogue of known mistakes: how each looks in a failed comparison, and the hint
that tells a student what to change. Pure: tensors and data in, a hint out.

Entries are tried in order and the first that recognises the observation gives the hint,
so specific patterns come before general ones. To add one, write its `detect` and append a
`Mistake`; the tests build a notebook with that mistake and check the hint.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from .compare import Verdict, is_close
from .harvest import Value
from .maths import LIN, MATMUL, MSE, NETWORK, RELU, Expected, Maths
from .protocols import Protocol, get

__all__ = ["CATALOGUE", "Mistake", "Observation", "diagnose", "mistake"]


@dataclass(frozen=True)
class Observation:
    """One failed value of one call, with everything needed to recognise why."""

    protocol: Protocol  # a name is looked up
    target: str
    value: str  # the value that failed, e.g. "w.g"
    verdict: Verdict | None  # None when the call raised
    error: dict[str, Any] | None  # the kernel's record of the exception, if any
    got: dict[str, Value]  # every value the call produced
    want: dict[str, Expected]  # the reference for every compared value of the call
    inputs: dict[str, Tensor]  # the call's inputs, float64
    facts: dict[str, Any] = field(default_factory=dict)  # what the kernel noticed

    def __post_init__(self) -> None:
        object.__setattr__(self, "protocol", get(self.protocol))

    @property
    def maths(self) -> Maths:
        return self.protocol.maths

    def tensor(self, name: str | None = None) -> Tensor | None:
        v = self.got.get(name or self.value)
        return v.tensor.double() if v is not None and v.kind == "tensor" else None

    @property
    def expected(self) -> Tensor | None:
        exp = self.want.get(self.value)
        return exp.value if exp is not None else None

    def error_matches(self, pattern: str) -> bool:
        if not self.error:
            return False
        text = f"{self.error.get('type', '')}: {self.error.get('message', '')}"
        return re.search(pattern, text) is not None

    def error_line_matches(self, pattern: str) -> bool:
        return bool(self.error and re.search(pattern, self.error.get("line") or ""))


@dataclass(frozen=True)
class Mistake:
    """`no_answer`: the call gave nothing to compare (not written, not defined, never
    finished), so the hint is the whole message. `own`: the check's own fault even when a
    function it builds on failed too. `locates`: the hint says where in the network the
    bug is, which stays true when the bug is in a function the network calls."""

    id: str
    detect: Callable[[Observation], bool]
    hint: Callable[[Observation], str] | str
    no_answer: bool = False
    own: bool = False
    locates: bool = False

    def text(self, obs: Observation) -> str:
        return self.hint(obs) if callable(self.hint) else self.hint


def _scaled(obs: Observation, factor: float) -> bool:
    got, want = obs.tensor(), obs.expected
    return got is not None and want is not None and is_close(got, want * factor)


def _batch(obs: Observation) -> int:
    return int(obs.inputs["inp"].shape[0])


def _is_bias(obs: Observation) -> bool:
    return obs.value in ("b.g", "b1.g", "b2.g")


def _returned_instead(obs: Observation) -> bool:
    if obs.got.get(obs.value, Value("missing")).kind != "missing" or obs.expected is None:
        return False
    ret = obs.got.get("return")
    candidates = [ret] if ret is not None and ret.kind == "tensor" else []
    if ret is not None and ret.kind == "sequence":
        candidates = [v for v in ret.items if v.kind == "tensor"]
    return any(
        v.tensor is not None and is_close(v.tensor.double(), obs.expected) for v in candidates
    )


def _grad_not_g(obs: Observation) -> bool:
    if not obs.value.endswith(".g") or obs.got.get(obs.value, Value("missing")).kind != "missing":
        return False
    return obs.got.get(obs.value[:-2] + ".grad") is not None


def _grad_not_g_hint(obs: Observation) -> str:
    grad = obs.tensor(obs.value[:-2] + ".grad")
    right = grad is not None and obs.expected is not None and is_close(grad, obs.expected, 1e-4)
    verdict = (
        "and its values would have been right: only the attribute is wrong"
        if right
        else "and its values would also have been wrong"
    )
    return (
        f"the gradient was stored on `{obs.value[:-2]}.grad` instead of `{obs.value}`, "
        f"{verdict}. In this lesson gradients live on `.g`: `.grad` belongs to PyTorch's "
        f"autograd, which we are writing by hand."
    )


def _transposed(obs: Observation) -> bool:
    got, want = obs.tensor(), obs.expected
    return (
        got is not None
        and want is not None
        and want.dim() == 2
        and is_close(got, want.t())
        and not is_close(want, want.t())
    )


def _bias_not_summed(obs: Observation) -> bool:
    got, want = obs.tensor(), obs.expected
    return (
        _is_bias(obs)
        and got is not None
        and want is not None
        and got.dim() == 2
        and got.shape[0] == _batch(obs)
        and is_close(got.sum(0), want)
    )


def _bias_averaged(obs: Observation) -> bool:
    return _is_bias(obs) and _batch(obs) > 1 and _scaled(obs, 1 / _batch(obs))


def _mse_values(obs: Observation) -> bool:
    return obs.maths in (MSE, NETWORK)


def _n_by_n(obs: Observation) -> bool:
    got = obs.tensor()
    n = _batch(obs) if "inp" in obs.inputs else 0
    # (N, N), or (N, N, 1) when the student then unsqueezed it
    square = got is not None and n > 1 and tuple(got.shape[:2]) == (n, n)
    return (_mse_values(obs) and square) or (
        _mse_values(obs)
        and obs.error_matches(rf"mat1 and mat2 shapes cannot be multiplied \({n}x{n} ")
    )


def _flat_inp_g(obs: Observation) -> bool:
    got, want = obs.tensor(), obs.expected
    return (
        got is not None
        and want is not None
        and want.dim() == 2
        and want.shape[1] == 1
        and got.dim() == 1
        and is_close(got, want[:, 0])
    )


def _relu_out_g_mask(obs: Observation) -> bool:
    got = obs.tensor()
    if obs.maths is not RELU or got is None:
        return False
    og = obs.inputs["out.g"]
    return is_close(got, (og > 0).double() * og)


def _relu_dropped_out_g(obs: Observation) -> bool:
    got = obs.tensor()
    if obs.maths is not RELU or got is None:
        return False
    return is_close(got, (obs.inputs["inp"] > 0).double())


_NETWORK_GRADS = ("inp", "w1", "b1", "w2", "b2")


def _shifted_relu(obs: Observation) -> bool:
    """In the whole network: the value is what the 2019 lesson's shifted ReLU,
    `x.clamp_min(0.) - 0.5`, would give, where this notebook's relu has no shift."""
    if obs.maths is not NETWORK:
        return False
    got = obs.tensor()
    if got is None:
        return False
    import torch

    leaves = {k: obs.inputs[k].detach().double().clone().requires_grad_(k in _NETWORK_GRADS)
              for k in (*_NETWORK_GRADS, "targ")}  # fmt: skip
    hidden = (leaves["inp"] @ leaves["w1"] + leaves["b1"]).clamp_min(0.0) - 0.5
    out = hidden @ leaves["w2"] + leaves["b2"]
    loss = (out[:, 0] - leaves["targ"]).pow(2).mean()
    if obs.value == "loss":
        return is_close(got, loss.detach(), 1e-6)
    name = obs.value.removesuffix(".g")
    if name not in _NETWORK_GRADS:
        return False
    grads = torch.autograd.grad(loss, [leaves[k] for k in _NETWORK_GRADS])
    return is_close(got, dict(zip(_NETWORK_GRADS, grads, strict=True))[name], 1e-6)


def _first_layer_only(obs: Observation) -> bool:
    """In the whole network: the last layer's gradients are right, the first layer's not,
    so the mistake is in relu_grad or the first lin_grad call."""
    if obs.maths is not NETWORK or obs.value not in (
        "w1.g",
        "b1.g",
        "inp.g",
    ):
        return False
    checks = []
    for name in ("w2.g", "b2.g"):
        got = obs.tensor(name)
        exp = obs.want.get(name)
        checks.append(got is not None and exp is not None and is_close(got, exp.value, 1e-4))
    return all(checks)


def _device_error(obs: Observation) -> bool:
    return obs.error_matches(r"Expected all tensors to be on the same device") or (
        obs.verdict is not None and obs.verdict.reason == "device"
    )


_METHODS = ("float", "double", "t", "squeeze", "unsqueeze", "sum", "mean", "clone", "abs",
            "exp", "sqrt", "numel", "dim", "size", "item", "relu", "clamp_min", "pow")  # fmt: skip


def _bare_method(obs: Observation) -> str | None:
    """The tensor method the error line uses without calling it, e.g. `.float`."""
    line = (obs.error or {}).get("line") or ""
    for m in re.finditer(r"\.([A-Za-z_]\w*)\b(?!\s*\()", line):
        if m.group(1) in _METHODS:
            return m.group(1)
    return None


def _who(obs: Observation) -> str:
    return obs.protocol.grad_function(obs.target)


CATALOGUE: tuple[Mistake, ...] = (
    Mistake(
        "not-implemented",
        lambda o: o.error_matches(r"^NotImplementedError"),
        lambda o: (
            f"{_who(o)} is not implemented yet: replace `raise NotImplementedError()` "
            "with your code"
        ),
        no_answer=True,
        own=True,
    ),
    Mistake(
        "missing-definition",
        lambda o: bool(o.error and o.error.get("type") == "Missing"),
        lambda o: (
            (
                f"the exercise's cell defines no `{o.target}` (another exercise's "
                f"`{o.target}` is not graded in its place)"
                if o.error and o.error.get("in_cell")
                else f"the notebook defines no `{o.target}`"
            )
            + (
                f": did you mean to name `{o.error['close']}` `{o.target}`?"
                if o.error and o.error.get("close")
                else ": keep the name and signature the exercise gives"
            )
        ),
        no_answer=True,
        own=True,
    ),
    Mistake(
        "timeout",
        lambda o: bool(o.error and o.error.get("type") == "Timeout"),
        lambda o: (
            f"{o.target} did not finish in time ({o.error['message']}): look for a loop "
            "that never ends, or one over far more elements than the inputs have"
        ),
        no_answer=True,
        own=True,
    ),
    Mistake(
        "device",
        _device_error,
        "a tensor was created on the CPU while the inputs are on the GPU: create new tensors "
        "with `device=inp.device` (or `torch.zeros_like`, `new_zeros`)",
    ),
    Mistake(
        "out-of-memory",
        lambda o: o.error_matches(r"can't allocate memory|out of memory|MemoryError"),
        lambda o: (
            f"{_who(o)} ran out of memory: a broadcast such as (N, n_in, n_out) before a sum "
            "asks for far more memory than the matrix product it stands for "
            "(`inp.t() @ out.g`); look for a tensor much larger than the inputs"
        ),
    ),
    Mistake(
        "reads-globals",
        lambda o: bool(o.facts.get("globals")),
        lambda o: (
            f"{o.target} ignores its arguments and reads the notebook's global"
            f"{'s' if len(o.facts['globals']) > 1 else ''} "
            + ", ".join(f"`{n}`" for n in o.facts["globals"])
            + ": the grader calls it with tensors of its own, so compute only from the "
            "parameters"
        ),
        own=True,
    ),
    Mistake(
        "name-not-defined",
        lambda o: bool(o.error and o.error.get("type") == "NameError" and o.error.get("name")),
        lambda o: (
            f"`{o.error['name']}` is not defined: did you mean `{o.error['close']}`?"
            if o.error.get("close")
            else f"`{o.error['name']}` is not defined in this notebook: a name from the "
            "lesson's notebook or from a deleted cell? Use the function's arguments"
        ),
    ),
    Mistake(
        "method-without-parentheses",
        lambda o: (
            o.error_matches(r"builtin_function_or_method|'method'") and _bare_method(o) is not None
        ),
        lambda o: (
            f"`.{_bare_method(o)}` without parentheses is the method itself, not its result: "
            f"call it, `.{_bare_method(o)}()`"
        ),
    ),
    Mistake(
        "overwrote-parameter",
        lambda o: bool(o.facts.get("replaced")),
        lambda o: (
            f"backward assigned the gradient to {', '.join(f'`{r}`' for r in o.facts['replaced'])}"
            " itself, replacing the parameter: store it on "
            + ", ".join(f"`{r}.g`" for r in o.facts["replaced"])
        ),
    ),
    Mistake(
        "missing-return",
        lambda o: (
            o.value in ("return", "loss") and o.verdict is not None and o.verdict.reason == "none"
        ),
        lambda o: (
            f"{o.target} returned None: did you forget `return`"
            + (" in `__call__` (`return self.loss(x, targ)`)?" if o.value == "loss" else "?")
        ),
    ),
    Mistake("grad-instead-of-g", _grad_not_g, _grad_not_g_hint),
    Mistake(
        "returned-not-stored",
        _returned_instead,
        lambda o: (
            f"{_who(o)} returned the gradient instead of storing it: assign it to "
            f"`{o.value}`; the caller reads `.g`, not the return value"
        ),
    ),
    Mistake(
        "accumulate-missing-g",
        lambda o: o.error_matches(r"has no attribute 'g'") and o.error_line_matches(r"\.g\s*\+="),
        "`.g += ...` adds to a gradient that does not exist yet: set it with `=`",
    ),
    Mistake(
        "backward-order",
        lambda o: o.maths is NETWORK and o.error_matches(r"has no attribute 'g'"),
        "a backward step read an `out.g` that nothing had set: call the steps in the reverse "
        "order of the forward pass (mse_grad, the second lin_grad, relu_grad, the first "
        "lin_grad), and check that each step stores its result on `.g` (not on `.grad`, "
        "and not only as a return value) for the step before it to read",
    ),
    Mistake(
        "matmul-no-transpose",
        lambda o: o.maths is LIN and o.error_matches(r"mat1 and mat2 shapes cannot be multiplied"),
        "`inp.g = out.g @ w` multiplies (N, n_out) by (n_in, n_out): the chain rule needs "
        "w transposed, `inp.g = out.g @ w.t()`, which has inp's shape (N, n_in)",
    ),
    Mistake(
        "mse-broadcast-n-by-n",
        _n_by_n,
        "`(N, 1) - (N,)` broadcasts to an (N, N) matrix: take `inp[:, 0]` (or "
        "`inp.squeeze(-1)`) before subtracting targ, then `unsqueeze(-1)` back to (N, 1)",
    ),
    Mistake(
        "matmul-row-not-column",
        lambda o: o.maths is MATMUL and o.error_line_matches(r"\[\s*i\s*,\s*None\s*\]"),
        "`a[i, None]` is a (1, ac) row; broadcasting against b (ac, bc) needs the column "
        "`a[i, :, None]` (or `a[i].unsqueeze(-1)`), of shape (ac, 1)",
    ),
    Mistake(
        "matmul-result-shape",
        lambda o: (
            o.maths is MATMUL
            and o.tensor() is not None
            and o.expected is not None
            and tuple(o.tensor().shape) != tuple(o.expected.shape)
        ),
        lambda o: (
            f"the result must have a's rows and b's columns, "
            f"{tuple(o.expected.shape)}: allocate `torch.zeros(ar, bc, ...)`"
        ),
    ),
    Mistake(
        "dtype",
        lambda o: o.verdict is not None and o.verdict.reason == "dtype",
        "the result came back in another dtype than the inputs: create new tensors with "
        "`dtype=a.dtype` (or `torch.zeros_like` / `a.new_zeros`)",
    ),
    Mistake(
        "transposed",
        _transposed,
        lambda o: (
            f"{o.value} is transposed: a weight gradient has the weight's shape, "
            "(n_in, n_out), which is `inp.t() @ out.g`"
        ),
    ),
    Mistake(
        "bias-not-summed",
        _bias_not_summed,
        lambda o: (
            f"{o.value} keeps one row per example: the bias is added to every row, "
            "so its gradient sums out.g over the batch, `out.g.sum(0)`"
        ),
    ),
    Mistake(
        "bias-averaged",
        _bias_averaged,
        lambda o: (
            f"{o.value} is averaged over the batch: the bias is added to every row, "
            "so its gradient is the sum, `out.g.sum(0)`, not the mean (the 1/N is "
            "already in mse_grad)"
        ),
    ),
    Mistake(
        "inp-g-flat",
        _flat_inp_g,
        lambda o: (
            f"{o.value} has shape (N,) but must have inp's shape (N, 1): "
            "`unsqueeze(-1)` (or `[:, None]`)"
        ),
    ),
    Mistake(
        "mse-missing-2",
        lambda o: _mse_values(o) and _scaled(o, 0.5),
        "the gradient is half what it should be: d/dx (x - t)^2 = 2 (x - t), so mse_grad "
        "needs the factor 2",
    ),
    Mistake(
        "mse-missing-1/N",
        lambda o: _mse_values(o) and _batch(o) > 1 and _scaled(o, _batch(o)),
        "the gradient is N times too large: the loss is a mean over N examples, so mse_grad "
        "divides by N (`inp.shape[0]`)",
    ),
    Mistake(
        "sign",
        lambda o: _scaled(o, -1.0),
        lambda o: (
            f"{o.value} has the right size but the opposite sign: check the order of "
            "the subtraction (`inp - targ`, not `targ - inp`) and every minus sign"
        ),
    ),
    Mistake(
        "relu-mask-from-out-g",
        _relu_out_g_mask,
        "the relu mask must come from the layer's input (`inp > 0`), not from the sign of "
        "`out.g`: the slope of relu depends on where it was evaluated",
    ),
    Mistake(
        "relu-dropped-out-g",
        _relu_dropped_out_g,
        "relu_grad returns only the mask: multiply it by `out.g` (the chain rule), "
        "`inp.g = (inp > 0).float() * out.g`",
    ),
    Mistake(
        "shifted-relu",
        _shifted_relu,
        "your relu subtracts 0.5 (the 2019 lesson's `x.clamp_min(0.) - 0.5`, which centres "
        "the activations): this notebook's relu is `max(inp, 0)` with no shift, and the "
        "shift changes the loss and every gradient: take it out",
    ),
    Mistake(
        "first-layer-only",
        _first_layer_only,
        "w2.g and b2.g are right but the first layer's gradients are not: the mistake is in "
        "relu_grad or in the first lin_grad call (its arguments: inp, l1, w1, b1)",
        locates=True,
    ),
)


def diagnose(obs: Observation) -> tuple[str, str] | None:
    """(mistake id, hint) for the first catalogue entry that recognises `obs`."""
    for mistake in CATALOGUE:
        try:
            if mistake.detect(obs):
                return mistake.id, mistake.text(obs)
        except (RuntimeError, KeyError, IndexError, ValueError, TypeError):
            continue  # a detector that does not apply to these shapes
    return None


_BY_ID = {m.id: m for m in CATALOGUE}


def mistake(mistake_id: str) -> Mistake:
    """The catalogue entry of that id."""
    return _BY_ID[mistake_id]
