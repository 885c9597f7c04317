"""The grader's side of every check: the inputs a case asks for, and the right answers.

The answers come from torch autograd on the lesson's forward functions (`lesson.py`: the
`lin`, `relu` and `mse` the notebook gives students) and from `torch.matmul`, in float64:
the lesson's own oracle, and no hand-written answer, so the grader a student installs
holds none, nor does Gradescope's. Where the instructor's hand-written `reference/` is
installed (the course checkout, where `autograde verify` runs), every graded value is also
computed by it and the two must agree, so a bug in either is a loud grader error, never a
wrong grade.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
from types import ModuleType

from .core import Case, Expected, GraderBug, Inputs, Protocol
from .table import get

__all__ = ["expected_values", "hand_written", "make_inputs"]

ANSWERS = f"{__name__.partition('.')[0]}.reference"


@functools.cache
def hand_written() -> ModuleType | None:
    """The instructor's `backprop_lab.reference` (the lesson's hand-written answers) where
    it is installed; None in the grader students install, which grades without it."""
    try:
        return importlib.import_module(ANSWERS)
    except ModuleNotFoundError as exc:
        if exc.name != ANSWERS:
            raise
        return None


def make_inputs(protocol: Protocol | str, case: Case, seed: int, salt: str) -> Inputs:
    """The inputs for one case. Each (seed, salt) gives its own stream, so adding a case
    or a check does not change the inputs of the others."""
    import torch

    protocol = get(protocol)
    gen = torch.Generator().manual_seed(_stable_hash(f"{seed}/{salt}"))
    inputs = protocol.maths.make(case, gen)
    if case.strided:  # the same values, laid out as a transpose's view
        inputs = {k: v.t().contiguous().t() if v.dim() == 2 else v for k, v in inputs.items()}
    return inputs


def expected_values(
    protocol: Protocol | str, inputs: Inputs, values: tuple[str, ...]
) -> dict[str, Expected]:
    """The right answer for everything the protocol produces, from autograd. Where the
    hand-written reference is installed, `values` (those graded) are cross-checked against
    it where the maths has a single answer. The rest help recognise mistakes (right
    second-layer gradients point at the first layer)."""
    import torch

    protocol = get(protocol)
    want = protocol.maths.oracle(inputs)
    ref = hand_written()
    if ref is None:
        return want
    other = protocol.maths.reference(ref, inputs)
    for name in values:
        exp, hand = want[name], other[name]
        keep = ~exp.free if exp.free is not None else torch.ones_like(exp.value, dtype=torch.bool)
        if exp.value.shape != hand.shape:
            raise GraderBug(f"reference and autograd disagree on {name}'s shape "
                            f"({protocol.name})")  # fmt: skip
        a, b = hand[keep], exp.value[keep]
        scale = max(b.norm().item(), 1e-300)
        if (a - b).norm().item() / scale > 1e-9:
            raise GraderBug(f"reference and autograd disagree on {name} ({protocol.name})")
    return want


def _stable_hash(text: str) -> int:
    # Python's hash() is salted per process; grading must be repeatable.
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & (2**63 - 1)
