"""The call recipes: how each protocol calls student code, one per protocol name in
protocols.py (`RECIPES`, keyed by the same names).

Each gets the object under test and fresh copies of the inputs on the grading device,
calls it the way the lesson does, and returns the values to compare by name.
"""

import inspect

from .state import _MISSING, _State


def _g(t):
    return getattr(t, "g", _MISSING)


def _with_grads(values, tensors):
    """Add `name.g` for each tensor, and `name.grad` where a student stored one there."""
    for name, t in tensors.items():
        values[f"{name}.g"] = _g(t)
        if t.grad is not None:
            values[f"{name}.grad"] = t.grad
    return values


def _fresh(t):
    """The same inputs as new tensors (nothing a first call stored on them)."""
    return {k: v.detach().clone() if hasattr(v, "detach") else v for k, v in t.items()}


def _changes(first, second):
    """What a second call changed of the first one's values: {name: "doubled" | "changed"}
    (a gradient function adds to `.g`; a model reverses its layers in place)."""
    import torch

    found = {}
    for name, before in first.items():
        after = second.get(name, _MISSING)
        if not (torch.is_tensor(before) and torch.is_tensor(after)):
            continue
        if before.shape != after.shape or before.dtype != after.dtype:
            found[name] = "changed"
        elif not torch.equal(before, after):
            doubled = torch.allclose(after, 2 * before) and not torch.allclose(after, before)
            found[name] = "doubled" if doubled else "changed"
    return found


def _twice(first_call, second_call):
    """The lesson's functions and classes hold nothing between calls: call a second time
    (`second_call`), compare with the first, and grade what the second gives. What the
    second call changed, or that it failed, is a fact for the hint."""
    first = {k: v.detach().clone() if hasattr(v, "detach") else v
             for k, v in first_call().items()}  # fmt: skip
    try:
        second = second_call()
    except BaseException:
        _State.facts["second_call"] = {"error": "raised"}
        raise
    changed = _changes(first, second)
    if changed:
        _State.facts["second_call"] = changed
    return second


def _matmul(fn, t, ns):
    return {"return": fn(t["a"], t["b"])}


def _mse_grad(fn, t, ns):
    def call():
        ret = fn(t["inp"], t["targ"])
        return _with_grads({"return": ret}, {"inp": t["inp"]})

    return _twice(call, call)  # the same tensors again: `.g` set, not added to


def _relu_grad(fn, t, ns):
    def call():
        t["out"].g = t["out.g"]
        ret = fn(t["inp"], t["out"])
        return _with_grads({"return": ret}, {"inp": t["inp"]})

    return _twice(call, call)


def _lin_grad(fn, t, ns):
    def call():
        t["out"].g = t["out.g"]
        ret = fn(t["inp"], t["out"], t["w"], t["b"])
        return _with_grads({"return": ret}, {k: t[k] for k in ("inp", "w", "b")})

    return _twice(call, call)


_PARAMS = ("w1", "b1", "w2", "b2")


def _by_name(fn, names):
    """Which of `names` `fn` takes by name: parameters so named (with or without a
    default, keyword-only too), or all of them where it takes **kwargs."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return list(names)
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return [n for n in names if n in named]


def _forward_and_backward(fn, t, ns):
    # The lesson's forward_and_backward(inp, targ) reads w1, b1, w2, b2 from the
    # notebook's globals: set them to the grader's tensors for the call, then restore.
    # A version that takes them as parameters (`w1=w1`, bound when it was defined, a
    # common way to make a function "remember" the globals) gets them by name.
    scope = getattr(fn, "__globals__", ns)
    saved = {k: scope.get(k, _MISSING) for k in _PARAMS}
    scope.update({k: t[k] for k in _PARAMS})

    def call():
        ret = fn(t["inp"], t["targ"], **{k: t[k] for k in _by_name(fn, _PARAMS)})
        return _with_grads({"return": ret}, {k: t[k] for k in ("inp", *_PARAMS)})

    try:
        return _twice(call, call)
    finally:
        for k, v in saved.items():
            if v is _MISSING:
                scope.pop(k, None)
            else:
                scope[k] = v


def _output(layer, out):
    """A layer's call must return its output: say so, rather than fail on `None.g`."""
    if out is None:
        name = f"{type(layer).__name__}.__call__"
        _State.facts["returns_none"] = name
        raise TypeError(f"{name} returned None")
    return out


def _relu_class(cls, t, ns):
    layer = cls()

    def run(x):
        out = _output(layer, layer(x["inp"]))
        out.g = x["out.g"]
        ret = layer.backward()
        return _with_grads({"return": ret}, {"inp": x["inp"]})

    # the same layer a second time, on new input tensors: a layer keeps nothing between uses
    return _twice(lambda: run(t), lambda: run(_fresh(t)))


def _lin_class(cls, t, ns):
    layer = cls(t["w"], t["b"])

    def run(x):
        out = _output(layer, layer(x["inp"]))
        out.g = x["out.g"]
        ret = layer.backward()
        # `self.b = self.out.g.sum(0)` replaces the parameter with its gradient
        replaced = [f"self.{k}" for k in ("w", "b") if getattr(layer, k, t[k]) is not t[k]]
        if replaced:
            _State.facts["replaced"] = replaced
        return _with_grads({"return": ret}, {"inp": x["inp"], "w": t["w"], "b": t["b"]})

    return _twice(lambda: run(t), lambda: run({**_fresh(t), "w": t["w"], "b": t["b"]}))


def _mse_class(cls, t, ns):
    layer = cls()

    def run(x):
        layer(x["inp"], x["targ"])
        ret = layer.backward()
        return _with_grads({"return": ret}, {"inp": x["inp"]})

    return _twice(lambda: run(t), lambda: run(_fresh(t)))


def _model_class(cls, t, ns):
    try:
        names = list(inspect.signature(cls).parameters)[:4]
    except (TypeError, ValueError):
        names = []
    if sorted(names) == sorted(_PARAMS) and names != list(_PARAMS):
        # The same four weights in another order: pass them by name, and say so, rather
        # than fail with a shape error the student cannot connect to the cause.
        _State.facts["arg_order"] = names
        model = cls(**{k: t[k] for k in _PARAMS})
    else:
        model = cls(*(t[k] for k in _PARAMS))

    def run(x):
        loss = model(x["inp"], x["targ"])
        ret = model.backward()
        return _with_grads({"loss": loss, "return": ret},
                           {"inp": x["inp"], **{k: t[k] for k in _PARAMS}})  # fmt: skip

    # a second forward and backward through the same model (its weights' `.g` set again):
    # `self.layers.reverse()` in backward breaks it
    return _twice(lambda: run(t), lambda: run({**_fresh(t), **{k: t[k] for k in _PARAMS}}))


RECIPES = {
    "matmul": _matmul,
    "mse_grad": _mse_grad,
    "mse_class": _mse_class,
    "relu_grad": _relu_grad,
    "relu_class": _relu_class,
    "lin_grad": _lin_grad,
    "lin_class": _lin_class,
    "forward_and_backward": _forward_and_backward,
    "model_class": _model_class,
}
