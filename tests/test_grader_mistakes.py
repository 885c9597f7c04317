"""The grader on notebooks with real students' mistakes, built here from the solutions:
each loses exactly the points of the checks its bug breaks (and no others) and gets the
catalogue's hint. And the other direction: the course's own code, pasted into the
student notebooks, and unusual but correct answers get full marks.

All notebooks are graded once, as a class, by `autograde grade` with two workers; the
tests then read the records.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from notebook_tools import ROOT

from autograder.batch import grade_submissions
from autograder.exercises import exercises_for
from autograder.notebook import read_notebook, replace_function
from autograder.pipeline import Options, grade

pytestmark = pytest.mark.slow

SOLUTION = {a: ROOT / "solutions" / a / f"{a}.ipynb" for a in ("matmul", "backprop")}
STUB = {a: ROOT / "assignments" / a / f"{a}.ipynb" for a in ("matmul", "backprop")}

# the checks, as "exercise cell: check name" (autograder/exercises.py)
MSE_N, MSE_1 = (
    "mse_grad: mse_grad sets inp.g, batch > 1",
    "mse_grad: mse_grad sets inp.g, batch of 1",
)
RELU, RELU_0 = "relu_grad: relu_grad sets inp.g", "relu_grad: relu_grad at inputs exactly 0"
LIN_X, LIN_W, LIN_B = (f"lin_grad: lin_grad sets {v}" for v in ("inp.g", "w.g", "b.g"))
FB_2, FB_1, FB_X = (f"forward_and_backward: forward_and_backward sets {v}"
                    for v in ("w2.g and b2.g", "w1.g and b1.g", "inp.g"))  # fmt: skip
FB = frozenset({FB_2, FB_1, FB_X})
MSE_CLASS = "layer_classes: Mse().backward() sets inp.g"
MODEL_GRADS = "model_class: model.backward() sets every .g"
MODEL_LOSS = "model_class: model(x, targ) returns the loss"
RUNGS = ("matmul_loops", "matmul_elementwise", "matmul_broadcast")
MATMUL = {cell: f"{cell}: matmul(a, b) equals a @ b" for cell in RUNGS}
MATMUL_F64 = {cell: f"{cell}: float64 inputs give a float64 result" for cell in RUNGS}


@dataclass(frozen=True)
class Mutant:
    """A solution notebook with `edits` (name, new source, cell or None) applied."""

    id: str
    assignment: str
    edits: tuple[tuple[str, str, str | None], ...]
    lost: frozenset[str]  # exactly the checks that must fail
    where: str = ""  # the check that must carry the hint
    mistake: str | None = None
    hint: str = ""


def fn(name: str, body: str, args: str) -> str:
    lines = body.strip("\n").splitlines()
    return f"def {name}({args}):\n" + "\n".join(f"    {line}" for line in lines) + "\n"


def mse_grad(body: str) -> tuple[str, str, None]:
    return ("mse_grad", fn("mse_grad", body, "inp, targ"), None)


def relu_grad(body: str) -> tuple[str, str, None]:
    return ("relu_grad", fn("relu_grad", body, "inp, out"), None)


def lin_grad(x: str, w: str, b: str) -> tuple[str, str, None]:
    return ("lin_grad", fn("lin_grad", f"{x}\n{w}\n{b}", "inp, out, w, b"), None)


def matmul(cell: str, body: str) -> tuple[str, str, str]:
    return ("matmul", fn("matmul", body, "a, b"), cell)


LIN_X_OK, LIN_W_OK, LIN_B_OK = (
    "inp.g = out.g @ w.t()",
    "w.g = inp.t() @ out.g",
    "b.g = out.g.sum(0)",
)
FB_BODY = """
l1 = lin(inp, w1, b1)
l2 = relu(l1)
out = lin(l2, w2, b2)
loss = mse(out, targ)
mse_grad(out, targ)
lin_grad(l2, out, w2, b2)
{middle}
return loss
"""
MSE_CLASS_SRC = """
class Mse:
    def __call__(self, inp, targ):
        self.inp, self.targ = inp, targ
        self.out = mse(inp, targ)
        return self.out

    def backward(self):
        self.inp.g = 2.0 * (self.inp[:, 0] - self.targ).unsqueeze(-1) / self.targ.shape[0]
