"""Classic mistakes of the lesson, each a solution notebook with one function broken, and
the verdict the grader must give it: the checks that lose their points (exactly those),
the catalogue's name for the mistake and the words of its hint.

tests/test_grader_mistakes.py grades them all; tests/test_journey.py walks a student
through some of them. To add a mistake to the catalogue (backprop_lab/judge/mistakes.py), add a
case here and one in tests/catalogue_cases.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from notebook_tools import Edit, fn, lin_grad, matmul, mse_grad, relu_grad
from right_answers import (
    FB_BODY,
    LIN_B_OK,
    LIN_CLASS_SRC,
    LIN_W_OK,
    LIN_X_OK,
    LOOPS,
    MODEL_SRC,
    MSE_CLASS_SRC,
)

# The checks, as "exercise cell: check name" (backprop_lab/course).
MSE_N = "mse_grad: mse_grad sets inp.g, batch > 1"
MSE_1 = "mse_grad: mse_grad sets inp.g, batch of 1"
RELU = "relu_grad: relu_grad sets inp.g"
RELU_0 = "relu_grad: relu_grad at inputs exactly 0"
LIN_X = "lin_grad: lin_grad sets inp.g"
LIN_W = "lin_grad: lin_grad sets w.g"
LIN_B = "lin_grad: lin_grad sets b.g"
FB_2 = "forward_and_backward: forward_and_backward sets w2.g and b2.g"
FB_1 = "forward_and_backward: forward_and_backward sets w1.g and b1.g"
FB_X = "forward_and_backward: forward_and_backward sets inp.g"
FB = frozenset({FB_2, FB_1, FB_X})
LIN_CLASS = "layer_classes: Lin(w, b).backward() sets inp.g, w.g, b.g"
RELU_CLASS = "layer_classes: Relu().backward() sets inp.g"
MSE_CLASS = "layer_classes: Mse().backward() sets inp.g"
MODEL_GRADS = "model_class: model.backward() sets every .g"
MODEL_LOSS = "model_class: model(x, targ) returns the loss"
RUNGS = ("matmul_loops", "matmul_elementwise", "matmul_broadcast")
MATMUL = {cell: f"{cell}: matmul(a, b) equals a @ b" for cell in RUNGS}
MATMUL_F64 = {cell: f"{cell}: float64 inputs give a float64 result" for cell in RUNGS}

# the training assignment's checks
LSE = "logsumexp: logsumexp returns one value per row"
LSE_STABLE = "logsumexp: logsumexp is stable on logits of +-1000"
LSM = "log_softmax: log_softmax returns log-probabilities"
LSM_STABLE = "log_softmax: log_softmax is stable on logits of +-1000"
NLL_N = "nll: nll of labels shaped (N,)"
NLL_COLUMN = "nll: nll of labels shaped (N, 1)"
CE = "cross_entropy: cross_entropy returns the loss"
CE_STABLE = "cross_entropy: cross_entropy is stable on logits of +-1000"
CEG = "cross_entropy_grad: cross_entropy_grad sets inp.g"
CEG_STABLE = (
    "cross_entropy_grad: cross_entropy_grad sets inp.g on logits of +-1000 and a batch of 1"
)
CLASSIFIER_GRADS = "classifier: classifier.backward() sets every .g"
CLASSIFIER_LOSS = "classifier: classifier(x, targ) returns the loss"
FIT_ONE = "fit: one step of fit updates the parameters in place"
FIT_EVERY = "fit: fit takes every batch of every epoch, each from fresh gradients"
FIT_DIGITS = "fit: fit trains on the digits"
FIT = frozenset({FIT_ONE, FIT_EVERY, FIT_DIGITS})

NAIVE_LOG_SOFTMAX = fn("log_softmax", "return (x.exp() / x.exp().sum(-1, keepdim=True)).log()", "x")
LOGSUMEXP_DOWN_COLUMNS = fn(
    "logsumexp",
    """
