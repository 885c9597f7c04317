"""How the training assignment's known mistakes look in a failed comparison: the loss for
classification computed unstably or over the wrong dimension, its mean or its target
forgotten, labels taken as one-hot columns, and a training loop that leaves the
parameters as they were or lets gradients pile up. Pure: each one recomputes the mistake
from the observation's inputs (float64) and asks whether it is what the student got."""

from __future__ import annotations

import torch
from torch import Tensor

from ..course import crossentropy, lesson, training
from .compare import is_close
from .observation import Observation

__all__ = [
    "gradients_piled_up",
    "loss_maths",
    "mean_forgotten",
    "params_unchanged",
    "softmax_over_rows",
    "target_not_subtracted",
    "unstable",
    "whole_columns",
]

_LOSS = (crossentropy.LOG_SOFTMAX_MATHS, crossentropy.LOGSUMEXP_MATHS, crossentropy.NLL_MATHS,
         crossentropy.CROSS_ENTROPY_MATHS, crossentropy.GRAD_MATHS)  # fmt: skip


def loss_maths(obs: Observation) -> bool:
    return obs.maths in _LOSS


def _is(obs: Observation, wrong: Tensor) -> bool:
    got = obs.tensor()
    return got is not None and got.shape == wrong.shape and is_close(got, wrong)


def _softmax(x: Tensor, dim: int) -> Tensor:
    return (x - x.logsumexp(dim, keepdim=True)).exp()


def unstable(obs: Observation) -> bool:
    """inf or NaN from the loss's functions on large logits: `exp` overflowed."""
    return (loss_maths(obs) and obs.verdict is not None and obs.verdict.reason == "nan"
            and obs.inputs["inp"].abs().max().item() > 80)  # fmt: skip


def softmax_over_rows(obs: Observation) -> bool:
    """The softmax (or its log, or logsumexp) taken down each column, over the batch."""
    if not loss_maths(obs) or obs.maths is crossentropy.NLL_MATHS:
        return False
    x, targ = obs.inputs["inp"], obs.inputs["targ"].reshape(-1)
    if obs.maths is crossentropy.LOGSUMEXP_MATHS:
        return _is(obs, x.logsumexp(0))
    if obs.maths is crossentropy.LOG_SOFTMAX_MATHS:
        wrong = x - x.logsumexp(0, keepdim=True)
    elif obs.maths is crossentropy.CROSS_ENTROPY_MATHS:
        wrong = -(x - x.logsumexp(0, keepdim=True)).gather(1, targ[:, None]).mean()
    else:
        wrong = (_softmax(x, 0) - _one_hot(x, targ)) / len(x)
    return len(x) > 1 and _is(obs, wrong)


def _one_hot(x: Tensor, targ: Tensor) -> Tensor:
    return torch.nn.functional.one_hot(targ, x.shape[1]).to(x.dtype)


def mean_forgotten(obs: Observation) -> bool:
    """The loss (or its gradient) summed over the batch: N times the mean."""
    if obs.maths not in (crossentropy.NLL_MATHS, crossentropy.CROSS_ENTROPY_MATHS,
                         crossentropy.GRAD_MATHS):  # fmt: skip
        return False
    want, n = obs.expected, len(obs.inputs["inp"])
    return n > 1 and want is not None and _is(obs, want * n)


def whole_columns(obs: Observation) -> bool:
    """`inp[:, targ]`: every label's column for every row, (N, N), where each row wants
    its own label (`inp[range(N), targ]`)."""
    if obs.maths not in (crossentropy.NLL_MATHS, crossentropy.CROSS_ENTROPY_MATHS):
        return False
    x, targ = obs.inputs["inp"], obs.inputs["targ"].reshape(-1)
    if obs.maths is crossentropy.CROSS_ENTROPY_MATHS:
        x = lesson.log_softmax(x)
    return len(x) > 1 and _is(obs, -x[:, targ].mean())


def target_not_subtracted(obs: Observation) -> bool:
    """cross_entropy_grad as softmax / N, without the one-hot target taken off."""
    if obs.maths is not crossentropy.GRAD_MATHS:
        return False
    x = obs.inputs["inp"]
    return _is(obs, _softmax(x, -1) / len(x))


# -- fit ----------------------------------------------------------------------------------------


def params_unchanged(obs: Observation) -> bool:
    """fit left the caller's parameter as it was: a name rebound, not the tensor updated."""
    if obs.maths is not training.FIT_MATHS or obs.value not in training.PARAMS:
        return False
    return _is(obs, obs.inputs[obs.value])


def gradients_piled_up(obs: Observation) -> bool:
    """Each step applied the sum of every gradient so far: `.g` added to, never cleared."""
    if obs.maths is not training.FIT_MATHS or obs.value not in training.PARAMS:
        return False
    piled, _ = training.sgd(obs.inputs, pile_up=True)
    return _is(obs, piled[obs.value])