"""
LIN_CLASS = "layer_classes: Lin(w, b).backward() sets inp.g, w.g, b.g"
RELU_CLASS = "layer_classes: Relu().backward() sets inp.g"
RELU_CLASS_SRC = """
class Relu:
    def __call__(self, inp):
        self.inp = inp
        self.out = relu(inp)
        return self.out

    def backward(self):
        self.inp.g = (self.out.g > 0).float() * self.out.g
"""
LIN_CLASS_SRC = """
class Lin:
    def __init__(self, w, b):
        self.w, self.b = w, b

    def __call__(self, inp):
        self.inp = inp
        self.out = lin(inp, self.w, self.b)
        return self.out

    def backward(self):
        self.inp.g = self.out.g @ self.w.t()
        self.w.g = self.inp.t() @ self.out.g
        self.b.g = self.out.g.sum(0)
"""
MODEL_NO_RETURN = """
class Model:
    def __init__(self, w1, b1, w2, b2):
        self.layers = [Lin(w1, b1), Relu(), Lin(w2, b2)]
        self.loss = Mse()

    def __call__(self, x, targ):
        for layer in self.layers:
            x = layer(x)
        self.loss(x, targ)

    def backward(self):
        self.loss.backward()
        for layer in reversed(self.layers):
            layer.backward()
"""
LOOPS = """
(ar, ac), (br, bc) = a.shape, b.shape
c = torch.zeros({shape}, dtype=a.dtype)
for i in range(ar):
    for j in range(bc):
        for k in range(ac):
            c[i, j] += a[i, k] * b[k, j]
return c
"""


def lost(*names: str) -> frozenset[str]:
    return frozenset(names)


MUTANTS = (
    Mutant(
        "mse-missing-2", "backprop",
        (mse_grad("inp.g = (inp[:, 0] - targ).unsqueeze(-1) / inp.shape[0]"),),
        lost(MSE_N, MSE_1) | FB, MSE_N, "mse-missing-2", "needs the factor 2",
    ),
    Mutant(
        # right for a batch of one, which is why that case is its own check
        "mse-missing-1/N", "backprop",
        (mse_grad("inp.g = 2.0 * (inp[:, 0] - targ).unsqueeze(-1)"),),
        lost(MSE_N) | FB, MSE_N, "mse-missing-1/N", "divides by N",
    ),
    Mutant(
        "mse-broadcast-n-by-n", "backprop",
        (mse_grad("inp.g = 2.0 * (inp - targ) / inp.shape[0]"),),
        lost(MSE_N) | FB, MSE_N, "mse-broadcast-n-by-n", "broadcasts to an (N, N) matrix",
    ),
    Mutant(
        "inp-g-flat", "backprop",
        (mse_grad("inp.g = 2.0 * (inp[:, 0] - targ) / inp.shape[0]"),),
        lost(MSE_N, MSE_1) | FB, MSE_N, "inp-g-flat", "must have inp's shape (N, 1)",
    ),
    Mutant(
        "returned-not-stored", "backprop",
        (mse_grad("return 2.0 * (inp[:, 0] - targ).unsqueeze(-1) / inp.shape[0]"),),
        lost(MSE_N, MSE_1) | FB, MSE_N, "returned-not-stored", "instead of storing it",
    ),
    Mutant(
        "relu-mask-from-out-g", "backprop",
        (relu_grad("inp.g = (out.g > 0).float() * out.g"),),
        lost(RELU, RELU_0, FB_1, FB_X), RELU, "relu-mask-from-out-g", "not from the sign",
    ),
    Mutant(
        "relu-dropped-out-g", "backprop",
        (relu_grad("inp.g = (inp > 0).to(inp.dtype)"),),
        lost(RELU, RELU_0, FB_1, FB_X), RELU, "relu-dropped-out-g", "multiply it by `out.g`",
    ),
    Mutant(
        # the whole pass then stops at an l1.g that was never set
        "grad-instead-of-g", "backprop",
        (relu_grad("inp.grad = (inp > 0).to(out.g.dtype) * out.g"),),
        lost(RELU, RELU_0) | FB, RELU, "grad-instead-of-g", "instead of `inp.g`",
    ),
    Mutant(
        "first-layer-only", "backprop",
        (relu_grad("inp.g = (inp > 0).to(out.g.dtype) * out.g.abs()"),),
        lost(RELU, RELU_0, FB_1, FB_X), FB_1, "first-layer-only", "w2.g and b2.g are right",
    ),
    Mutant(
        "transposed", "backprop",
        (lin_grad(LIN_X_OK, "w.g = out.g.t() @ inp", LIN_B_OK),),
        lost(LIN_W, FB_2, FB_1), LIN_W, "transposed", "weight's shape",
    ),
    Mutant(
        "bias-not-summed", "backprop",
        (lin_grad(LIN_X_OK, LIN_W_OK, "b.g = out.g"),),
        lost(LIN_B, FB_2, FB_1), LIN_B, "bias-not-summed", "keeps one row per example",
    ),
    Mutant(
        "bias-averaged", "backprop",
        (lin_grad(LIN_X_OK, LIN_W_OK, "b.g = out.g.mean(0)"),),
        lost(LIN_B, FB_2, FB_1), LIN_B, "bias-averaged", "not the mean",
    ),
    Mutant(
        # the chain passes the sign on to the first layer's weights, and flips it back
        # for the input: minus times minus
        "sign", "backprop",
        (lin_grad("inp.g = -(out.g @ w.t())", LIN_W_OK, LIN_B_OK),),
        lost(LIN_X, FB_1), LIN_X, "sign", "opposite sign",
    ),
    Mutant(
        # raises, so none of lin_grad's three values exists
        "matmul-no-transpose", "backprop",
        (lin_grad("inp.g = out.g @ w", LIN_W_OK, LIN_B_OK),),
        lost(LIN_X, LIN_W, LIN_B) | FB, LIN_X, "matmul-no-transpose", "`inp.g = out.g @ w.t()`",
    ),
    Mutant(
        "accumulate-missing-g", "backprop",
        (lin_grad(LIN_X_OK, "w.g += inp.t() @ out.g", LIN_B_OK),),
        lost(LIN_X, LIN_W, LIN_B) | FB, LIN_W, "accumulate-missing-g", "set it with `=`",
    ),
    Mutant(
        "backward-order", "backprop",
        (("forward_and_backward",
          fn("forward_and_backward",
             FB_BODY.format(middle="lin_grad(inp, l1, w1, b1)\nrelu_grad(l1, l2)"), "inp, targ"),
          None),),
        FB, FB_1, "backward-order", "reverse order",
    ),
    Mutant(
        "mse-class-broadcast", "backprop",
        (("Mse", MSE_CLASS_SRC.replace("self.inp[:, 0] - self.targ", "self.inp - self.targ"),
          None),),
        lost(MSE_CLASS, MODEL_GRADS), MSE_CLASS, "mse-broadcast-n-by-n", "(N, N) matrix",
    ),
    Mutant(
        "missing-return", "backprop",
        (("Model", MODEL_NO_RETURN, None),),
        lost(MODEL_LOSS), MODEL_LOSS, "missing-return", "forget `return`",
    ),
    Mutant(
        "matmul-row-not-column", "matmul",
        (matmul("matmul_broadcast", """
