"""Right answers, as students write them: the course's own code and unusual but correct
code. Every one must get full marks (tests/test_grader_mistakes.py, and every grading path
in tests/test_one_verdict.py). tests/mistake_cases.py breaks some of these lines on purpose.

`course_notebook(assignment)` is the notebook as handed out with the course's own code
pasted in. An exercise added since the lesson (no code of its own here) is answered by the
reference, as `autograde demo`'s correct student answers it: a new exercise needs no entry
in this file. Where the reference's answer cannot be pasted in (matmul's rungs call the
reference's helpers), the missing exercise is named.
"""

from __future__ import annotations

from nbformat import NotebookNode
from notebook_tools import STUB, Edit, edited, fn, lin_grad, matmul, mse_grad, relu_grad

# lin_grad's three lines, as the lesson writes them
LIN_X_OK = "inp.g = out.g @ w.t()"
LIN_W_OK = "w.g = inp.t() @ out.g"
LIN_B_OK = "b.g = out.g.sum(0)"

# forward_and_backward with the backward steps (but the first) left to `{middle}`
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

# matmul with three loops, allocating a result of `{shape}`
LOOPS = """
(ar, ac), (br, bc) = a.shape, b.shape
c = torch.zeros({shape}, dtype=a.dtype)
for i in range(ar):
    for j in range(bc):
        for k in range(ac):
            c[i, j] += a[i, k] * b[k, j]
return c
"""

# the lesson's classes, as the solution writes them
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
MSE_CLASS_SRC = """
class Mse:
    def __call__(self, inp, targ):
        self.inp, self.targ = inp, targ
        self.out = mse(inp, targ)
        return self.out

    def backward(self):
        self.inp.g = 2.0 * (self.inp[:, 0] - self.targ).unsqueeze(-1) / self.targ.shape[0]
"""

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
# The lesson's Model, as the course writes it.
COURSE_MODEL = Edit(
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
)

COURSE_BACKPROP = (
    mse_grad("inp.g = 2. * (inp.squeeze() - targ).unsqueeze(-1) / inp.shape[0]"),
    relu_grad("inp.g = (inp>0).float() * out.g"),
    lin_grad(LIN_X_OK, "w.g = (inp.unsqueeze(-1) * out.g.unsqueeze(1)).sum(0)", LIN_B_OK),
    Edit(
        "forward_and_backward",
        fn(
            "forward_and_backward",
            """
l1 = inp @ w1 + b1
l2 = relu(l1)
out = l2 @ w2 + b2
loss = mse(out, targ)
mse_grad(out, targ)
lin_grad(l2, out, w2, b2)
relu_grad(l1, l2)
lin_grad(inp, l1, w1, b1)
""",
            "inp, targ",
        ),
    ),
    Edit(
        "Relu",
        """
class Relu():
    def __call__(self, inp):
        self.inp = inp
        self.out = inp.clamp_min(0.)
        return self.out

    def backward(self): self.inp.g = (self.inp>0).float() * self.out.g
""",
    ),
    Edit(
        "Lin",
        """
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
""",
    ),
    Edit(
        "Mse",
        """
class Mse():
    def __call__(self, inp, targ):
        self.inp,self.targ = inp,targ
        self.out = mse(inp, targ)
        return self.out

    def backward(self):
        self.inp.g = 2. * (self.inp.squeeze() - self.targ).unsqueeze(-1) / self.targ.shape[0]
""",
    ),
    COURSE_MODEL,
)

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
# forward_and_backward taking the weights as parameters with defaults bound when it is
# defined (a common way to make a function "remember" the globals): the grader and the
# notebook's hidden test pass them by name.
WEIGHTS_AS_PARAMETERS = (
    Edit(
        "forward_and_backward",
        fn(
            "forward_and_backward",
            FB_BODY.format(middle="relu_grad(l1, l2)\nlin_grad(inp, l1, w1, b1)"),
            "inp, targ, w1=w1, b1=b1, w2=w2, b2=b2",
        ),
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
    Edit(
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
    ),
    Edit(
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
    ),
)
# The 2019 lesson's refactor: a Module base class whose __call__ stores args and out.
MODULE_STYLE = (
    Edit(
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
    ),
    Edit(
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
    ),
    Edit(
        "Mse",
        """
class Mse(Module):
    def forward (self, inp, targ): return (inp.squeeze() - targ).pow(2).mean()
    def bwd(self, out, inp, targ): inp.g = 2*(inp.squeeze()-targ).unsqueeze(-1) / targ.shape[0]
""",
    ),
    COURSE_MODEL,
)
# The lesson's Model, as the course writes it.
MODEL_SRC = """
class Model:
    def __init__(self, w1, b1, w2, b2):
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
"""
# A Model that takes its weights in another order: graded by name, and told.
MODEL_ORDER = (
    Edit("Model", MODEL_SRC.replace("(self, w1, b1, w2, b2)", "(self, w1, w2, b1, b2)")),
)
UNUSUAL_MATMUL = (
    matmul(
        "matmul_broadcast",
        """
c = a.new_zeros(a.shape[0], b.shape[1])
for i, row in enumerate(a):
    c[i] = (row[:, None] * b).sum(0)
return c
""",
    ),
)


# assignment -> the course's own code, as Edits of the notebook handed out
COURSE = {
    "matmul": tuple(matmul(cell, body) for cell, body in COURSE_MATMUL.items()),
    "backprop": COURSE_BACKPROP,
}


def course_notebook(assignment: str) -> NotebookNode:
    """The notebook handed out with every stub answered: the course's own code where the
    lesson has it, the reference's answer (the demo's) for every stub left."""
    from backprop_lab.verbs import demo

    nb = edited(STUB[assignment], COURSE.get(assignment, ()))
    answers = demo._answers(assignment)  # "cell/name" -> the reference's function
    for cell, name in demo._stubs(nb):
        demo._answer(nb, f"{cell}/{name}", demo._body(answers[f"{cell}/{name}"]))
    return nb
