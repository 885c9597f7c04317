"""The catalogue of known mistakes: how each looks in a failed comparison, and the hint
that tells a student what to change. Pure: tensors and data in, a hint out.

Entries are tried in order and the first that recognises the observation gives the hint,
so specific patterns come before general ones. To add one, write its test in
`detectors.py` (or inline) and append a `Mistake` here; then give it a hand-built case in
tests/catalogue_cases.py (the catalogue's unit tests fail until it has one) and, where a
notebook shows it, a notebook case in tests/mistake_cases.py.
"""

from __future__ import annotations

from backprop_lab.coursedata.checks import constant_ratio, ratio_sentence

from ..course import LIN, MATMUL, NETWORK
from ..run.executed import OUT_OF_MEMORY_HINT
from .detectors import (
    bare_method,
    batch,
    bias_averaged,
    bias_not_summed,
    device_error,
    first_layer_only,
    flat_inp_g,
    grad_not_g,
    grad_not_g_hint,
    mse_values,
    n_by_n,
    relu_dropped_out_g,
    relu_out_g_mask,
    returned_instead,
    scaled,
    shifted_relu,
    transposed,
    who,
)
from .observation import Mistake, Observation, observe
from .training_detectors import (
    gradients_piled_up,
    mean_forgotten,
    params_unchanged,
    softmax_over_rows,
    target_not_subtracted,
    unstable,
    whole_columns,
)

__all__ = ["CATALOGUE", "Mistake", "Observation", "diagnose", "mistake", "observe"]