(ar, ac), (br, bc) = a.shape, b.shape
c = torch.zeros(ar, bc, dtype=a.dtype)
for i in range(ar):
    c[i] = (a[i, None] * b).sum(dim=0)
return c
"""),),
        lost(MATMUL["matmul_broadcast"]), MATMUL["matmul_broadcast"],
        "matmul-row-not-column", "`a[i, :, None]`",
    ),
    Mutant(
        "matmul-result-shape", "matmul",
        (matmul("matmul_loops", LOOPS.format(shape="ar, ac")),),
        lost(MATMUL["matmul_loops"]), MATMUL["matmul_loops"],
        "matmul-result-shape", "a's rows and b's columns",
    ),
    Mutant(
        "missing-definition", "matmul",
        (("matmul", fn("mat_mul", "return a @ b", "a, b"), "matmul_elementwise"),),
        lost(MATMUL["matmul_elementwise"]), MATMUL["matmul_elementwise"],
        "missing-definition", "did you mean to name `mat_mul`",
    ),
    # -- habits of real students' code (issue 9) --
    Mutant(
        "reads-globals-matmul", "matmul",
        (matmul("matmul_broadcast", "return m1 @ m2"),),
        lost(MATMUL["matmul_broadcast"]), MATMUL["matmul_broadcast"],
        "reads-globals", "ignores its arguments and reads the notebook's globals `m1`, `m2`",
    ),
    Mutant(
        "reads-globals-mse", "backprop",
        (mse_grad("n = inp.shape[0]\ninp.g = 2.0 * (inp[:, 0] - y_train[:n]).unsqueeze(-1) / n"),),
        lost(MSE_N, MSE_1) | FB, MSE_N, "reads-globals", "global `y_train`",
    ),
    Mutant(
        "misspelt-name", "backprop",
        (lin_grad(LIN_X_OK, "w.g = imp.t() @ out.g", LIN_B_OK),),
        lost(LIN_X, LIN_W, LIN_B) | FB, LIN_W, "name-not-defined", "did you mean `inp`?",
    ),
    Mutant(
        "undefined-name", "matmul",
        (matmul("matmul_elementwise", """
