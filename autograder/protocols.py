"""The ways student code is called: one `Protocol` record each, declared once here and
read by every module that needs one of its facts. No torch here: the exercise table
imports this, and the CLI and the grader read the table before they need torch.

A protocol has a `name`, which is also the name of its call recipe on the other side of
the kernel boundary (`RECIPES` in `kernel/recipes.py`, which cannot import this module:
it runs in the student's kernel); the name of the `Maths` it is graded on (inputs, the
reference, autograd: `maths.py`); how the call reads to a student (`call`, e.g.
`lin_grad(inp, out, w, b)`); and which function computes the gradients (`grads`, e.g.
`Lin.backward`), for hints. A test holds the names on both sides of the boundary equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .maths import Maths

__all__ = ["PROTOCOLS", "Case", "Protocol", "get"]


@dataclass(frozen=True)
class Case:
    """One set of inputs. `dims` is read by the check's protocol's maths: matmul
    (ar, ac, bc); mse (N,); relu (rows, cols); lin (N, n_in, n_out); network
    (N, n_in, n_hidden)."""

    dims: tuple[int, ...]
    dtype: str = "float32"
    zeros: bool = False  # put exact zeros where the maths has a kink (relu inputs)
    # matrices as non-contiguous views (a transpose's strides), as `x.t()` or a slice
    # gives them: code written with `.view` fails on them
    strided: bool = False

    @property
    def name(self) -> str:
        sizes = " x ".join(str(d) for d in self.dims)
        return (f"{sizes}, {self.dtype}" + (", with exact zeros" if self.zeros else "")
                + (", non-contiguous" if self.strided else ""))  # fmt: skip


@dataclass(frozen=True)
class Protocol:
    name: str  # and the kernel's recipe for it
    maths_name: str  # the `Maths` in maths.py it is graded on
    call: str  # the call as a student reads it; "{t}" is the graded name
    grads: str  # the function that computes the gradients; "{t}" is the graded name

    def __str__(self) -> str:
        return self.name

    @property
    def maths(self) -> Maths:
        from .maths import MATHS  # torch, only once inputs are made or compared

        return MATHS[self.maths_name]

    def call_form(self, target: str) -> str:
        return self.call.format(t=target)

    def grad_function(self, target: str) -> str:
        return self.grads.format(t=target)


MATMUL_CALL = Protocol("matmul", "matmul", "{t}(a, b)", "{t}")
MSE_GRAD = Protocol("mse_grad", "mse", "{t}(inp, targ)", "{t}")
RELU_GRAD = Protocol("relu_grad", "relu", "{t}(inp, out)", "{t}")
LIN_GRAD = Protocol("lin_grad", "lin", "{t}(inp, out, w, b)", "{t}")
FORWARD_AND_BACKWARD = Protocol("forward_and_backward", "network", "{t}(inp, targ)", "{t}")
MSE_CLASS = Protocol("mse_class", "mse", "{t}().backward()", "{t}.backward")
RELU_CLASS = Protocol("relu_class", "relu", "{t}().backward()", "{t}.backward")
LIN_CLASS = Protocol("lin_class", "lin", "{t}(w, b).backward()", "{t}.backward")
MODEL_CLASS = Protocol("model_class", "network", "{t}(w1, b1, w2, b2)", "{t}.backward")

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
