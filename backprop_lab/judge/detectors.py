"""The tests the mistake catalogue's entries are made of: each reads an `Observation` and
says whether it looks like one known mistake. Pure functions of tensors and data."""

from __future__ import annotations

import re

from ..course import MSE, NETWORK, RELU
from .compare import is_close
from .observation import Observation
from .readback import Value


def scaled(obs: Observation, factor: float) -> bool:
    got, want = obs.tensor(), obs.expected
    return got is not None and want is not None and is_close(got, want * factor)


def batch(obs: Observation) -> int:
    return int(obs.inputs["inp"].shape[0])


def is_bias(obs: Observation) -> bool:
    return obs.value in ("b.g", "b1.g", "b2.g")


def returned_instead(obs: Observation) -> bool:
    if obs.got.get(obs.value, Value("missing")).kind != "missing" or obs.expected is None:
        return False
    ret = obs.got.get("return")
    candidates = [ret] if ret is not None and ret.kind == "tensor" else []
    if ret is not None and ret.kind == "sequence":
        candidates = [v for v in ret.items if v.kind == "tensor"]
    return any(
        v.tensor is not None and is_close(v.tensor.double(), obs.expected) for v in candidates
    )


def grad_not_g(obs: Observation) -> bool:
    if not obs.value.endswith(".g") or obs.got.get(obs.value, Value("missing")).kind != "missing":
        return False
    return obs.got.get(obs.value[:-2] + ".grad") is not None


def grad_not_g_hint(obs: Observation) -> str:
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


def transposed(obs: Observation) -> bool:
    got, want = obs.tensor(), obs.expected
    return (
        got is not None
        and want is not None
        and want.dim() == 2
        and is_close(got, want.t())
        and not is_close(want, want.t())
    )


def bias_not_summed(obs: Observation) -> bool:
    got, want = obs.tensor(), obs.expected
    return (
        is_bias(obs)
        and got is not None
        and want is not None
        and got.dim() == 2
        and got.shape[0] == batch(obs)
        and is_close(got.sum(0), want)
    )


def bias_averaged(obs: Observation) -> bool:
    return is_bias(obs) and batch(obs) > 1 and scaled(obs, 1 / batch(obs))


def mse_values(obs: Observation) -> bool:
    return obs.maths in (MSE, NETWORK)


def n_by_n(obs: Observation) -> bool:
    got = obs.tensor()
    n = batch(obs) if "inp" in obs.inputs else 0
    # (N, N), or (N, N, 1) when the student then unsqueezed it
    square = got is not None and n > 1 and tuple(got.shape[:2]) == (n, n)
    return (mse_values(obs) and square) or (
        mse_values(obs)
        and obs.error_matches(rf"mat1 and mat2 shapes cannot be multiplied \({n}x{n} ")
    )


def flat_inp_g(obs: Observation) -> bool:
    got, want = obs.tensor(), obs.expected
    return (
        got is not None
        and want is not None
        and want.dim() == 2
        and want.shape[1] == 1
        and got.dim() == 1
        and is_close(got, want[:, 0])
    )


def relu_out_g_mask(obs: Observation) -> bool:
    got = obs.tensor()
    if obs.maths is not RELU or got is None:
        return False
    og = obs.inputs["out.g"]
    return is_close(got, (og > 0).double() * og)


def relu_dropped_out_g(obs: Observation) -> bool:
    got = obs.tensor()
    if obs.maths is not RELU or got is None:
        return False
    return is_close(got, (obs.inputs["inp"] > 0).double())


_NETWORK_GRADS = ("inp", "w1", "b1", "w2", "b2")


def shifted_relu(obs: Observation) -> bool:
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


def first_layer_only(obs: Observation) -> bool:
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


def device_error(obs: Observation) -> bool:
    return obs.error_matches(r"Expected all tensors to be on the same device") or (
        obs.verdict is not None and obs.verdict.reason == "device"
    )


_METHODS = ("float", "double", "t", "squeeze", "unsqueeze", "sum", "mean", "clone", "abs",
            "exp", "sqrt", "numel", "dim", "size", "item", "relu", "clamp_min", "pow")  # fmt: skip


def bare_method(obs: Observation) -> str | None:
    """The tensor method the error line uses without calling it, e.g. `.float`."""
    line = (obs.error or {}).get("line") or ""
    for m in re.finditer(r"\.([A-Za-z_]\w*)\b(?!\s*\()", line):
        if m.group(1) in _METHODS:
            return m.group(1)
    return None


def who(obs: Observation) -> str:
    return obs.protocol.grad_function(obs.target)