(ar, ac), (br, bc) = a.shape, b.shape
c = torch.zeros(ar, bc, dtype=a.dtype)
for i in range(n_rows):
    for j in range(bc):
        c[i, j] = (a[i, :] * b[:, j]).sum()
return c
"""),),
        lost(MATMUL["matmul_elementwise"]), MATMUL["matmul_elementwise"],
        "name-not-defined", "`n_rows` is not defined in this notebook",
    ),
    Mutant(
        "float-without-parentheses", "backprop",
        (relu_grad("inp.g = (inp > 0).float * out.g"),),
        lost(RELU, RELU_0) | FB, RELU, "method-without-parentheses", "call it, `.float()`",
    ),
    Mutant(
        "t-without-parentheses", "backprop",
        (lin_grad("inp.g = out.g @ w.t", LIN_W_OK, LIN_B_OK),),
        lost(LIN_X, LIN_W, LIN_B) | FB, LIN_X, "method-without-parentheses", "`.t()`",
    ),
    Mutant(
        "overwrote-parameter", "backprop",
        (("Lin", LIN_CLASS_SRC.replace("self.b.g = ", "self.b = "), None),),
        lost(LIN_CLASS, MODEL_GRADS), LIN_CLASS, "overwrote-parameter", "store it on `self.b.g`",
    ),
    Mutant(
        # the values are right: the message says so, and that only the attribute is wrong
        "w-grad-not-g", "backprop",
        (lin_grad(LIN_X_OK, "w.grad = inp.t() @ out.g", LIN_B_OK),),
        lost(LIN_W, FB_2, FB_1), LIN_W, "grad-instead-of-g", "would have been right",
    ),
    Mutant(
        "lin-grad-returns-only", "backprop",
        (lin_grad("return out.g @ w.t(), inp.t() @ out.g, out.g.sum(0)", "", ""),),
        lost(LIN_X, LIN_W, LIN_B) | FB, LIN_B, "returned-not-stored", "assign it to `b.g`",
    ),
    Mutant(
        "reads-globals-x-train", "backprop",
        (("forward_and_backward", fn("forward_and_backward",
          FB_BODY.replace("lin(inp, w1, b1)", "lin(x_train, w1, b1)").format(
              middle="relu_grad(l1, l2)\nlin_grad(inp, l1, w1, b1)"), "inp, targ"), None),),
        FB, FB_2, "reads-globals", "global `x_train`",
    ),
    Mutant(
        "squeeze-without-parentheses", "backprop",
        (mse_grad("inp.g = 2.0 * (inp.squeeze - targ).unsqueeze(-1) / inp.shape[0]"),),
        lost(MSE_N, MSE_1) | FB, MSE_1, "method-without-parentheses", "`.squeeze()`",
    ),
    Mutant(
        "mse-sign", "backprop",
        (mse_grad("inp.g = 2.0 * (targ - inp[:, 0]).unsqueeze(-1) / inp.shape[0]"),),
        lost(MSE_N, MSE_1) | FB, MSE_1, "sign", "`inp - targ`, not `targ - inp`",
    ),
    Mutant(
        # square inputs would not see it: zeros(ac, bc) has the right shape when ar == ac
        "matmul-zeros-ac-bc", "matmul",
        (matmul("matmul_loops", LOOPS.format(shape="ac, bc")),),
        lost(MATMUL["matmul_loops"]), MATMUL["matmul_loops"],
        "matmul-result-shape", "a's rows and b's columns",
    ),
    Mutant(
        "lin-class-bias-not-summed", "backprop",
        (("Lin", LIN_CLASS_SRC.replace("self.b.g = self.out.g.sum(0)", "self.b.g = self.out.g"),
          None),),
        lost(LIN_CLASS, MODEL_GRADS), LIN_CLASS, "bias-not-summed", "sums out.g over the batch",
    ),
    Mutant(
        "lin-class-no-transpose", "backprop",
        (("Lin", LIN_CLASS_SRC.replace("self.out.g @ self.w.t()", "self.out.g @ self.w"), None),),
        # Model.backward raises, and the model's exercise (backward) gets nothing
        lost(LIN_CLASS, MODEL_GRADS, MODEL_LOSS), LIN_CLASS, "matmul-no-transpose", "w.t()",
    ),
    Mutant(
        "relu-class-mask-from-out-g", "backprop",
        (("Relu", RELU_CLASS_SRC, None),),
        lost(RELU_CLASS, MODEL_GRADS), RELU_CLASS, "relu-mask-from-out-g", "not from the sign",
    ),
    Mutant(
        "matmul-missing-return", "matmul",
        (matmul("matmul_loops", LOOPS.format(shape="ar, bc").replace("return c", "c")),),
        lost(MATMUL["matmul_loops"]), MATMUL["matmul_loops"], "missing-return", "forget `return`",
    ),
)  # fmt: skip

# The course's own code (fast.ai 2019 lesson 8 and 2022 lesson 13), as students copy it.
COURSE_MATMUL = {
    "matmul_loops": LOOPS.format(shape="ar, bc").replace(", dtype=a.dtype", ""),
    "matmul_elementwise": """
