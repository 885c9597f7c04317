"""The catalogue's mistakes as one call of one check observes them, built by hand: the
reference values for real inputs, and what the student's code produced (a deliberately
wrong tensor: the expected gradient times 0.5, its transpose...) or the error it raised.
tests/test_mistakes.py turns each into an observation and asks the catalogue
(backprop_lab/judge/mistakes.py) to name it. Every catalogue entry has at least one case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from backprop_lab.judge.readback import Value

Tensors = dict[str, Tensor]


@dataclass(frozen=True)
class CatalogueCase:
    """One catalogue entry's mistake, as one call of one check observes it."""

    mistake: str  # the catalogue's id (backprop_lab/judge/mistakes.py)
    protocol: str  # how the student's code was called (backprop_lab/course)
    value: str  # the compared value that failed, e.g. "w.g"
    hint: str  # words the hint must contain
    # what the call produced, from the reference values and the inputs (float64): tensors
    # are the student's, in the inputs' dtype; a Value is taken as it is
    got: Callable[[Tensors, Tensors], dict[str, Tensor | Value]] = lambda want, x: {}
    error: dict[str, Any] | None = None  # the kernel's record of what the call raised
    facts: dict[str, Any] = field(default_factory=dict)  # what the kernel noticed
    dtype: str = "float32"  # the inputs'
    device: str = "cpu"  # where the inputs were
    id: str = ""  # the test's id, where one entry has several cases
    variant: str = ""  # the case's variant (Case.variant: "logits of +-1000")


def raised(kind: str, message: str = "", line: str | None = None, **extra: Any) -> dict:
    """The kernel's record of an exception in student code."""
    return {"type": kind, "message": message, "line": line, **extra}


def tensor(t: Tensor, dtype: str = "float32", device: str = "cpu") -> Value:
    return Value("tensor", t.to(getattr(torch, dtype)), dtype, device)


def shifted_relu_grads(x: Tensors) -> Tensors:
    """The network's loss and gradients with the 2019 lesson's relu, clamp_min(0) - 0.5."""
    names = ("inp", "w1", "b1", "w2", "b2")
    leaves = {k: x[k].clone().requires_grad_(k in names) for k in (*names, "targ")}
    hidden = (leaves["inp"] @ leaves["w1"] + leaves["b1"]).clamp_min(0.0) - 0.5
    loss = ((hidden @ leaves["w2"] + leaves["b2"])[:, 0] - leaves["targ"]).pow(2).mean()
    grads = torch.autograd.grad(loss, [leaves[k] for k in names])
    return {"loss": loss.detach(), **{f"{k}.g": g for k, g in zip(names, grads, strict=True)}}


NO_ATTRIBUTE_G = "'Tensor' object has no attribute 'g'"


def naive_log_softmax(x: Tensor) -> Tensor:
    """The lesson's first log_softmax, from the definition: inf and NaN on large logits."""
    return (x.exp() / x.exp().sum(-1, keepdim=True)).log()


def sgd(x: Tensors, piled: bool) -> Tensors:
    """fit's parameters after SGD from fresh gradients, or with every step's gradients
    summed (`piled`), as a `.g +=` that is never cleared gives."""
    from backprop_lab.course import lesson

    names = ("w1", "b1", "w2", "b2")
    params, kept = [x[k] for k in names], [torch.zeros_like(x[k]) for k in names]
    xs, ys, lr, bs = x["x_train"], x["y_train"].long(), x["lr"].item(), int(x["bs"].item())
    for _ in range(int(x["epochs"].item())):
        for i in range(0, len(xs), bs):
            leaves = [p.detach().requires_grad_() for p in params]
            grads = torch.autograd.grad(
                lesson.classifier_loss(xs[i : i + bs], ys[i : i + bs], *leaves), leaves
            )
            kept = [k + g for k, g in zip(kept, grads, strict=True)] if piled else list(grads)
            params = [p.detach() - lr * g for p, g in zip(leaves, kept, strict=True)]
    return dict(zip(names, params, strict=True))


