"""The call recipes' runners: a protocol says how it calls student code as a `Recipe`
(wire.py), data a course family declares (backprop_lab/course/); `call_recipe` calls the object
under test that way, on fresh copies of the inputs on the grading device, and returns the
values to compare by name. One runner per kind of call: a function, a layer (or model)
class.
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
        elif not _same(before, after):
            doubled = torch.allclose(after, 2 * before) and not torch.allclose(after, before)
            found[name] = "doubled" if doubled else "changed"
    return found


def _same(a, b):
    """Equal, NaN where the other has NaN too: an unstable function gives NaN on both
    calls, which is no change between them."""
    import torch

    if torch.equal(a, b):
        return True
    return a.is_floating_point() and bool(((a == b) | (a.isnan() & b.isnan())).all())


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


def _output(layer, out):
    """A layer's call must return its output: say so, rather than fail on `None.g`."""
    if out is None:
        name = f"{type(layer).__name__}.__call__"
        _State.facts["returns_none"] = name
        raise TypeError(f"{name} returned None")
    return out


def _function(recipe, fn, t, ns):
    # A function that reads notebook globals by design (the lesson's
    # forward_and_backward(inp, targ) reads w1, b1, w2, b2): set them to the grader's
    # tensors for the call, then restore. A version that takes them as parameters (`w1=w1`,
    # bound when it was defined, a common way to make a function "remember" the globals)
    # gets them by name.
    scope = getattr(fn, "__globals__", ns)
    saved = {k: scope.get(k, _MISSING) for k in recipe.globals}
    scope.update({k: t[k] for k in recipe.globals})
    by_name = _by_name(fn, recipe.globals) if recipe.globals else []

    groups = dict(recipe.groups)

    def call():
        for tensor, grad in recipe.set_g:
            t[tensor].g = t[grad]
        args = [[t[m] for m in groups[a]] if a in groups else t[a] for a in recipe.args]
        numbers = {k: t[k].item() for k in recipe.scalars}
        ret = fn(*args, **{k: t[k] for k in by_name}, **numbers)
        values = _with_grads({"return": ret}, {k: t[k] for k in recipe.grads})
        # the caller's own tensors, as the call left them: an update that rebinds a name
        # (`p = p - lr * p.g`) leaves them as they were
        values.update({k: t[k].detach().clone() for k in recipe.updated})
        return values

    try:
        # the same tensors again: `.g` set, not added to
        return _twice(call, call) if recipe.twice else call()
    finally:
        for k, v in saved.items():
            if v is _MISSING:
                scope.pop(k, None)
            else:
                scope[k] = v


def _construct(recipe, cls, t):
    init = recipe.init
    try:
        names = list(inspect.signature(cls).parameters)[: len(init)]
    except (TypeError, ValueError):
        names = []
    if len(init) > 1 and sorted(names) == sorted(init) and names != list(init):
        # The same parameters in another order: pass them by name, and say so, rather
        # than fail with a shape error the student cannot connect to the cause.
        _State.facts["arg_order"] = names
        return cls(**{k: t[k] for k in init})
    return cls(*(t[k] for k in init))


def _layer(recipe, cls, t, ns):
    layer = _construct(recipe, cls, t)
    kept = {k: t[k] for k in recipe.init}

    def run(x):
        values = {}
        out = layer(*(x[a] for a in recipe.args))
        if recipe.out_g:
            _output(layer, out).g = x[recipe.out_g]
        if recipe.call_value:
            values[recipe.call_value] = out
        values["return"] = layer.backward()
        # `self.b = self.out.g.sum(0)` replaces the parameter with its gradient
        replaced = [f"self.{k}" for k in recipe.replaced if getattr(layer, k, t[k]) is not t[k]]
        if replaced:
            _State.facts["replaced"] = replaced
        return _with_grads(values, {k: x[k] for k in recipe.grads})

    if not recipe.twice:
        return run(t)
    # the same layer a second time, on new input tensors and the same parameters: a
    # layer keeps nothing between uses (`self.layers.reverse()` in backward breaks it)
    return _twice(lambda: run(t), lambda: run({**_fresh(t), **kept}))


_RUNNERS = {"function": _function, "layer": _layer}


def call_recipe(recipe, obj, t, ns):
    """The values `obj` gives when called as `recipe` says on the inputs `t`."""
    return _RUNNERS[recipe.kind](recipe, obj, t, ns)