ar, ac = a.shape
br, bc = b.shape
assert ac == br
c = torch.zeros(ar, bc)
for i in range(ar):
    for j in range(bc):
        c[i, j] = (a[i, :] * b[:, j]).sum()
return c
""",
    "matmul_broadcast": """
ar, ac = a.shape
br, bc = b.shape
assert ac == br
c = torch.zeros(ar, bc)
for i in range(ar):
    c[i] = (a[i].unsqueeze(-1) * b).sum(dim=0)
return c
""",
}
COURSE_BACKPROP = (
    mse_grad("inp.g = 2. * (inp.squeeze() - targ).unsqueeze(-1) / inp.shape[0]"),
    relu_grad("inp.g = (inp>0).float() * out.g"),
    lin_grad(LIN_X_OK, "w.g = (inp.unsqueeze(-1) * out.g.unsqueeze(1)).sum(0)", LIN_B_OK),
    ("forward_and_backward", fn("forward_and_backward", """
l1 = inp @ w1 + b1
l2 = relu(l1)
out = l2 @ w2 + b2
loss = mse(out, targ)
mse_grad(out, targ)
lin_grad(l2, out, w2, b2)
relu_grad(l1, l2)
lin_grad(inp, l1, w1, b1)
""", "inp, targ"), None),
    ("Relu", """
class Relu():
    def __call__(self, inp):
        self.inp = inp
        self.out = inp.clamp_min(0.)
        return self.out

    def backward(self): self.inp.g = (self.inp>0).float() * self.out.g
""", None),
    ("Lin", """
class Lin():
    def __init__(self, w, b): self.w,self.b = w,b

    def __call__(self, inp):
        self.inp = inp
        self.out = lin(inp, self.w, self.b)
        return self.out

    def backward(self):
        self.inp.g = self.out.g @ self.w.t()
        self.w.g = self.inp.t() @ self.out.g
        self.b.g = self.out.g.sum(0)
""", None),
    ("Mse", """
class Mse():
    def __call__(self, inp, targ):
        self.inp,self.targ = inp,targ
        self.out = mse(inp, targ)
        return self.out

    def backward(self):
        self.inp.g = 2. * (self.inp.squeeze() - self.targ).unsqueeze(-1) / self.targ.shape[0]
""", None),
    ("Model", """
class Model():
    def __init__(self, w1, b1, w2, b2):
        self.layers = [Lin(w1,b1), Relu(), Lin(w2,b2)]
        self.loss = Mse()

    def __call__(self, x, targ):
        for l in self.layers: x = l(x)
        return self.loss(x, targ)

    def backward(self):
        self.loss.backward()
        for l in reversed(self.layers): l.backward()