m = x.max(0).values
return m + (x - m).exp().sum(0).log()
""",
    "x",
)
NLL_WHOLE_COLUMNS = fn("nll", "return -inp[:, targ.reshape(-1)].mean()", "inp, targ")
CEG_BODY = """
targ = targ.reshape(-1)
n = inp.shape[0]
softmax = log_softmax(inp).exp()
one_hot = torch.zeros_like(inp)
one_hot[torch.arange(n, device=inp.device), targ] = 1.0
"""
CEG_SUMMED = fn("cross_entropy_grad", CEG_BODY + "inp.g = softmax - one_hot", "inp, targ")
CEG_NO_TARGET = fn("cross_entropy_grad", CEG_BODY + "inp.g = softmax / n", "inp, targ")
# right, but its "validation" accuracy is measured on the training set
FIT_ACCURACY_ON_THE_TRAINING_SET = """
def fit(params, x_train, y_train, x_valid, y_valid, lr=0.5, epochs=10, bs=32):
    model = Classifier(*params)
    n = x_train.shape[0]
    history = []
    with torch.no_grad():
        for epoch in range(epochs):
            total = 0.0
            for i in range(0, n, bs):
                xb, yb = x_train[i:i + bs], y_train[i:i + bs]
                loss = model(xb, yb)
                model.backward()
                for p in params:
                    p -= lr * p.g
                    p.g = None
                total += loss.item() * xb.shape[0]
            valid = cross_entropy(model.predict(x_valid), y_valid).item()
            history.append((total / n, valid, accuracy(model.predict(x_train), y_train).item()))
    return history
"""
FIT_REBINDS = """
def fit(params, x_train, y_train, x_valid, y_valid, lr=0.5, epochs=10, bs=32):
    model = Classifier(*params)
    n = x_train.shape[0]
    with torch.no_grad():
        for epoch in range(epochs):
            for i in range(0, n, bs):
                model(x_train[i:i + bs], y_train[i:i + bs])
                model.backward()
                for p in params:
                    p = p - lr * p.g
"""


@dataclass(frozen=True)
class MistakeCase:
    """A solution notebook with `edit` applied, and the grader's verdict on it."""

    name: str  # the student's folder, and the test's id
    assignment: str
    edit: Edit  # the broken function
    lost: frozenset[str]  # exactly the checks that must fail
    flagged: str  # the check whose message carries the hint
    mistake: str  # the catalogue's id for it (backprop_lab/judge/mistakes.py)
    hint: str  # words the hint must contain


def lost(*checks: str) -> frozenset[str]:
    return frozenset(checks)


RELU_CLASS_MASK_FROM_OUT_G = """
class Relu:
    def __call__(self, inp):
        self.inp = inp
        self.out = relu(inp)
        return self.out

    def backward(self):
        self.inp.g = (self.out.g > 0).float() * self.out.g
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
MODEL_REVERSES_IN_PLACE = MODEL_SRC.replace(
    "        for layer in reversed(self.layers):\n",
    "        self.layers.reverse()  # in place: the next backward runs the layers forwards\n"
    "        for layer in self.layers:\n",
)
MATMUL_ROW_NOT_COLUMN = """
(ar, ac), (br, bc) = a.shape, b.shape
c = torch.zeros(ar, bc, dtype=a.dtype)
for i in range(ar):
    c[i] = (a[i, None] * b).sum(dim=0)
return c
"""
MATMUL_UNDEFINED_NAME = """
(ar, ac), (br, bc) = a.shape, b.shape
c = torch.zeros(ar, bc, dtype=a.dtype)
for i in range(n_rows):
    for j in range(bc):
        c[i, j] = (a[i, :] * b[:, j]).sum()
return c
"""

MATMUL_VIEW = """
(ar, ac), (br, bc) = a.shape, b.shape
flat = b.view(-1)
c = torch.zeros(ar, bc, dtype=a.dtype)
for i in range(ar):
    for j in range(bc):
        for k in range(ac):
            c[i, j] += a[i, k] * flat[k * bc + j]
