"""The course's vocabulary: what a case, a protocol, its maths, a check and an exercise
are. Plain records and no torch: the exercise table is read by the CLI and the grader
before they need torch (the families import it only inside the functions that make inputs
or answers).

- a *case* is one set of grader-made inputs (shapes, dtype, exact zeros or not);
- a *protocol* is one way student code is called (`lin_grad(inp, out, w, b)`,
  `Lin(w, b).backward()`): its maths, how the call reads to a student, and its `Recipe`,
  the data the kernel calls it by;
- a *check* calls one function or class on its cases and compares some of the values it
  produces (`"return"`, `"inp.g"`, `"w1.g"`, `"loss"`...) with the reference; it passes
  when every value on every case matches, and is worth `points`;
- an *exercise* is one solution cell of a notebook (its nbgrader `grade_id`) and the
  checks that grade it; its points equal those of its nbgrader test cell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, TypeAlias

from ..kernel.calling import Recipe

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = [
    "Case",
    "Check",
    "Exercise",
    "Expected",
    "GraderBug",
    "Inputs",
    "Maths",
    "Protocol",
    "Recipe",
]

Inputs: TypeAlias = "dict[str, Tensor]"


class GraderBug(RuntimeError):
    """The reference and autograd disagree: the grader, not the student, is wrong."""


@dataclass(frozen=True)
class Case:
    """One set of inputs. `dims` is read by the check's protocol's maths: matmul
    (ar, ac, bc); mse (N,); relu (rows, cols); lin (N, n_in, n_out); network
    (N, n_in, n_hidden); cross-entropy (N, classes); training (N, n_in, n_hidden,
    classes, batch size, epochs). `variant` is a family's own kind of input, named as it
    reads in a check ("logits of +-1000", "labels shaped (N, 1)")."""

    dims: tuple[int, ...]
    dtype: str = "float32"
    zeros: bool = False  # put exact zeros where the maths has a kink (relu inputs)
    # matrices as non-contiguous views (a transpose's strides), as `x.t()` or a slice
    # gives them: code written with `.view` fails on them
    strided: bool = False
    variant: str = ""

    @property
    def name(self) -> str:
        sizes = " x ".join(str(d) for d in self.dims)
        return (f"{sizes}, {self.dtype}" + (", with exact zeros" if self.zeros else "")
                + (", non-contiguous" if self.strided else "")
                + (f", {self.variant}" if self.variant else ""))  # fmt: skip


@dataclass(frozen=True)
class Expected:
    """The right answer for one value. Where `free` is True the maths allows a range
    (a subgradient at a relu kink): any value in [`low`, `high`] there is right."""

    value: Tensor
    free: Tensor | None = None
    low: Tensor | None = None
    high: Tensor | None = None


@dataclass(frozen=True)
class Maths:
    """One layer's maths, whichever way the student's code is called: `make(case, gen)`
    the inputs; `oracle(inputs)` the right answers in float64, from autograd on the
    lesson's forward functions (what grades); `reference(ref, inputs)` the same from the
    hand-written `reference` package `ref`, the cross-check where it is installed.
    `example`: a small case with no two sizes equal, so a transposed or unsummed result
    has the wrong shape (the catalogue's and the kernel's unit tests draw it)."""

    name: str
    make: Callable[[Case, torch.Generator], Inputs]
    oracle: Callable[[Inputs], dict[str, Expected]]
    reference: Callable[[ModuleType, Inputs], dict[str, Tensor]]
    example: Case


@dataclass(frozen=True)
class Protocol:
    """One way student code is called: `name`; the `maths` it is graded on; how the call
    reads to a student (`call`, "{t}" the graded name: `lin_grad(inp, out, w, b)`); the
    function that computes the gradients (`grads`, `Lin.backward`), for hints; and the
    `recipe` the kernel calls it by."""

    name: str
    maths: Maths
    call: str
    grads: str
    recipe: Recipe

    def __str__(self) -> str:
        return self.name

    def call_form(self, target: str) -> str:
        return self.call.format(t=target)

    def grad_function(self, target: str) -> str:
        return self.grads.format(t=target)


@dataclass(frozen=True)
class Check:
    """One graded behaviour: call `target` with `protocol` on each case and compare
    `values`. `advisory` checks are reported but worth nothing (points must be 0)."""

    name: str
    points: int
    target: str
    protocol: Protocol
    values: tuple[str, ...]
    cases: tuple[Case, ...]
    advisory: bool = False

    def __post_init__(self) -> None:
        if self.advisory and self.points:
            raise ValueError(f"advisory check {self.name!r} cannot be worth points")
        if not isinstance(self.protocol, Protocol):
            raise TypeError(f"check {self.name!r}: protocol must be a Protocol record")
        if not self.cases:
            raise ValueError(f"check {self.name!r} has no cases")


@dataclass(frozen=True)
class Exercise:
    """One solution cell (nbgrader `grade_id` = `cell`) and the checks that grade it."""

    assignment: str
    cell: str
    title: str
    checks: tuple[Check, ...]
    # exercises whose functions this one calls: when they fail, its failures are put
    # down to them ("caused by lin_grad, above") instead of to a mistake of its own
    builds_on: tuple[str, ...] = ()
    # what the exercise asks students to write for themselves: an answer that uses one of
    # these instead gets a 0-point note (shortcuts.py), its points as they are
    shortcuts: tuple[str, ...] = ()

    @property
    def points(self) -> int:
        return sum(c.points for c in self.checks)

    @property
    def test_cell(self) -> str:
        """The grade_id of the notebook's test cell for this exercise."""
        return f"{self.cell}_tests"