""", None),
)  # fmt: skip

# Right, but not the way the lesson writes it: full marks all the same.
UNUSUAL_BACKPROP = (
    # autograd's convention at relu's kink: slope 1 at exactly 0 (the lesson's gives 0)
    relu_grad("inp.g = torch.where(inp >= 0, out.g, torch.zeros_like(out.g))"),
    mse_grad("inp.g = (inp - targ[:, None]).mul(2).div(len(targ))"),
    lin_grad(
        "inp.g = torch.einsum('nj,ij->ni', out.g, w)",
        "w.g = torch.einsum('ni,nj->ij', inp, out.g)",
        "b.g = out.g.sum(dim=0, keepdim=False).clone()",
    ),
)
# Left-over debuggers inside graded code: skipped by the grader, never waited on.
DEBUGGERS = (
    mse_grad("breakpoint()\ninp.g = 2.0 * (inp[:, 0] - targ).unsqueeze(-1) / inp.shape[0]"),
    relu_grad("import pdb; pdb.set_trace()\ninp.g = (inp > 0).to(out.g.dtype) * out.g"),
    lin_grad(f"import ipdb; ipdb.set_trace()\n{LIN_X_OK}", LIN_W_OK, LIN_B_OK),
)
UNUSUAL_BACKPROP_2 = (
    # the mask from relu's output: the grader passes out = relu(inp), so it is the same
    relu_grad("inp.g = (out > 0).to(out.g.dtype) * out.g"),
    # `.T` for `.t()`, and a lin_grad that also returns what it stored
    lin_grad(
        "inp.g = out.g @ w.T", "w.g = inp.T @ out.g", "b.g = out.g.sum(0)\nreturn inp.g, w.g, b.g"
    ),
    (
        "forward_and_backward",
        fn(
            "forward_and_backward",
            """
l1 = inp @ w1 + b1
l2 = l1.clamp_min(0.0)
out = l2 @ w2 + b2
diff = out[:, 0] - targ
loss = diff.pow(2).mean()
mse_grad(out, targ)
lin_grad(l2, out, w2, b2)
relu_grad(l1, l2)
lin_grad(inp, l1, w1, b1)
return loss
""",
            "inp, targ",
        ),
        None,
    ),
    (
        "Relu",
        """
class Relu:
    def __call__(self, inp):
        self.inp = inp
        self.out = inp.clone().clamp_min_(0.0)
        return self.out

    def backward(self):
        self.inp.g = torch.where(self.inp > 0, self.out.g, 0.0)
""",
        None,
    ),
)
# The 2019 lesson's refactor: a Module base class whose __call__ stores args and out.
MODULE_STYLE = (
    (
        "Relu",
        """
class Module():
    def __call__(self, *args):
        self.args = args
        self.out = self.forward(*args)
        return self.out

    def forward(self): raise Exception('not implemented')
    def backward(self): self.bwd(self.out, *self.args)


class Relu(Module):
    def forward(self, inp): return inp.clamp_min(0.)
    def bwd(self, out, inp): inp.g = (inp>0).float() * out.g
""",
        None,
    ),
    (
        "Lin",
        """
class Lin(Module):
    def __init__(self, w, b): self.w,self.b = w,b

    def forward(self, inp): return inp@self.w + self.b

    def bwd(self, out, inp):
        inp.g = out.g @ self.w.t()
        self.w.g = torch.einsum("bi,bj->ij", inp, out.g)
        self.b.g = out.g.sum(0)
""",
        None,
    ),
    (
        "Mse",
        """
class Mse(Module):
    def forward (self, inp, targ): return (inp.squeeze() - targ).pow(2).mean()
    def bwd(self, out, inp, targ): inp.g = 2*(inp.squeeze()-targ).unsqueeze(-1) / targ.shape[0]
""",
        None,
    ),
    (
        "Model",
        """
class Model():
    def __init__(self, w1, b1, w2, b2):
        self.layers = [Lin(w1,b1), Relu(), Lin(w2,b2)]
        self.loss = Mse()

    def __call__(self, x, targ):
        for l in self.layers: x = l(x)
        return self.loss(x, targ)

    def backward(self):
        self.loss.backward()
        for l in reversed(self.layers): l.backward()
""",
        None,
    ),
)
# A Model that takes its weights in another order: graded by name, and told.
MODEL_ORDER = (
    (
        "Model",
        """
class Model:
    def __init__(self, w1, w2, b1, b2):
        self.layers = [Lin(w1, b1), Relu(), Lin(w2, b2)]
        self.loss = Mse()

    def __call__(self, x, targ):
        for layer in self.layers:
            x = layer(x)
        return self.loss(x, targ)

    def backward(self):
        self.loss.backward()
        for layer in reversed(self.layers):
            layer.backward()
""",
        None,
    ),
)
UNUSUAL_MATMUL = (
    matmul("matmul_broadcast", """
c = a.new_zeros(a.shape[0], b.shape[1])
for i, row in enumerate(a):
    c[i] = (row[:, None] * b).sum(0)