return c
"""

LIN_CALL_NO_RETURN = LIN_CLASS_SRC.replace("        return self.out\n", "", 1)

MISTAKES = (
    MistakeCase(
        # the lesson's first log_softmax, from the definition: right on small logits
        name="log-softmax-overflows",
        assignment="training",
        edit=Edit("log_softmax", NAIVE_LOG_SOFTMAX),
        lost=lost(LSM_STABLE, CE_STABLE, CEG_STABLE),
        flagged=LSM_STABLE,
        mistake="softmax-overflow",
        hint="Subtract each row's maximum first",
    ),
    MistakeCase(
        name="logsumexp-down-the-columns",
        assignment="training",
        edit=Edit("logsumexp", LOGSUMEXP_DOWN_COLUMNS),
        lost=lost(
            LSE,
            LSE_STABLE,
            LSM,
            LSM_STABLE,
            CE,
            CE_STABLE,
            CEG,
            CEG_STABLE,
            CLASSIFIER_GRADS,
            CLASSIFIER_LOSS,
            *FIT,
        ),
        flagged=LSE,
        mistake="softmax-wrong-dimension",
        hint="`logsumexp(-1)`",
    ),
    MistakeCase(
        name="nll-takes-whole-columns",
        assignment="training",
        edit=Edit("nll", NLL_WHOLE_COLUMNS),
        lost=lost(NLL_N, NLL_COLUMN, CE, CE_STABLE, CLASSIFIER_LOSS),
        flagged=NLL_N,
        mistake="labels-as-columns",
        hint="`inp[range(len(targ)), targ]`",
    ),
    MistakeCase(
        name="cross-entropy-grad-without-the-mean",
        assignment="training",
        edit=Edit("cross_entropy_grad", CEG_SUMMED),
        lost=lost(CEG, CEG_STABLE, CLASSIFIER_GRADS, *FIT),
        flagged=CEG,
        mistake="loss-mean-forgotten",
        hint="N times too large",
    ),
    MistakeCase(
        name="cross-entropy-grad-without-the-target",
        assignment="training",
        edit=Edit("cross_entropy_grad", CEG_NO_TARGET),
        lost=lost(CEG, CEG_STABLE, CLASSIFIER_GRADS, *FIT),
        flagged=CEG,
        mistake="target-not-subtracted",
        hint="the softmax minus the one-hot target",
    ),
    MistakeCase(
        # `p = p - lr * p.g` rebinds the loop's name: the model's tensors never change
        name="fit-rebinds-its-parameters",
        assignment="training",
        edit=Edit("fit", FIT_REBINDS),
        lost=FIT,
        flagged=FIT_ONE,
        mistake="parameters-not-updated",
        hint="`p -= lr * p.g`",
    ),
    MistakeCase(
        name="lin-call-returns-nothing",
        assignment="backprop",
        edit=Edit("Lin", LIN_CALL_NO_RETURN),
        lost=lost(LIN_CLASS, MODEL_GRADS, MODEL_LOSS),
        flagged=LIN_CLASS,
        mistake="layer-call-returns-nothing",
        hint="`Lin.__call__` returns nothing: end it with `return self.out`",
    ),
    MistakeCase(
        # right on contiguous inputs; the grader also passes a transpose's view
        name="matmul-view-of-a-transpose",
        assignment="matmul",
        edit=matmul("matmul_loops", MATMUL_VIEW),
        lost=lost(MATMUL["matmul_loops"]),
        flagged=MATMUL["matmul_loops"],
        mistake="view-of-non-contiguous",
        hint="use `.reshape(...)`",
    ),
    MistakeCase(
        # right on one call; the grader calls twice, as a training loop does
        name="model-reverses-its-layers-in-place",
        assignment="backprop",
        edit=Edit("Model", MODEL_REVERSES_IN_PLACE),
        lost=lost(MODEL_GRADS, MODEL_LOSS),
        flagged=MODEL_GRADS,
        mistake="second-call",
        hint="use `reversed(self.layers)`",
    ),
    MistakeCase(
        name="lin-grad-adds-to-w-g",
        assignment="backprop",
        edit=lin_grad(LIN_X_OK, "w.g = getattr(w, 'g', 0) + inp.t() @ out.g", LIN_B_OK),
        lost=lost(LIN_W, FB_2, FB_1),
        flagged=LIN_W,
        mistake="second-call",
        hint="a second call doubles `w.g`: assign the gradient",
    ),
    MistakeCase(
        name="mse-missing-2",
        assignment="backprop",
        edit=mse_grad("inp.g = (inp[:, 0] - targ).unsqueeze(-1) / inp.shape[0]"),
        lost=lost(MSE_N, MSE_1) | FB,
        flagged=MSE_N,
        mistake="mse-missing-2",
        hint="needs the factor 2",
    ),
    MistakeCase(
        # right for a batch of one, which is why that case is its own check
        name="mse-missing-1/N",
        assignment="backprop",
        edit=mse_grad("inp.g = 2.0 * (inp[:, 0] - targ).unsqueeze(-1)"),
        lost=lost(MSE_N) | FB,
        flagged=MSE_N,
        mistake="mse-missing-1/N",
        hint="divides by N",
    ),
    MistakeCase(
        name="mse-broadcast-n-by-n",
        assignment="backprop",
        edit=mse_grad("inp.g = 2.0 * (inp - targ) / inp.shape[0]"),
        lost=lost(MSE_N) | FB,
        flagged=MSE_N,
        mistake="mse-broadcast-n-by-n",
        hint="broadcasts to an (N, N) matrix",
    ),
    MistakeCase(
        name="inp-g-flat",
        assignment="backprop",
        edit=mse_grad("inp.g = 2.0 * (inp[:, 0] - targ) / inp.shape[0]"),
        lost=lost(MSE_N, MSE_1) | FB,
        flagged=MSE_N,
        mistake="inp-g-flat",
        hint="must have inp's shape (N, 1)",
    ),
    MistakeCase(
        name="returned-not-stored",
        assignment="backprop",
        edit=mse_grad("return 2.0 * (inp[:, 0] - targ).unsqueeze(-1) / inp.shape[0]"),
        lost=lost(MSE_N, MSE_1) | FB,
        flagged=MSE_N,
        mistake="returned-not-stored",
        hint="instead of storing it",
    ),
    MistakeCase(
        name="relu-mask-from-out-g",
        assignment="backprop",
        edit=relu_grad("inp.g = (out.g > 0).float() * out.g"),
        lost=lost(RELU, RELU_0, FB_1, FB_X),
        flagged=RELU,
        mistake="relu-mask-from-out-g",
        hint="not from the sign",
    ),
    MistakeCase(
        name="relu-dropped-out-g",
        assignment="backprop",
        edit=relu_grad("inp.g = (inp > 0).to(inp.dtype)"),
        lost=lost(RELU, RELU_0, FB_1, FB_X),
        flagged=RELU,
        mistake="relu-dropped-out-g",
        hint="multiply it by `out.g`",
    ),
    MistakeCase(
        # the whole pass then stops at an l1.g that was never set
        name="grad-instead-of-g",
        assignment="backprop",
        edit=relu_grad("inp.grad = (inp > 0).to(out.g.dtype) * out.g"),
        lost=lost(RELU, RELU_0) | FB,
        flagged=RELU,
        mistake="grad-instead-of-g",
        hint="instead of `inp.g`",
    ),
    MistakeCase(
        name="first-layer-only",
        assignment="backprop",
        edit=relu_grad("inp.g = (inp > 0).to(out.g.dtype) * out.g.abs()"),
        lost=lost(RELU, RELU_0, FB_1, FB_X),
        flagged=FB_1,
        mistake="first-layer-only",
        hint="w2.g and b2.g are right",
    ),
    MistakeCase(
        name="transposed",
        assignment="backprop",
        edit=lin_grad(LIN_X_OK, "w.g = out.g.t() @ inp", LIN_B_OK),
        lost=lost(LIN_W, FB_2, FB_1),
        flagged=LIN_W,
        mistake="transposed",
        hint="weight's shape",
    ),
    MistakeCase(
        name="bias-not-summed",
        assignment="backprop",
        edit=lin_grad(LIN_X_OK, LIN_W_OK, "b.g = out.g"),
        lost=lost(LIN_B, FB_2, FB_1),
        flagged=LIN_B,
        mistake="bias-not-summed",
        hint="keeps one row per example",
    ),
    MistakeCase(
        name="bias-averaged",
        assignment="backprop",
        edit=lin_grad(LIN_X_OK, LIN_W_OK, "b.g = out.g.mean(0)"),
        lost=lost(LIN_B, FB_2, FB_1),
        flagged=LIN_B,
        mistake="bias-averaged",
        hint="not the mean",
    ),
    MistakeCase(
        # the chain passes the sign on to the first layer's weights, and flips it back
        # for the input: minus times minus
        name="sign",
        assignment="backprop",
        edit=lin_grad("inp.g = -(out.g @ w.t())", LIN_W_OK, LIN_B_OK),
        lost=lost(LIN_X, FB_1),
        flagged=LIN_X,
        mistake="sign",
        hint="opposite sign",
    ),
    MistakeCase(
        # raises, so none of lin_grad's three values exists
        name="matmul-no-transpose",
        assignment="backprop",
        edit=lin_grad("inp.g = out.g @ w", LIN_W_OK, LIN_B_OK),
        lost=lost(LIN_X, LIN_W, LIN_B) | FB,
        flagged=LIN_X,
        mistake="matmul-no-transpose",
        hint="w transposed (`w.t()`",
    ),
    MistakeCase(
        name="accumulate-missing-g",
        assignment="backprop",
        edit=lin_grad(LIN_X_OK, "w.g += inp.t() @ out.g", LIN_B_OK),
        lost=lost(LIN_X, LIN_W, LIN_B) | FB,
        flagged=LIN_W,
        mistake="accumulate-missing-g",
        hint="set it with `=`",
    ),
    MistakeCase(
        name="backward-order",
        assignment="backprop",
        edit=Edit(
            "forward_and_backward",
            fn(
                "forward_and_backward",
                FB_BODY.format(middle="lin_grad(inp, l1, w1, b1)\nrelu_grad(l1, l2)"),
                "inp, targ",
            ),
        ),
        lost=FB,
        flagged=FB_1,
        mistake="backward-order",
        hint="reverse order",
    ),
    MistakeCase(
        name="mse-class-broadcast",
        assignment="backprop",
        edit=Edit(
            "Mse", MSE_CLASS_SRC.replace("self.inp[:, 0] - self.targ", "self.inp - self.targ")
        ),
        lost=lost(MSE_CLASS, MODEL_GRADS),
        flagged=MSE_CLASS,
        mistake="mse-broadcast-n-by-n",
        hint="(N, N) matrix",
    ),
    MistakeCase(
        name="missing-return",
        assignment="backprop",
        edit=Edit("Model", MODEL_NO_RETURN),
        lost=lost(MODEL_LOSS),
        flagged=MODEL_LOSS,
        mistake="missing-return",
        hint="forget `return`",
    ),
    MistakeCase(
        name="matmul-row-not-column",
        assignment="matmul",
        edit=matmul("matmul_broadcast", MATMUL_ROW_NOT_COLUMN),
        lost=lost(MATMUL["matmul_broadcast"]),
        flagged=MATMUL["matmul_broadcast"],
        mistake="matmul-row-not-column",
        hint="`a[i, :, None]`",
    ),
    MistakeCase(
        name="matmul-result-shape",
        assignment="matmul",
        edit=matmul("matmul_loops", LOOPS.format(shape="ar, ac")),
        lost=lost(MATMUL["matmul_loops"]),
        flagged=MATMUL["matmul_loops"],
        mistake="matmul-result-shape",
        hint="a's rows and b's columns",
    ),
    MistakeCase(
        name="missing-definition",
        assignment="matmul",
        edit=Edit("matmul", fn("mat_mul", "return a @ b", "a, b"), "matmul_elementwise"),
        lost=lost(MATMUL["matmul_elementwise"]),
        flagged=MATMUL["matmul_elementwise"],
        mistake="missing-definition",
        hint="did you mean to name `mat_mul`",
    ),
    # -- habits of students' code: globals, runtime slips, the lesson's conventions --
    MistakeCase(
        name="reads-globals-matmul",
        assignment="matmul",
        edit=matmul("matmul_broadcast", "return m1 @ m2"),
        lost=lost(MATMUL["matmul_broadcast"]),
        flagged=MATMUL["matmul_broadcast"],
        mistake="reads-globals",
        hint="ignores its arguments and reads the notebook's globals `m1`, `m2`",
    ),
    MistakeCase(
        name="reads-globals-mse",
        assignment="backprop",
        edit=mse_grad(
            "n = inp.shape[0]\ninp.g = 2.0 * (inp[:, 0] - y_train[:n]).unsqueeze(-1) / n"
        ),
        lost=lost(MSE_N, MSE_1) | FB,
        flagged=MSE_N,
        mistake="reads-globals",
        hint="global `y_train`",
    ),
    MistakeCase(
        name="misspelt-name",
        assignment="backprop",
        edit=lin_grad(LIN_X_OK, "w.g = imp.t() @ out.g", LIN_B_OK),
        lost=lost(LIN_X, LIN_W, LIN_B) | FB,
        flagged=LIN_W,
        mistake="name-not-defined",
        hint="did you mean `inp`?",
    ),
    MistakeCase(
        name="undefined-name",
        assignment="matmul",
        edit=matmul("matmul_elementwise", MATMUL_UNDEFINED_NAME),
        lost=lost(MATMUL["matmul_elementwise"]),
        flagged=MATMUL["matmul_elementwise"],
        mistake="name-not-defined",
        hint="`n_rows` is not defined in this notebook",
    ),
    MistakeCase(
        name="float-without-parentheses",
        assignment="backprop",
        edit=relu_grad("inp.g = (inp > 0).float * out.g"),
        lost=lost(RELU, RELU_0) | FB,
        flagged=RELU,
        mistake="method-without-parentheses",
        hint="call it, `.float()`",
    ),
    MistakeCase(
        name="t-without-parentheses",
        assignment="backprop",
        edit=lin_grad("inp.g = out.g @ w.t", LIN_W_OK, LIN_B_OK),
        lost=lost(LIN_X, LIN_W, LIN_B) | FB,
        flagged=LIN_X,
        mistake="method-without-parentheses",
        hint="`.t()`",
    ),
    MistakeCase(
        name="overwrote-parameter",
        assignment="backprop",
        edit=Edit("Lin", LIN_CLASS_SRC.replace("self.b.g = ", "self.b = ")),
        # the model's second forward uses the gradient as its bias: its loss is wrong too
        lost=lost(LIN_CLASS, MODEL_GRADS, MODEL_LOSS),
        flagged=LIN_CLASS,
        mistake="overwrote-parameter",
        hint="store it on `self.b.g`",
    ),
    MistakeCase(
        # the values are right: the message says so, and that only the attribute is wrong
        name="w-grad-not-g",
        assignment="backprop",
        edit=lin_grad(LIN_X_OK, "w.grad = inp.t() @ out.g", LIN_B_OK),
        lost=lost(LIN_W, FB_2, FB_1),
        flagged=LIN_W,
        mistake="grad-instead-of-g",
        hint="would have been right",
    ),
    MistakeCase(
        name="lin-grad-returns-only",
        assignment="backprop",
        edit=lin_grad("return out.g @ w.t(), inp.t() @ out.g, out.g.sum(0)", "", ""),
        lost=lost(LIN_X, LIN_W, LIN_B) | FB,
        flagged=LIN_B,
        mistake="returned-not-stored",
        hint="assign it to `b.g`",
    ),
    MistakeCase(
        name="reads-globals-x-train",
        assignment="backprop",
        edit=Edit(
            "forward_and_backward",
            fn(
                "forward_and_backward",
                FB_BODY.replace("lin(inp, w1, b1)", "lin(x_train, w1, b1)").format(
                    middle="relu_grad(l1, l2)\nlin_grad(inp, l1, w1, b1)"
                ),
                "inp, targ",
            ),
        ),
        lost=FB,
        flagged=FB_2,
        mistake="reads-globals",
        hint="global `x_train`",
    ),
    MistakeCase(
        name="squeeze-without-parentheses",
        assignment="backprop",
        edit=mse_grad("inp.g = 2.0 * (inp.squeeze - targ).unsqueeze(-1) / inp.shape[0]"),
        lost=lost(MSE_N, MSE_1) | FB,
        flagged=MSE_1,
        mistake="method-without-parentheses",
        hint="`.squeeze()`",
    ),
    MistakeCase(
        name="mse-sign",
        assignment="backprop",
        edit=mse_grad("inp.g = 2.0 * (targ - inp[:, 0]).unsqueeze(-1) / inp.shape[0]"),
        lost=lost(MSE_N, MSE_1) | FB,
        flagged=MSE_1,
        mistake="sign",
        hint="`inp - targ`, not `targ - inp`",
    ),
    MistakeCase(
        # square inputs would not see it: zeros(ac, bc) has the right shape when ar == ac
        name="matmul-zeros-ac-bc",
        assignment="matmul",
        edit=matmul("matmul_loops", LOOPS.format(shape="ac, bc")),
        lost=lost(MATMUL["matmul_loops"]),
        flagged=MATMUL["matmul_loops"],
        mistake="matmul-result-shape",
        hint="a's rows and b's columns",
    ),
    MistakeCase(
        name="lin-class-bias-not-summed",
        assignment="backprop",
        edit=Edit(
            "Lin",
            LIN_CLASS_SRC.replace("self.b.g = self.out.g.sum(0)", "self.b.g = self.out.g"),
        ),
        lost=lost(LIN_CLASS, MODEL_GRADS),
        flagged=LIN_CLASS,
        mistake="bias-not-summed",
        hint="sums out.g over the batch",
    ),
    MistakeCase(
        name="lin-class-no-transpose",
        assignment="backprop",
        edit=Edit("Lin", LIN_CLASS_SRC.replace("self.out.g @ self.w.t()", "self.out.g @ self.w")),
        # Model.backward raises, and the model's exercise (backward) gets nothing
        lost=lost(LIN_CLASS, MODEL_GRADS, MODEL_LOSS),
        flagged=LIN_CLASS,
        mistake="matmul-no-transpose",
        hint="w.t()",
    ),
    MistakeCase(
        name="relu-class-mask-from-out-g",
        assignment="backprop",
        edit=Edit("Relu", RELU_CLASS_MASK_FROM_OUT_G),
        lost=lost(RELU_CLASS, MODEL_GRADS),
        flagged=RELU_CLASS,
        mistake="relu-mask-from-out-g",
        hint="not from the sign",
    ),
    MistakeCase(
        name="matmul-missing-return",
        assignment="matmul",
        edit=matmul("matmul_loops", LOOPS.format(shape="ar, bc").replace("return c", "c")),
        lost=lost(MATMUL["matmul_loops"]),
        flagged=MATMUL["matmul_loops"],
        mistake="missing-return",
        hint="forget `return`",
    ),
)
