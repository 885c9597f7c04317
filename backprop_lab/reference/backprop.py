"""The forward and backward pass of a two-layer MLP, by hand.

Shapes, as in the lesson: `inp` (N, n_in), `w` (n_in, n_out), `b` (n_out,),
`out` (N, n_out), `targ` (N,). Each backward function reads the gradient of the loss
with respect to its layer's output from `out.g` and stores the gradients with respect
to its inputs on their `.g` attribute. Nothing here creates a tensor on another device
or in another dtype than its inputs.

`.g` is the lesson's own attribute, set on torch's Tensor, which declares no such
attribute: hence each `type: ignore[attr-defined]` below (the lines read as the lesson
writes them).
"""

from __future__ import annotations

from torch import Tensor

__all__ = [
    "forward_and_backward",
    "lin",
    "lin_grad",
    "mse",
    "mse_grad",
    "relu",
    "relu_grad",
]


def lin(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    return x @ w + b


def relu(x: Tensor) -> Tensor:
    return x.clamp_min(0.0)


def mse(output: Tensor, targ: Tensor) -> Tensor:
    # output is (N, 1); [:, 0] rather than squeeze() keeps batch size 1 a vector.
    return (output[:, 0] - targ).pow(2).mean()


def mse_grad(inp: Tensor, targ: Tensor) -> None:
    # loss = (1/N) sum_n (inp[n, 0] - targ[n])^2
    # so d loss / d inp[n, 0] = 2 (inp[n, 0] - targ[n]) / N.
    # unsqueeze(-1) gives (N, 1) like inp; (N, 1) - (N,) would broadcast to (N, N).
    inp.g = 2.0 * (inp[:, 0] - targ).unsqueeze(-1) / inp.shape[0]  # type: ignore[attr-defined]


def relu_grad(inp: Tensor, out: Tensor) -> None:
    # out = max(inp, 0): the slope is 1 where inp > 0 and 0 elsewhere (0 at exactly 0,
    # one valid subgradient; autograd's clamp_min picks 1 there).
    inp.g = (inp > 0).to(out.g.dtype) * out.g  # type: ignore[attr-defined]


def lin_grad(inp: Tensor, out: Tensor, w: Tensor, b: Tensor) -> None:
    # out = inp @ w + b.
    # d loss / d inp[n, i] = sum_j out.g[n, j] w[i, j]         -> out.g @ w.T     (N, n_in)
    inp.g = out.g @ w.t()  # type: ignore[attr-defined]
    # d loss / d w[i, j]   = sum_n inp[n, i] out.g[n, j]       -> inp.T @ out.g   (n_in, n_out)
    # (a matmul: never the (N, n_in, n_out) outer product, which at MNIST scale is 7 GiB)
    w.g = inp.t() @ out.g  # type: ignore[attr-defined]
    # b is added to every row, so its gradient sums the rows           (n_out,)
    b.g = out.g.sum(0)  # type: ignore[attr-defined]


def forward_and_backward(
    inp: Tensor, targ: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor
) -> Tensor:
    """One pass of lin -> relu -> lin -> mse; sets `.g` on inp, w1, b1, w2, b2.
    Returns the loss (the backward pass does not need it)."""
    l1 = lin(inp, w1, b1)
    l2 = relu(l1)
    out = lin(l2, w2, b2)
    loss = mse(out, targ)

    mse_grad(out, targ)
    lin_grad(l2, out, w2, b2)
    relu_grad(l1, l2)
    lin_grad(inp, l1, w1, b1)
    return loss
