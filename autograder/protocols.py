"""The ways student code is called: one `Protocol` record each, declared once here and
read by every module that needs one of its facts.

A protocol has a `name`, which is also the name of its call recipe on the other side of
the kernel boundary (`RECIPES` in `kernel/recipes.py`, which cannot import this module:
it runs in the student's kernel); the `Maths` it is graded on (inputs, the reference,
autograd); how the call reads to a student (`call`, e.g. `lin_grad(inp, out, w, b)`); and
which function computes the gradients (`grads`, e.g. `Lin.backward`), for hints. A test
holds the names on both sides of the boundary equal.

`expected_values` returns the reference after checking it against autograd, so a bug in
`reference/` is a loud grader error, never a wrong grade.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from .maths import LIN, MATMUL, MSE, NETWORK, RELU, Case, Expected, GraderBug, Inputs, Maths

__all__ = [
    "PROTOCOLS",
    "Expected",
    "GraderBug",
    "Protocol",
    "expected_values",
    "get",
    "make_inputs",
]


@dataclass(frozen=True)
class Protocol:
    name: str  # and the kernel's recipe for it
    maths: Maths
    call: str  # the call as a student reads it; "{t}" is the graded name
    grads: str  # the function that computes the gradients; "{t}" is the graded name

    def __str__(self) -> str:
        return self.name

    def call_form(self, target: str) -> str:
        return self.call.format(t=target)

    def grad_function(self, target: str) -> str:
        return self.grads.format(t=target)


MATMUL_CALL = Protocol("matmul", MATMUL, "{t}(a, b)", "{t}")
MSE_GRAD = Protocol("mse_grad", MSE, "{t}(inp, targ)", "{t}")
RELU_GRAD = Protocol("relu_grad", RELU, "{t}(inp, out)", "{t}")
LIN_GRAD = Protocol("lin_grad", LIN, "{t}(inp, out, w, b)", "{t}")
FORWARD_AND_BACKWARD = Protocol("forward_and_backward", NETWORK, "{t}(inp, targ)", "{t}")
MSE_CLASS = Protocol("mse_class", MSE, "{t}().backward()", "{t}.backward")
RELU_CLASS = Protocol("relu_class", RELU, "{t}().backward()", "{t}.backward")
LIN_CLASS = Protocol("lin_class", LIN, "{t}(w, b).backward()", "{t}.backward")
MODEL_CLASS = Protocol("model_class", NETWORK, "{t}(w1, b1, w2, b2)", "{t}.backward")

PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (MATMUL_CALL, MSE_GRAD, RELU_GRAD, LIN_GRAD, FORWARD_AND_BACKWARD,
              MSE_CLASS, RELU_CLASS, LIN_CLASS, MODEL_CLASS)
}  # fmt: skip


def get(protocol: Protocol | str) -> Protocol:
    """The record itself, or the one of that name."""
    if isinstance(protocol, Protocol):
        return protocol
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        raise KeyError(f"no protocol {protocol!r}; known: {', '.join(PROTOCOLS)}") from None


def make_inputs(protocol: Protocol | str, case: Case, seed: int, salt: str) -> Inputs:
    """The inputs for one case. Each (seed, salt) gives its own stream, so adding a case
    or a check does not change the inputs of the others."""
    gen = torch.Generator().manual_seed(_stable_hash(f"{seed}/{salt}"))
    return get(protocol).maths.make(case, gen)


def expected_values(
    protocol: Protocol | str, inputs: Inputs, values: tuple[str, ...]
) -> dict[str, Expected]:
    """The reference for everything the protocol produces; `values` (those graded) are
    cross-checked against autograd where the maths has a single answer. The rest help
    recognise mistakes (right second-layer gradients point at the first layer)."""
    p = get(protocol)
    want = p.maths.reference(inputs)
    oracle = p.maths.autograd(inputs)
    for name in values:
        exp, other = want[name], oracle[name]
        keep = ~exp.free if exp.free is not None else torch.ones_like(exp.value, dtype=torch.bool)
        a, b = exp.value[keep], other[keep]
        scale = max(b.norm().item(), 1e-300)
        if exp.value.shape != other.shape or (a - b).norm().item() / scale > 1e-9:
            raise GraderBug(f"reference and autograd disagree on {name} ({p.name})")
    return dict(want)


def _stable_hash(text: str) -> int:
    # Python's hash() is salted per process; grading must be repeatable.
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & (2**63 - 1)
