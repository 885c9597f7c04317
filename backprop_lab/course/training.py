"""training: the classifier and its first training loop, as lesson 13 ends. `accuracy(out,
targ)`; `Classifier(w1, b1, w2, b2)`, backprop's Model with cross-entropy as its loss; and
`fit(params, x_train, y_train, x_valid, y_valid, lr=..., epochs=..., bs=...)`, minibatch
SGD over the training set with the hand-written backward pass, updating the parameters in
place and clearing their gradients after each step."""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

from .core import Case, Check, Exercise, Expected, GraderBug, Inputs, Maths, Protocol, Recipe

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = [
    "ACCURACY",
    "CLASSIFIER",
    "DIGITS",
    "EXERCISES",
    "FIT",
    "FIT_MATHS",
    "HISTORY",
    "PARAMS",
    "sgd",
]

PARAMS = ("w1", "b1", "w2", "b2")
DIGITS = "the digits"  # Case.variant: the bundled data set, normalised as the lesson does
# The oracle's value that is never compared: each epoch's (training loss, validation loss,
# validation accuracy), what the notebook's fit returns, for the report's loss curve
HISTORY = "history"
LR = 0.5


def _params(gen: torch.Generator, case: Case, n_in: int, nh: int, classes: int) -> Inputs:
    """The lesson's initialisation: Kaiming for the layer a relu follows."""
    from .tensors import randn

    return {
        "w1": randn(gen, case, n_in, nh) * (2 / n_in) ** 0.5,
        "b1": randn(gen, case, nh) * 0.1,
        "w2": randn(gen, case, nh, classes) / nh**0.5,
        "b2": randn(gen, case, classes) * 0.1,
    }


def _labels(gen: torch.Generator, n: int, classes: int) -> Tensor:
    import torch

    return torch.randint(0, classes, (n,), generator=gen)


# -- accuracy ---------------------------------------------------------------------------------


def _make_accuracy(case: Case, gen: torch.Generator) -> Inputs:
    from .tensors import randn

    n, classes = case.dims
    return {"inp": randn(gen, case, n, classes), "targ": _labels(gen, n, classes)}


def _oracle_accuracy(inputs: Inputs) -> dict[str, Expected]:
    right = inputs["inp"].argmax(-1) == inputs["targ"].reshape(-1)
    return {"return": Expected(right.double().mean())}


def _reference_accuracy(ref: ModuleType, inputs: Inputs) -> dict[str, Tensor]:
    from .tensors import f64

    t = f64(inputs)
    return {"return": ref.accuracy(t["inp"], t["targ"])}


# -- the classifier -----------------------------------------------------------------------------


def _make_classifier(case: Case, gen: torch.Generator) -> Inputs:
    from . import lesson
    from .tensors import randn

    n, n_in, nh, classes = case.dims
    for _ in range(100):
        t = {"inp": randn(gen, case, n, n_in), "targ": _labels(gen, n, classes),
             **_params(gen, case, n_in, nh, classes)}  # fmt: skip
        # no hidden pre-activation exactly 0, where the gradient is not unique
        if (lesson.lin(t["inp"], t["w1"], t["b1"]) != 0).all():
            return t
    raise GraderBug(f"could not draw classifier inputs without a relu kink for {case.name}")


def _oracle_classifier(inputs: Inputs) -> dict[str, Expected]:
    from . import lesson
    from .tensors import expect, f64, grads

    def loss(t: Inputs) -> Tensor:
        return lesson.classifier_loss(t["inp"], t["targ"], *(t[k] for k in PARAMS))

    values = grads(loss, inputs, ["inp", *PARAMS])
    values["loss"] = loss(f64(inputs)).detach()
    return expect(values)