CATALOGUE: tuple[Mistake, ...] = (
    Mistake(
        "not-implemented",
        lambda o: o.error_matches(r"^NotImplementedError"),
        lambda o: (
            f"{who(o)} is not implemented yet: replace `raise NotImplementedError()` with your code"
        ),
        no_answer=True,
        own=True,
    ),
    Mistake(
        "missing-definition",
        lambda o: bool(o.error and o.error.get("type") == "Missing"),
        lambda o: (
            (
                f"the exercise's cell defines no `{o.target}` (another exercise's "
                f"`{o.target}` is not graded in its place)"
                if o.error and o.error.get("in_cell")
                else f"the notebook defines no `{o.target}`"
            )
            + (
                f": did you mean to name `{o.err['close']}` `{o.target}`?"
                if o.error and o.error.get("close")
                else ": keep the name and signature the exercise gives"
            )
        ),
        no_answer=True,
        own=True,
    ),
    Mistake(
        "timeout",
        lambda o: bool(o.error and o.error.get("type") == "Timeout"),
        lambda o: (
            f"{o.target} did not finish in time ({o.err['message']}): look for a loop "
            "that never ends, or one over far more elements than the inputs have"
        ),
        no_answer=True,
        own=True,
    ),
    Mistake(
        "device",
        device_error,
        "a tensor was created on the CPU while the inputs are on the GPU: create new tensors "
        "with `device=inp.device` (or `torch.zeros_like`, `new_zeros`)",
    ),
    Mistake(
        "second-call",
        lambda o: bool(o.facts.get("second_call")),
        lambda o: _second_call_hint(o),
        own=True,
    ),
    Mistake(
        "view-of-non-contiguous",
        lambda o: o.error_matches(
            r"view size is not compatible with input tensor's size and stride"
        ),
        lambda o: (
            f"{who(o)} calls `.view` on a tensor laid out as a transpose (the grader passes "
            "one, as `x.t()` or a slice gives): `.view` needs contiguous memory, so use "
            "`.reshape(...)`"
        ),
    ),
    Mistake(
        "layer-call-returns-nothing",
        lambda o: bool(o.facts.get("returns_none")),
        lambda o: (
            f"`{o.facts['returns_none']}` returns nothing: end it with `return self.out`, the "
            "output the next layer takes and whose `.g` backward reads"
        ),
        own=True,
    ),
    Mistake(
        "out-of-memory",
        lambda o: o.error_matches(r"can't allocate memory|out of memory|MemoryError"),
        lambda o: f"{who(o)} ran out of memory: {OUT_OF_MEMORY_HINT}",
    ),
    Mistake(
        "reads-globals",
        lambda o: bool(o.facts.get("globals")),
        lambda o: (
            f"{o.target} ignores its arguments and reads the notebook's global"
            f"{'s' if len(o.facts['globals']) > 1 else ''} "
            + ", ".join(f"`{n}`" for n in o.facts["globals"])
            + ": the grader calls it with tensors of its own, so compute only from the "
            + (
                "ones it stored: " + ", ".join(f"`self.{n}`" for n in o.facts["globals_stored"])
                if o.facts.get("globals_stored")
                else "parameters"
            )
        ),
        own=True,
    ),
    Mistake(
        "name-not-defined",
        lambda o: bool(o.error and o.error.get("type") == "NameError" and o.error.get("name")),
        lambda o: (
            f"`{o.err['name']}` is not defined: did you mean `{o.err['close']}`?"
            if o.err.get("close")
            else f"`{o.err['name']}` is not defined in this notebook: a name from the "
            "lesson's notebook or from a deleted cell? Use the function's arguments"
        ),
    ),
    Mistake(
        "method-without-parentheses",
        lambda o: (
            o.error_matches(r"builtin_function_or_method|'method'") and bare_method(o) is not None
        ),
        lambda o: (
            f"`.{bare_method(o)}` without parentheses is the method itself, not its result: "
            f"call it, `.{bare_method(o)}()`"
        ),
    ),
    Mistake(
        "overwrote-parameter",
        lambda o: bool(o.facts.get("replaced")),
        lambda o: (
            f"backward assigned the gradient to {', '.join(f'`{r}`' for r in o.facts['replaced'])}"
            " itself, replacing the parameter: store it on "
            + ", ".join(f"`{r}.g`" for r in o.facts["replaced"])
        ),
    ),
    Mistake(
        "missing-return",
        lambda o: (
            o.value in ("return", "loss") and o.verdict is not None and o.verdict.reason == "none"
        ),
        lambda o: (
            f"{o.target} returned None: did you forget `return`"
            + (" in `__call__` (`return self.loss(x, targ)`)?" if o.value == "loss" else "?")
        ),
    ),
    Mistake("grad-instead-of-g", grad_not_g, grad_not_g_hint),
    Mistake(
        "returned-not-stored",
        returned_instead,
        lambda o: (
            f"{who(o)} returned the gradient instead of storing it: assign it to "
            f"`{o.value}`; the caller reads `.g`, not the return value"
        ),
    ),
    Mistake(
        "accumulate-missing-g",
        lambda o: o.error_matches(r"has no attribute 'g'") and o.error_line_matches(r"\.g\s*\+="),
        "`.g += ...` adds to a gradient that does not exist yet: set it with `=`",
    ),
    Mistake(
        "backward-order",
        lambda o: o.maths is NETWORK and o.error_matches(r"has no attribute 'g'"),
        "a backward step read an `out.g` that nothing had set: call the steps in the reverse "
        "order of the forward pass (mse_grad, the second lin_grad, relu_grad, the first "
        "lin_grad), and check that each step stores its result on `.g` (not on `.grad`, "
        "and not only as a return value) for the step before it to read",
    ),
    Mistake(
        "matmul-no-transpose",
        lambda o: o.maths is LIN and o.error_matches(r"mat1 and mat2 shapes cannot be multiplied"),
        # The hint names the transpose, not the whole line: this file ships to students.
        "`inp.g = out.g @ w` multiplies (N, n_out) by (n_in, n_out): the chain rule needs "
        "w transposed (`w.t()`, (n_out, n_in)), which gives inp.g inp's shape (N, n_in)",
    ),
    Mistake(
        "mse-broadcast-n-by-n",
        n_by_n,
        "`(N, 1) - (N,)` broadcasts to an (N, N) matrix: take `inp[:, 0]` (or "
        "`inp.squeeze(-1)`) before subtracting targ, then `unsqueeze(-1)` back to (N, 1)",
    ),
    Mistake(
        "matmul-row-not-column",
        lambda o: o.maths is MATMUL and o.error_line_matches(r"\[\s*i\s*,\s*None\s*\]"),
        "`a[i, None]` is a (1, ac) row; broadcasting against b (ac, bc) needs the column "
        "`a[i, :, None]` (or `a[i].unsqueeze(-1)`), of shape (ac, 1)",
    ),
    Mistake(
        "matmul-result-shape",
        lambda o: o.maths is MATMUL and _wrong_shape(o),
        lambda o: (
            f"the result must have a's rows and b's columns, "
            f"{(_shapes(o) or ((), ()))[1]}: allocate `torch.zeros(ar, bc, ...)`"
        ),
    ),
    Mistake(
        "dtype",
        lambda o: o.verdict is not None and o.verdict.reason == "dtype",
        lambda o: (
            "the result came back in another dtype than the inputs: make new tensors, masks "
            f"included, in the inputs' dtype (`dtype={_input_of(o)}.dtype`, "
            f"`torch.zeros_like({_input_of(o)})`, `(mask).to({_input_of(o)}.dtype)`)"
        ),
    ),
    Mistake(
        "transposed",
        transposed,
        lambda o: (
            f"{o.value} is transposed: a weight gradient has the weight's shape, "
            "(n_in, n_out), which is `inp.t() @ out.g`"
        ),
    ),
    Mistake(
        "bias-not-summed",
        bias_not_summed,
        lambda o: (
            f"{o.value} keeps one row per example: the bias is added to every row, "
            "so its gradient sums out.g over the batch, `out.g.sum(0)`"
        ),
    ),
    Mistake(
        "bias-averaged",
        bias_averaged,
        lambda o: (
            f"{o.value} is averaged over the batch: the bias is added to every row, "
            "so its gradient is the sum, `out.g.sum(0)`, not the mean (the 1/N is "
            "already in mse_grad)"
        ),
    ),
    Mistake(
        "inp-g-flat",
        flat_inp_g,
        lambda o: (
            f"{o.value} has shape (N,) but must have inp's shape (N, 1): "
            "`unsqueeze(-1)` (or `[:, None]`)"
        ),
    ),
    Mistake(
        "mse-missing-2",
        lambda o: mse_values(o) and scaled(o, 0.5),
        "the gradient is half what it should be: d/dx (x - t)^2 = 2 (x - t), so mse_grad "
        "needs the factor 2",
    ),
    Mistake(
        "mse-missing-1/N",
        lambda o: mse_values(o) and batch(o) > 1 and scaled(o, batch(o)),
        "the gradient is N times too large: the loss is a mean over N examples, so mse_grad "
        "divides by N (`inp.shape[0]`)",
    ),
    Mistake(
        "softmax-overflow",
        unstable,
        lambda o: (
            f"{o.value} holds inf or NaN on logits of +-1000: `exp(1000)` overflows to inf, "
            "and inf / inf is NaN. Subtract each row's maximum first (the logsumexp trick: "
            "logsumexp(x) = m + log(sum(exp(x - m))), m = x.max(-1, keepdim=True)), which "
            "changes nothing in exact arithmetic"
        ),
    ),
    Mistake(
        "softmax-wrong-dimension",
        softmax_over_rows,
        "the softmax is taken down each column, over the batch: it is over each row's "
        "classes, the last dimension (`x.max(-1, keepdim=True)`, `.sum(-1, keepdim=True)`, "
        "`logsumexp(-1)`)",
    ),
    Mistake(
        "labels-as-columns",
        whole_columns,
        "`inp[:, targ]` takes every label's column for every row, an (N, N) matrix: each row "
        "wants its own label, `inp[range(len(targ)), targ]` (with labels shaped (N,): "
        "`targ.reshape(-1)` or `targ.flatten()` first where they come as (N, 1))",
    ),
    Mistake(
        "loss-mean-forgotten",
        mean_forgotten,
        lambda o: (
            f"{o.value} is N times too large: the loss is the mean over the N examples, so "
            "take `.mean()` (or, for the gradient, divide by N, `inp.shape[0]`)"
        ),
    ),
    Mistake(
        "target-not-subtracted",
        target_not_subtracted,
        "inp.g is softmax(inp) / N: the gradient of cross-entropy is the softmax minus the "
        "one-hot target, so subtract 1 at each row's label (`g[range(N), targ] -= 1`) "
        "before dividing by N",
    ),
    Mistake(
        "parameters-not-updated",
        params_unchanged,
        lambda o: (
            f"fit left `{o.value}` as it was: `p = p - lr * p.g` makes a new tensor and "
            "rebinds the name `p`, and the model keeps the old one. Update the tensor "
            "itself, `p -= lr * p.g`, inside `with torch.no_grad():`"
        ),
    ),
    Mistake(
        "gradients-not-cleared",
        gradients_piled_up,
        lambda o: (
            f"each step of fit applied the sum of every gradient so far to `{o.value}`: "
            "the gradients pile up from step to step. Clear them after each update "
            "(`p.g = None`, or `p.g.zero_()`), or set them with `=` in backward"
        ),
    ),
    Mistake(
        "sign",
        lambda o: scaled(o, -1.0),
        lambda o: (
            f"{o.value} has the right size but the opposite sign: check the order of "
            "the subtraction (`inp - targ`, not `targ - inp`) and every minus sign"
        ),
    ),
    Mistake(
        "relu-mask-from-out-g",
        relu_out_g_mask,
        "the relu mask must come from the layer's input (`inp > 0`), not from the sign of "
        "`out.g`: the slope of relu depends on where it was evaluated",
    ),
    Mistake(
        "relu-dropped-out-g",
        relu_dropped_out_g,
        "relu_grad returns only the mask: multiply it by `out.g` (the chain rule), "
        "`inp.g = (inp > 0).float() * out.g`",
    ),
    Mistake(
        "shifted-relu",
        shifted_relu,
        "your relu subtracts 0.5 (the 2019 lesson's `x.clamp_min(0.) - 0.5`, which centres "
        "the activations): this notebook's relu is `max(inp, 0)` with no shift, and the "
        "shift changes the loss and every gradient: take it out",
    ),
    Mistake(
        "first-layer-only",
        first_layer_only,
        "w2.g and b2.g are right but the first layer's gradients are not: the mistake is in "
        "relu_grad or in the first lin_grad call (its arguments: inp, l1, w1, b1)",
        locates=True,
    ),
    # last: the known factors above say more; any other one factor still says something
    Mistake(
        "constant-ratio",
        lambda o: _ratio(o) is not None,
        lambda o: (
            f"{o.value}: {ratio_sentence(_ratio(o) or 1.0)} A factor such as 2 or 1/N missing or "
            "doubled, or a sign: the notebook's own test says the same"
        ),
    ),
)


