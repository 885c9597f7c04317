"""How a protocol calls student code, as data: a `Recipe` travels in the plan (wire.py),
and the kernel's runners (recipes.py) call the student's function or class the way it
says. A course family declares one per protocol (backprop_lab/course/).
"""

from __future__ import annotations

from dataclasses import dataclass

RECIPE_KINDS = ("function", "layer")


@dataclass(frozen=True)
class Recipe:
    """How a protocol calls student code, as data: the kernel has one runner per `kind`
    (`recipes.run`), so a new exercise called in a known way needs no kernel code.

    "function": `fn(*args)`, after setting each `set_g` pair's first input's `.g` to the
    second (relu_grad's `out.g`); `globals` are set in the function's module for the call
    and passed by name where it takes them (forward_and_backward's weights).
    "layer": `layer = cls(*init)` (by name where its parameters are the same names in
    another order), then `layer(*args)`; with `out_g`, the call's output must be a tensor
    and gets that input as its `.g`; with `call_value`, the call's output is that value
    (a model's loss); then `layer.backward()`. A second use runs on fresh inputs and the
    same `init` tensors. `replaced` names attributes (`self.w`) that must still be the
    tensors given to `init`.

    "function" also takes `groups`, arguments that are lists of inputs (fit's `params`:
    w1, b1, w2, b2), and `scalars`, inputs given as Python numbers by keyword (fit's lr,
    epochs, bs); `updated` names inputs whose values after the call are compared, under
    their own names (the parameters fit updates in place).

    Both: the values compared are "return", `call_value`, and `name.g` (and `name.grad`)
    for each of `grads`. With `twice`, the call runs a second time and is graded on the
    second (a gradient set, not added to; a model that reverses its layers in place).
    `timed`: the speed ladder times it, and autograd is watched only above the
    dispatcher (its Python loops make thousands of ops)."""

    kind: str
    args: tuple[str, ...]
    grads: tuple[str, ...] = ()
    set_g: tuple[tuple[str, str], ...] = ()
    globals: tuple[str, ...] = ()
    init: tuple[str, ...] = ()
    out_g: str | None = None
    call_value: str | None = None
    replaced: tuple[str, ...] = ()
    twice: bool = True
    timed: bool = False
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    scalars: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in RECIPE_KINDS:
            raise ValueError(f"no recipe kind {self.kind!r}; known: {', '.join(RECIPE_KINDS)}")

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown recipe fields {sorted(unknown)}")

        def names(key: str) -> tuple[str, ...]:
            return tuple(str(n) for n in data.get(key, ()))

        return cls(
            kind=str(data["kind"]),
            args=names("args"),
            grads=names("grads"),
            set_g=tuple((str(a), str(b)) for a, b in data.get("set_g", ())),
            globals=names("globals"),
            init=names("init"),
            out_g=None if data.get("out_g") is None else str(data["out_g"]),
            call_value=None if data.get("call_value") is None else str(data["call_value"]),
            replaced=names("replaced"),
            twice=bool(data.get("twice", True)),
            timed=bool(data.get("timed", False)),
            groups=tuple(
                (str(g), tuple(str(n) for n in members)) for g, members in data.get("groups", ())
            ),
            scalars=names("scalars"),
            updated=names("updated"),
        )

    def inputs(self) -> set[str]:
        """Every input the recipe reads."""
        grouped = dict(self.groups)
        named = {m for a in self.args for m in grouped.get(a, (a,))}
        return (named | set(self.grads) | {x for pair in self.set_g for x in pair}
                | set(self.globals) | set(self.init) | set(self.scalars) | set(self.updated)
                | ({self.out_g} if self.out_g else set()))  # fmt: skip