def _reference_classifier(ref: ModuleType, inputs: Inputs) -> dict[str, Tensor]:
    from .tensors import f64

    t: dict[str, Any] = f64(inputs)  # Any: the lesson's `.g`, which Tensor does not declare
    model = ref.Classifier(*(t[k] for k in PARAMS))
    values = {"loss": model(t["inp"], t["targ"])}
    model.backward()
    return values | {f"{k}.g": t[k].g for k in ("inp", *PARAMS)}


# -- fit ----------------------------------------------------------------------------------------


def _make_fit(case: Case, gen: torch.Generator) -> Inputs:
    import torch

    from .tensors import randn

    n, n_in, nh, classes, bs, epochs = case.dims
    if case.variant == DIGITS:
        from .. import coursedata

        x_train, y_train, x_valid, y_valid = coursedata.get_data()
        mean, std = x_train.mean(), x_train.std()
        x_train, x_valid = ((x - mean) / std for x in (x_train, x_valid))
        x_train, x_valid = (x.to(getattr(torch, case.dtype)) for x in (x_train, x_valid))
        if (len(x_train), x_train.shape[1]) != (n, n_in):
            raise GraderBug(f"the digits are {tuple(x_train.shape)}, the case says {case.dims}")
    else:
        x_train, x_valid = randn(gen, case, n, n_in), randn(gen, case, max(n // 2, 1), n_in)
        y_train, y_valid = _labels(gen, n, classes), _labels(gen, len(x_valid), classes)
    return {
        "x_train": x_train, "y_train": y_train, "x_valid": x_valid, "y_valid": y_valid,
        **_params(gen, case, n_in, nh, classes),
        "lr": torch.tensor(LR, dtype=getattr(torch, case.dtype)),
        "epochs": torch.tensor(epochs), "bs": torch.tensor(bs),
    }  # fmt: skip


def sgd(inputs: Inputs, *, pile_up: bool = False) -> tuple[dict[str, Tensor], Tensor]:
    """fit on `inputs` in float64: the parameters after minibatch SGD, each step's
    gradients by autograd from fresh, and each epoch's (training loss, validation loss,
    validation accuracy). With `pile_up`, each step applies the sum of every gradient so
    far, as a `.g +=` that is never cleared does (the catalogue's detector)."""
    import torch

    from . import lesson
    from .tensors import f64

    t = f64(inputs)
    params = [t[k] for k in PARAMS]
    applied = [torch.zeros_like(p) for p in params]
    x, y = t["x_train"], t["y_train"]
    lr, bs = t["lr"].item(), int(t["bs"].item())
    history = []
    for _ in range(int(t["epochs"].item())):
        total = 0.0
        for i in range(0, len(x), bs):
            leaves = [p.detach().requires_grad_() for p in params]
            loss = lesson.classifier_loss(x[i : i + bs], y[i : i + bs], *leaves)
            step = torch.autograd.grad(loss, leaves)
            applied = [a + g if pile_up else g for a, g in zip(applied, step, strict=True)]
            params = [p.detach() - lr * g for p, g in zip(leaves, applied, strict=True)]
            total += loss.item() * len(x[i : i + bs])
        with torch.no_grad():
            logits = lesson.classifier_logits(t["x_valid"], *params)
            valid = lesson.cross_entropy(logits, t["y_valid"]).item()
            right = (logits.argmax(-1) == t["y_valid"]).double().mean().item()
        history.append((total / len(x), valid, right))
    return dict(zip(PARAMS, params, strict=True)), torch.tensor(history, dtype=torch.double)


def _oracle_fit(inputs: Inputs) -> dict[str, Expected]:
    params, history = sgd(inputs)
    return {**{k: Expected(p) for k, p in params.items()}, HISTORY: Expected(history)}


def _reference_fit(ref: ModuleType, inputs: Inputs) -> dict[str, Tensor]:
    from .tensors import f64

    t = f64(inputs)
    params = [t[k].clone() for k in PARAMS]
    ref.fit(params, t["x_train"], t["y_train"], t["x_valid"], t["y_valid"], lr=t["lr"].item(),
            epochs=int(t["epochs"].item()), bs=int(t["bs"].item()))  # fmt: skip
    return dict(zip(PARAMS, params, strict=True))


ACCURACY_MATHS = Maths("accuracy", _make_accuracy, _oracle_accuracy, _reference_accuracy,
                       example=Case((6, 4)))  # fmt: skip
CLASSIFIER_MATHS = Maths("classifier", _make_classifier, _oracle_classifier,
                         _reference_classifier, example=Case((8, 5, 4, 3)))  # fmt: skip
FIT_MATHS = Maths("fit", _make_fit, _oracle_fit, _reference_fit,
                  example=Case((10, 5, 4, 3, 4, 2)))  # fmt: skip

ACCURACY = Protocol("accuracy", ACCURACY_MATHS, "{t}(out, targ)", "{t}",
                    Recipe("function", ("inp", "targ")))  # fmt: skip
CLASSIFIER = Protocol(
    "classifier_class", CLASSIFIER_MATHS, "{t}(w1, b1, w2, b2)", "{t}.backward",
    Recipe("layer", ("inp", "targ"), grads=("inp", *PARAMS), init=PARAMS, call_value="loss"),
)  # fmt: skip
FIT = Protocol(
    "fit", FIT_MATHS,
    "{t}(params, x_train, y_train, x_valid, y_valid, lr=lr, epochs=epochs, bs=bs)", "{t}",
    Recipe("function", ("params", "x_train", "y_train", "x_valid", "y_valid"),
           groups=(("params", PARAMS),), scalars=("lr", "epochs", "bs"), updated=PARAMS,
           twice=False),
)  # fmt: skip

CLASSIFIER_CASES = (Case((16, 12, 6, 10)), Case((1, 9, 4, 3)), Case((10, 6, 3, 4), "float64"))
# (N, n_in, n_hidden, classes, batch size, epochs)
ONE_STEP = (
    Case((12, 6, 5, 4, 12, 1)),
    Case((1, 5, 4, 3, 1, 1)),
    Case((7, 5, 4, 3, 7, 1), "float64"),
)
# a last batch smaller than the others, and a second epoch: every step from fresh gradients
EVERY_STEP = (Case((10, 5, 4, 3, 4, 2)), Case((9, 4, 6, 3, 2, 3), "float64"))
# in float64: over 23 steps a float32 run can flip a relu whose input is within 1e-7 of 0
# and end 1e-3 away from the float64 answer, for no fault of the student's
# five epochs: the report draws the student's loss, epoch by epoch, beside the reference's
ON_THE_DIGITS = (Case((1437, 64, 32, 10, 64, 5), "float64", variant=DIGITS),)

EXERCISES = (
    Exercise("training", "accuracy", "accuracy", (
        Check("accuracy returns the fraction of labels predicted", 1, "accuracy", ACCURACY,
              ("return",), (Case((6, 4)), Case((1, 10)), Case((100, 10)), Case((5, 3), "float64"))),
    )),
    Exercise("training", "classifier", "the Classifier class", (
        Check("classifier.backward() sets every .g", 1, "Classifier", CLASSIFIER,
              ("inp.g", *(f"{k}.g" for k in PARAMS)), CLASSIFIER_CASES),
        Check("classifier(x, targ) returns the loss", 1, "Classifier", CLASSIFIER, ("loss",),
              CLASSIFIER_CASES),
    ), builds_on=("cross_entropy", "cross_entropy_grad")),
    Exercise("training", "fit", "fit", (
        Check("one step of fit updates the parameters in place", 1, "fit", FIT, PARAMS,
              ONE_STEP),
        Check("fit takes every batch of every epoch, each from fresh gradients", 1, "fit", FIT,
              PARAMS, EVERY_STEP),
        Check("fit trains on the digits", 1, "fit", FIT, PARAMS, ON_THE_DIGITS),
    ), builds_on=("classifier",)),
)  # fmt: skip