def _shapes(o: Observation) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(yours, expected) shapes of the value, when both are tensors."""
    got, want = o.tensor(), o.expected
    if got is None or want is None:
        return None
    return tuple(got.shape), tuple(want.shape)


def _wrong_shape(o: Observation) -> bool:
    shapes = _shapes(o)
    return shapes is not None and shapes[0] != shapes[1]


def _ratio(o: Observation) -> float | None:
    """The one number the value is the expected one times (backprop_lab.coursedata.checks, which the
    notebooks' check_close reads too)."""
    got, want = o.tensor(), o.expected
    if got is None or want is None:
        return None
    # float32's tolerance even for float64 inputs: one factor within it is one factor
    return constant_ratio(got, want, 1e-4)


def _second_call_hint(o: Observation) -> str:
    """A second call that adds to `.g`, or a second use of a model that fails or differs
    (the grader calls everything twice, as training does)."""
    changed = o.facts["second_call"]
    doubled = [name for name, how in changed.items() if how == "doubled"]
    if doubled:
        names = ", ".join(f"`{n}`" for n in doubled)
        return (f"a second call doubles {names}: assign the gradient (`{doubled[0]} = ...`), "
                "do not add to it (`+=`): each call computes it afresh")  # fmt: skip
    how = "fails" if "error" in changed else "gives another result"
    return (f"a second use of the same {o.target} {how}: the first call changed something "
            "the next one uses. `self.layers.reverse()` reverses the list in place, so the "
            "next backward runs the layers forwards: use `reversed(self.layers)`")  # fmt: skip


def _input_of(o: Observation) -> str:
    """The name of the input a hint should mention: the one whose `.g` is compared
    (`inp`, `w`), else the lesson's first argument (`a` of matmul, `inp` elsewhere)."""
    if "." in o.value and o.value.split(".")[0].isidentifier():
        return o.value.split(".")[0]
    return "a" if o.maths is MATMUL else "inp"


def diagnose(obs: Observation) -> tuple[str, str] | None:
    """(mistake id, hint) for the first catalogue entry that recognises `obs`."""
    for mistake in CATALOGUE:
        try:
            if mistake.detect(obs):
                return mistake.id, mistake.text(obs)
        except (RuntimeError, KeyError, IndexError, ValueError, TypeError):
            continue  # a detector that does not apply to these shapes
    return None


_BY_ID = {m.id: m for m in CATALOGUE}


def mistake(mistake_id: str) -> Mistake:
    """The catalogue entry of that id."""
    return _BY_ID[mistake_id]
