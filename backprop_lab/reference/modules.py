"""The class refactor: each layer keeps what its backward pass needs.

`__call__` runs the forward pass and remembers `inp` and `out`; `backward` reads
`self.out.g` and sets `.g` on the layer's inputs and parameters, calling the
functions of `backprop.py` (through the module, so each derivative is written once and
a change to it reaches the classes too).
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor

from . import backprop

__all__ = ["Lin", "Model", "Mse", "Relu"]


class Relu:
    def __call__(self, inp: Tensor) -> Tensor:
        self.inp = inp
        self.out = backprop.relu(inp)
        return self.out

    def backward(self) -> None:
        backprop.relu_grad(self.inp, self.out)


class Lin:
    def __init__(self, w: Tensor, b: Tensor) -> None:
        self.w, self.b = w, b

    def __call__(self, inp: Tensor) -> Tensor:
        self.inp = inp
        self.out = backprop.lin(inp, self.w, self.b)
        return self.out

    def backward(self) -> None:
        backprop.lin_grad(self.inp, self.out, self.w, self.b)


class Mse:
    def __call__(self, inp: Tensor, targ: Tensor) -> Tensor:
        self.inp, self.targ = inp, targ
        self.out = backprop.mse(inp, targ)
        return self.out

    def backward(self) -> None:
        backprop.mse_grad(self.inp, self.targ)


class _Layer(Protocol):
    """What Model asks of a layer: Relu and Lin."""

    def __call__(self, inp: Tensor) -> Tensor: ...

    def backward(self) -> None: ...


class Model:
    def __init__(self, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> None:
        self.layers: list[_Layer] = [Lin(w1, b1), Relu(), Lin(w2, b2)]
        self.loss = Mse()

    def __call__(self, x: Tensor, targ: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.loss(x, targ)

    def backward(self) -> None:
        self.loss.backward()
        for layer in reversed(self.layers):
            layer.backward()