return c
"""),
)  # fmt: skip


def edited(path: Path, edits) -> nbformat.NotebookNode:
    nb = read_notebook(path)
    for name, source, cell in edits:
        nb = replace_function(nb, name, source, cell=cell)
    return nb


def submissions() -> dict[str, tuple[str, nbformat.NotebookNode]]:
    """student -> (assignment, notebook)"""
    subs = {m.id: (m.assignment, edited(SOLUTION[m.assignment], m.edits)) for m in MUTANTS}
    subs["course-matmul"] = (
        "matmul",
        edited(STUB["matmul"], [matmul(c, body) for c, body in COURSE_MATMUL.items()]),
    )
    subs["course-backprop"] = ("backprop", edited(STUB["backprop"], COURSE_BACKPROP))
    subs["unusual-backprop"] = ("backprop", edited(SOLUTION["backprop"], UNUSUAL_BACKPROP))
    subs["unusual-matmul"] = ("matmul", edited(SOLUTION["matmul"], UNUSUAL_MATMUL))
    subs["debuggers"] = ("backprop", edited(SOLUTION["backprop"], DEBUGGERS))
    subs["unusual-backprop-2"] = ("backprop", edited(SOLUTION["backprop"], UNUSUAL_BACKPROP_2))
    subs["module-style"] = ("backprop", edited(SOLUTION["backprop"], MODULE_STYLE))
    subs["model-order"] = ("backprop", edited(SOLUTION["backprop"], MODEL_ORDER))
    return subs


def _folder(student: str) -> str:
    return student.replace("/", "-")


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict]]:
    """student -> {check name -> Gradescope test}, with the record under key ''."""
    root = tmp_path_factory.mktemp("class")
    for student, (assignment, nb) in submissions().items():
        folder = root / "class" / _folder(student)
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{assignment}.ipynb")
    summary = grade_submissions(
        [root / "class"], root / "out", options=Options(seed=11), workers=3, progress=False
    )
    out = {}
    for rec in summary.records:
        tests = {f"{t['number']}: {t['name'].split(': ', 1)[1]}": t for t in rec["tests"]}
        folder = root / "out" / rec["extra_data"]["key"]
        report = folder / "feedback.html"
        feedback = {"html": report.read_text(encoding="utf-8") if report.exists() else ""}
        out[rec["extra_data"]["student"]] = {"": rec, FEEDBACK: feedback, **tests}
    return out


FEEDBACK = "<feedback>"  # the key of a student's feedback report in `graded`


def full_marks(assignment: str) -> int:
    return sum(e.points for e in exercises_for(assignment))


def points(assignment: str, names: frozenset[str]) -> int:
    return sum(
        c.points
        for e in exercises_for(assignment)
        for c in e.checks
        if f"{e.cell}: {c.name}" in names
    )


def test_there_are_enough_mistakes() -> None:
    assert len(MUTANTS) >= 12
    assert len({m.mistake for m in MUTANTS}) >= 12


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.id)
def test_mistake_loses_exactly_its_points_with_the_hint(graded, mutant: Mutant) -> None:
    tests = dict(graded[_folder(mutant.id)])
    record = tests.pop("")
    tests.pop(FEEDBACK)
    assert record["extra_data"]["status"] == "graded", record["output"]
    failed = {name for name, t in tests.items() if t["status"] == "failed" and t["max_score"]}
    assert failed == mutant.lost, f"{mutant.id}: failed {sorted(failed)}"
    assert record["score"] == full_marks(mutant.assignment) - points(mutant.assignment, failed)
    flagged = tests[mutant.where]
    assert mutant.mistake in flagged["tags"], (flagged["tags"], flagged["output"])
    # the hint: on the flagged check, or, when a check above it in the same exercise gave
    # the very same hint, there (the flagged one then says "the same as above")
    names = [n for n in tests if n.split(": ")[0] == mutant.where.split(": ")[0]]
    above = [tests[n]["output"] for n in names[: names.index(mutant.where)]]
    assert mutant.hint in flagged["output"] or (
        "Hint: the same as above" in flagged["output"]
        and any(mutant.hint in output for output in above)
    ), flagged["output"]
    for name in failed:  # every lost point comes with a reason
        assert tests[name]["output"] and tests[name]["output"] != "Passed."


def _text(page: str) -> str:
    """What a reader sees of an HTML page: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


