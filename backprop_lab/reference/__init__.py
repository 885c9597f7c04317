"""Reference implementation of the matmul and backprop lessons, and of cross-entropy and
the first training loop.

Every grade is measured against these functions (in float64); they are tested against
torch autograd in `tests/test_reference.py` and `tests/test_reference_training.py`.
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
from .training import (
    Classifier,
    CrossEntropy,
    accuracy,
    cross_entropy,
    cross_entropy_grad,
    fit,
    init_params,
    log_softmax,
    log_softmax_naive,
    logsumexp,
    nll,
)

__all__ = [
    "LADDER",
    "Classifier",
    "CrossEntropy",
    "Lin",
    "Model",
    "Mse",
    "Relu",
    "accuracy",
    "cross_entropy",
    "cross_entropy_grad",
    "fit",
    "forward_and_backward",
    "init_params",
    "lin",
    "lin_grad",
    "log_softmax",
    "log_softmax_naive",
    "logsumexp",
    "matmul",
    "matmul_broadcast",
    "matmul_einsum",
    "matmul_elementwise",
    "matmul_loops",
    "matmul_torch",
    "mse",
    "mse_grad",
    "nll",
    "relu",
    "relu_grad",
]
