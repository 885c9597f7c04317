"""The lesson's forward pass, as the notebooks give it to students (backprop's `forward`
cell): `lin`, `relu`, `mse`; and, for training, the loss for classification, from
PyTorch's own functions (the lesson's way of writing them is that assignment's answer).
No backward pass lives here: the grader gets every gradient from
torch autograd on these (the course's families), the way the notebook's own tests do, so
what a student installs holds no answer. The hand-written backward pass is the instructor's
`reference/`, used only as a cross-check where it is installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "classifier_logits",
    "classifier_loss",
    "cross_entropy",
    "lin",
    "log_softmax",
    "mse",
    "network_loss",
    "nll",
    "relu",
]


def lin(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    return x @ w + b


def relu(x: Tensor) -> Tensor:
    return x.clamp_min(0.0)


def mse(output: Tensor, targ: Tensor) -> Tensor:
    # output is (N, 1); [:, 0] rather than squeeze() keeps batch size 1 a vector.
    return (output[:, 0] - targ).pow(2).mean()


def network_loss(
    inp: Tensor, targ: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor
) -> Tensor:
    """lin -> relu -> lin -> mse: the loss `forward_and_backward` and `Model` differentiate."""
    return mse(lin(relu(lin(inp, w1, b1)), w2, b2), targ)


def log_softmax(x: Tensor) -> Tensor:
    # PyTorch's own, not the lesson's: the loss's functions are the training assignment's
    # exercises, and this file ships to students
    import torch

    return torch.log_softmax(x, -1)


def nll(inp: Tensor, targ: Tensor) -> Tensor:
    """Minus the mean log-probability of each row's label; labels (N,) or (N, 1)."""
    import torch.nn.functional as F

    return F.nll_loss(inp, targ.reshape(-1))


def cross_entropy(x: Tensor, targ: Tensor) -> Tensor:
    import torch.nn.functional as F

    return F.cross_entropy(x, targ.reshape(-1))


def classifier_logits(inp: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    """lin -> relu -> lin: the classifier's logits (N, classes)."""
    return lin(relu(lin(inp, w1, b1)), w2, b2)


def classifier_loss(
    inp: Tensor, targ: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor
) -> Tensor:
    """The logits' cross-entropy: the loss the classifier and `fit` differentiate."""
    return cross_entropy(classifier_logits(inp, w1, b1, w2, b2), targ)