# The value a failed check's message is about, when the report can draw it.
_DRAWN = re.compile(r": (\w+\.g) (?:has shape|is wrong|at an input exactly 0)")


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.id)
def test_feedback_report_names_the_mistake_and_shows_it(graded, mutant: Mutant) -> None:
    page = graded[_folder(mutant.id)][FEEDBACK]["html"]
    assert page, f"{mutant.id}: no feedback.html"
    text = _text(page)
    flagged = graded[_folder(mutant.id)][mutant.where]
    assert mutant.hint.replace("`", "") in text.replace("`", "")
    assert "Recognised mistake" not in text  # the hint says it in words, not an internal id
    drawn = _DRAWN.search(flagged["output"])
    if drawn:  # a gradient the report can draw: its heat map is there, as a PNG
        assert f'alt="heat map of {drawn.group(1)}: yours against expected"' in page
        assert 'src="data:image/png;base64,' in page
    if mutant.assignment == "matmul":
        assert 'alt="the matmul speed ladder, log scale"' in page


def test_most_mistake_reports_have_a_heat_map(graded) -> None:
    # the parametrized test checks each picture; this keeps it from passing vacuously
    drawn = [m.id for m in MUTANTS if 'alt="heat map of' in graded[_folder(m.id)][FEEDBACK]["html"]]
    assert len(drawn) >= 15, drawn


@pytest.mark.parametrize(
    "student",
    [
        "course-matmul",
        "course-backprop",
        "unusual-backprop",
        "unusual-backprop-2",
        "unusual-matmul",
        "module-style",
        "model-order",
        "debuggers",
    ],
)
def test_right_answers_get_full_marks(graded, student: str) -> None:
    tests = dict(graded[student])
    record = tests.pop("")
    tests.pop(FEEDBACK)
    assert record["score"] == record["extra_data"]["max_score"], [
        t["output"] for t in tests.values() if t["status"] == "failed"
    ]


def test_course_matmul_is_not_ready_for_a_gpu_and_is_told_on_the_cpu(graded) -> None:
    # the 2019 lesson's `torch.zeros(ar, bc)` puts the result on the CPU whatever the
    # inputs' device: full marks on the CPU, and the report says it would fail on a GPU
    record = graded["course-matmul"][""]
    assert record["score"] == full_marks("matmul")
    assert "Device readiness: in matmul, `c = torch.zeros(ar, bc)`" in record["output"]
    page = _text(graded["course-matmul"][FEEDBACK]["html"])
    assert "makes a tensor with torch.zeros and no device=" in page.replace("`", "")
    for student in ("course-backprop", "unusual-matmul"):  # they take the inputs' device
        assert "Device readiness" not in graded[student][""]["output"]


def test_course_matmul_float32_zeros_is_advice_not_points(graded) -> None:
    # `torch.zeros(ar, bc)` is float32 whatever the inputs: said, worth nothing
    for name in MATMUL_F64.values():
        advice = graded["course-matmul"][name]
        assert advice["status"] == "failed" and advice["max_score"] == 0
        assert "dtype" in advice["tags"]


def test_untouched_backprop_stub_says_not_implemented_everywhere() -> None:
    result = grade(STUB["backprop"], Options(seed=5))
    assert result.score.total == 0
    for check in result.score.checks:
        assert check.mistake == "not-implemented", (check.name, check.message)
        assert "is not implemented yet" in check.message


def test_a_hanging_function_costs_only_its_exercise(tmp_path: Path) -> None:
    nb = edited(SOLUTION["matmul"], [matmul("matmul_elementwise", "while True:\n    pass")])
    path = tmp_path / "matmul.ipynb"
    nbformat.write(nb, path)
    result = grade(path, Options(cell_timeout=4, call_timeout=2))
    by_exercise = result.score.by_exercise()
    assert by_exercise == {"matmul_loops": (3, 3), "matmul_elementwise": (0, 2),
                           "matmul_broadcast": (5, 5)}  # fmt: skip
    hung = [c for c in result.score.checks if c.exercise == "matmul_elementwise"]
    assert all(c.mistake == "timeout" and "did not finish in time" in c.message for c in hung)
    assert any("longer than the 4 s limit" in note for note in result.score.notes)


def test_left_over_debuggers_are_skipped_and_reported(graded) -> None:
    # Without the kernel's no-ops, pdb waits on a stdin no one answers (or raises) and
    # `import ipdb` fails: every function here would lose its points.
    record = graded["debuggers"][""]
    assert record["score"] == full_marks("backprop")
    assert "skipped" in record["output"] and "debugger call(s)" in record["output"]


def test_model_with_weights_in_another_order_is_told(graded) -> None:
    record = graded["model-order"][""]
    assert "(w1, w2, b1, b2), not the lesson's (w1, b1, w2, b2)" in record["output"]
