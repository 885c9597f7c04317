"""Reference implementation of the matmul and backprop lessons.

Every grade is measured against these functions (in float64); they are tested against
torch autograd in `tests/test_reference.py`.
"""

from .backprop import forward_and_backward, lin, lin_grad, mse, mse_grad, relu, relu_grad
from .matmul import (
    LADDER,
    matmul,
    matmul_broadcast,
    matmul_einsum,
    matmul_elementwise,
    matmul_loops,
    matmul_torch,
)
from .modules import Lin, Model, Mse, Relu

__all__ = [
    "LADDER",
    "Lin",
    "Model",
    "Mse",
    "Relu",
    "forward_and_backward",
    "lin",
    "lin_grad",
    "matmul",
    "matmul_broadcast",
    "matmul_einsum",
    "matmul_elementwise",
    "matmul_loops",
    "matmul_torch",
    "mse",
    "mse_grad",
    "relu",
    "relu_grad",
]