LARGE = "logits of +-1000"

CASES = (
    CatalogueCase(
        mistake="softmax-overflow",
        protocol="log_softmax",
        value="return",
        variant=LARGE,
        got=lambda want, x: {"return": naive_log_softmax(x["inp"])},
        hint="Subtract each row's maximum first",
    ),
    CatalogueCase(
        mistake="softmax-overflow",
        id="softmax-overflow-in-the-gradient",
        protocol="cross_entropy_grad",
        value="inp.g",
        variant=LARGE,
        got=lambda want, x: {"inp.g": naive_log_softmax(x["inp"]).exp() / len(x["inp"])},
        hint="the logsumexp trick",
    ),
    CatalogueCase(
        mistake="softmax-wrong-dimension",
        protocol="log_softmax",
        value="return",
        got=lambda want, x: {"return": x["inp"] - x["inp"].logsumexp(0, keepdim=True)},
        hint="over each row's classes, the last dimension",
    ),
    CatalogueCase(
        mistake="softmax-wrong-dimension",
        id="logsumexp-wrong-dimension",
        protocol="logsumexp",
        value="return",
        got=lambda want, x: {"return": x["inp"].logsumexp(0)},
        hint="`logsumexp(-1)`",
    ),
    CatalogueCase(
        mistake="labels-as-columns",
        protocol="nll",
        value="return",
        got=lambda want, x: {"return": -x["inp"][:, x["targ"].long()].mean()},
        hint="`inp[range(len(targ)), targ]`",
    ),
    CatalogueCase(
        mistake="loss-mean-forgotten",
        protocol="cross_entropy",
        value="return",
        got=lambda want, x: {"return": want["return"] * len(x["inp"])},
        hint="N times too large",
    ),
    CatalogueCase(
        mistake="loss-mean-forgotten",
        id="gradient-mean-forgotten",
        protocol="cross_entropy_grad",
        value="inp.g",
        got=lambda want, x: {"inp.g": want["inp.g"] * len(x["inp"])},
        hint="divide by N",
    ),
    CatalogueCase(
        mistake="target-not-subtracted",
        protocol="cross_entropy_grad",
        value="inp.g",
        got=lambda want, x: {"inp.g": x["inp"].softmax(-1) / len(x["inp"])},
        hint="the softmax minus the one-hot target",
    ),
    CatalogueCase(
        mistake="parameters-not-updated",
        protocol="fit",
        value="w1",
        got=lambda want, x: {k: x[k] for k in ("w1", "b1", "w2", "b2")},
        hint="`p -= lr * p.g`",
    ),
    CatalogueCase(
        mistake="gradients-not-cleared",
        protocol="fit",
        value="w2",
        got=lambda want, x: sgd(x, piled=True),
        hint="the gradients pile up",
    ),
    CatalogueCase(
        mistake="not-implemented",
        protocol="mse_grad",
        value="inp.g",
        error=raised("NotImplementedError", line="raise NotImplementedError()"),
        hint="mse_grad is not implemented yet",
    ),
    CatalogueCase(
        mistake="missing-definition",
        protocol="matmul",
        value="return",
        error=raised("Missing", "no matmul defined", close="mat_mul", in_cell=True),
        hint="did you mean to name `mat_mul` `matmul`?",
    ),
    CatalogueCase(
        mistake="missing-definition",
        id="missing-definition-no-close-name",
        protocol="lin_class",
        value="inp.g",
        error=raised("Missing", "no Lin defined", close=None, in_cell=False),
        hint="the notebook defines no `Lin`: keep the name and signature",
    ),
    CatalogueCase(
        mistake="timeout",
        protocol="matmul",
        value="return",
        error=raised("Timeout", "still running after 2 s"),
        hint="did not finish in time (still running after 2 s)",
    ),
    CatalogueCase(
        mistake="device",
        protocol="matmul",
        value="return",
        device="cuda",
        got=lambda want, x: {"return": want["return"]},  # right, but left on the CPU
        hint="device=inp.device",
    ),
    CatalogueCase(
        mistake="device",
        id="device-error",
        protocol="matmul",
        value="return",
        error=raised(
            "RuntimeError",
            "Expected all tensors to be on the same device, but found at least two devices, "
            "cuda:0 and cpu!",
            "c = torch.zeros(ar, bc)",
        ),
        hint="device=inp.device",
    ),
    CatalogueCase(
        mistake="out-of-memory",
        protocol="lin_grad",
        value="inp.g",
        error=raised(
            "RuntimeError",
            "[enforce fail at alloc_cpu.cpp:114] data. DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 4000000000000 bytes.",
            "w.g = (inp[:, :, None] * out.g[:, None, :]).sum(0)",
        ),
        hint="lin_grad ran out of memory",
    ),
    CatalogueCase(
        mistake="reads-globals",
        protocol="matmul",
        value="return",
        facts={"globals": ["m1", "m2"]},
        got=lambda want, x: {"return": torch.zeros(5, 4)},  # m1 @ m2, of the notebook's shape
        hint="ignores its arguments and reads the notebook's globals `m1`, `m2`",
    ),
    CatalogueCase(
        mistake="name-not-defined",
        protocol="lin_grad",
        value="inp.g",
        error=raised(
            "NameError",
            "name 'imp' is not defined",
            "w.g = imp.t() @ out.g",
            name="imp",
            close="inp",
        ),
        hint="`imp` is not defined: did you mean `inp`?",
    ),
    CatalogueCase(
        mistake="name-not-defined",
        id="name-not-defined-no-close-name",
        protocol="matmul",
        value="return",
        error=raised(
            "NameError",
            "name 'n_rows' is not defined",
            "for i in range(n_rows):",
            name="n_rows",
            close=None,
        ),
        hint="`n_rows` is not defined in this notebook",
    ),
    CatalogueCase(
        mistake="method-without-parentheses",
        protocol="relu_grad",
        value="inp.g",
        error=raised(
            "TypeError",
            "unsupported operand type(s) for *: 'builtin_function_or_method' and 'Tensor'",
            "inp.g = (inp > 0).float * out.g",
        ),
        hint="call it, `.float()`",
    ),
    CatalogueCase(
        mistake="view-of-non-contiguous",
        protocol="matmul",
        value="return",
        error=raised(
            "RuntimeError",
            "view size is not compatible with input tensor's size "
            "and stride (at least one dimension spans across two contiguous "
            "subspaces). Use .reshape(...) instead.",
            "flat = b.view(-1)",
        ),
        hint="so use `.reshape(...)`",
    ),
    CatalogueCase(
        mistake="layer-call-returns-nothing",
        protocol="lin_class",
        value="inp.g",
        error=raised("TypeError", "Lin.__call__ returned None"),
        facts={"returns_none": "Lin.__call__"},
        hint="`Lin.__call__` returns nothing: end it with `return self.out`",
    ),
    CatalogueCase(
        # w.g divided by the batch: no mistake of its own, one factor all the same
        mistake="constant-ratio",
        protocol="lin_grad",
        value="w.g",
        got=lambda want, x: {
            "inp.g": want["inp.g"],
            "w.g": want["w.g"] / 8,
            "b.g": want["b.g"],
        },
        hint="w.g: Yours is 0.125x the expected everywhere",
    ),
    CatalogueCase(
        mistake="second-call",
        protocol="lin_grad",
        value="w.g",
        facts={"second_call": {"w.g": "doubled"}},
        got=lambda want, x: {"inp.g": want["inp.g"], "w.g": 2 * want["w.g"], "b.g": want["b.g"]},
        hint="a second call doubles `w.g`: assign the gradient (`w.g = ...`), do not add",
    ),
    CatalogueCase(
        mistake="overwrote-parameter",
        protocol="lin_class",
        value="b.g",
        facts={"replaced": ["self.b"]},
        got=lambda want, x: {"inp.g": want["inp.g"], "w.g": want["w.g"]},
        hint="replacing the parameter: store it on `self.b.g`",
    ),
    CatalogueCase(
        mistake="missing-return",
        protocol="matmul",
        value="return",
        got=lambda want, x: {"return": Value("none")},
        hint="matmul returned None: did you forget `return`?",
    ),
    CatalogueCase(
        mistake="missing-return",
        id="missing-return-model",
        protocol="model_class",
        value="loss",
        got=lambda want, x: {"loss": Value("none")},
        hint="in `__call__` (`return self.loss(x, targ)`)?",
    ),
    CatalogueCase(
        mistake="grad-instead-of-g",
        protocol="lin_grad",
        value="w.g",
        got=lambda want, x: {"w.grad": want["w.g"]},
        hint="stored on `w.grad` instead of `w.g`, and its values would have been right",
    ),
    CatalogueCase(
        mistake="grad-instead-of-g",
        id="grad-instead-of-g-wrong-values",
        protocol="relu_grad",
        value="inp.g",
        got=lambda want, x: {"inp.grad": 2 * want["inp.g"]},
        hint="and its values would also have been wrong",
    ),
    CatalogueCase(
        mistake="returned-not-stored",
        protocol="mse_grad",
        value="inp.g",
        got=lambda want, x: {"return": want["inp.g"]},
        hint="mse_grad returned the gradient instead of storing it: assign it to `inp.g`",
    ),
    CatalogueCase(
        mistake="returned-not-stored",
        id="returned-not-stored-tuple",
        protocol="lin_grad",
        value="b.g",
        got=lambda want, x: {
            "return": Value(
                "sequence",
                type="tuple",
                items=tuple(tensor(want[k]) for k in ("inp.g", "w.g", "b.g")),
            )
        },
        hint="assign it to `b.g`",
    ),
    CatalogueCase(
        mistake="accumulate-missing-g",
        protocol="lin_grad",
        value="inp.g",
        error=raised("AttributeError", NO_ATTRIBUTE_G, "w.g += inp.t() @ out.g"),
        hint="set it with `=`",
    ),
    CatalogueCase(
        mistake="backward-order",
        protocol="forward_and_backward",
        value="w2.g",
        error=raised("AttributeError", NO_ATTRIBUTE_G, "inp.g = (inp > 0).float() * out.g"),
        hint="reverse order of the forward pass",
    ),
    CatalogueCase(
        mistake="matmul-no-transpose",
        protocol="lin_grad",
        value="inp.g",
        error=raised(
            "RuntimeError",
            "mat1 and mat2 shapes cannot be multiplied (8x3 and 5x3)",
            "inp.g = out.g @ w",
        ),
        hint="w transposed (`w.t()`",
    ),
    CatalogueCase(
        mistake="mse-broadcast-n-by-n",
        protocol="mse_grad",
        value="inp.g",
        got=lambda want, x: {"inp.g": 2 * (x["inp"] - x["targ"]) / 6},  # (6, 1) - (6,)
        hint="broadcasts to an (N, N) matrix",
    ),
    CatalogueCase(
        mistake="mse-broadcast-n-by-n",
        id="mse-broadcast-n-by-n-in-the-network",
        protocol="forward_and_backward",
        value="w2.g",
        error=raised(
            "RuntimeError",
            "mat1 and mat2 shapes cannot be multiplied (8x8 and 1x4)",
            "inp.g = out.g @ w.t()",
        ),
        hint="broadcasts to an (N, N) matrix",
    ),
    CatalogueCase(
        mistake="matmul-row-not-column",
        protocol="matmul",
        value="return",
        error=raised(
            "RuntimeError",
            "The size of tensor a (4) must match the size of tensor b (5) at non-singleton "
            "dimension 1",
            "c[i] = (a[i, None] * b).sum(dim=0)",
        ),
        hint="`a[i, :, None]`",
    ),
    CatalogueCase(
        mistake="matmul-result-shape",
        protocol="matmul",
        value="return",
        got=lambda want, x: {"return": torch.zeros(3, 4)},  # torch.zeros(ar, ac)
        hint="a's rows and b's columns, (3, 5)",
    ),
    CatalogueCase(
        mistake="dtype",
        protocol="matmul",
        value="return",
        dtype="float64",
        got=lambda want, x: {"return": tensor(want["return"], "float32")},
        hint="`dtype=a.dtype`",
    ),
    CatalogueCase(
        mistake="transposed",
        protocol="lin_grad",
        value="w.g",
        got=lambda want, x: {"w.g": want["w.g"].t()},
        hint="w.g is transposed: a weight gradient has the weight's shape",
    ),
    CatalogueCase(
        mistake="bias-not-summed",
        protocol="lin_grad",
        value="b.g",
        got=lambda want, x: {"b.g": x["out.g"]},
        hint="b.g keeps one row per example",
    ),
    CatalogueCase(
        mistake="bias-averaged",
        protocol="lin_grad",
        value="b.g",
        got=lambda want, x: {"b.g": want["b.g"] / 8},
        hint="b.g is averaged over the batch",
    ),
    CatalogueCase(
        mistake="inp-g-flat",
        protocol="mse_grad",
        value="inp.g",
        got=lambda want, x: {"inp.g": want["inp.g"][:, 0]},
        hint="inp.g has shape (N,) but must have inp's shape (N, 1)",
    ),
    CatalogueCase(
        mistake="mse-missing-2",
        protocol="mse_grad",
        value="inp.g",
        got=lambda want, x: {"inp.g": 0.5 * want["inp.g"]},
        hint="needs the factor 2",
    ),
    CatalogueCase(
        mistake="mse-missing-1/N",
        protocol="mse_grad",
        value="inp.g",
        got=lambda want, x: {"inp.g": 6 * want["inp.g"]},
        hint="divides by N (`inp.shape[0]`)",
    ),
    CatalogueCase(
        mistake="sign",
        protocol="lin_grad",
        value="inp.g",
        got=lambda want, x: {"inp.g": -want["inp.g"]},
        hint="inp.g has the right size but the opposite sign",
    ),
    CatalogueCase(
        mistake="relu-mask-from-out-g",
        protocol="relu_grad",
        value="inp.g",
        got=lambda want, x: {"inp.g": (x["out.g"] > 0) * x["out.g"]},
        hint="not from the sign of `out.g`",
    ),
    CatalogueCase(
        mistake="relu-dropped-out-g",
        protocol="relu_grad",
        value="inp.g",
        got=lambda want, x: {"inp.g": (x["inp"] > 0).double()},
        hint="multiply it by `out.g`",
    ),
    CatalogueCase(
        mistake="shifted-relu",
        protocol="forward_and_backward",
        value="w2.g",
        got=lambda want, x: shifted_relu_grads(x),
        hint="your relu subtracts 0.5",
    ),
    CatalogueCase(
        mistake="shifted-relu",
        id="shifted-relu-loss",
        protocol="model_class",
        value="loss",
        got=lambda want, x: {"loss": shifted_relu_grads(x)["loss"]},
        hint="your relu subtracts 0.5",
    ),
    CatalogueCase(
        mistake="first-layer-only",
        protocol="forward_and_backward",
        value="w1.g",
        got=lambda want, x: {**want, "w1.g": 1.5 * want["w1.g"]},
        hint="w2.g and b2.g are right but the first layer's gradients are not",
    ),
)
