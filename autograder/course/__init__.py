"""The course: what is graded, how, and for how many points, built from its families.

A *family* is one module per layer of the lesson (micrograd's habit): its maths (the
inputs a case draws, the oracle by autograd, the cross-check against the hand-written
`reference`), its protocols (how student code is called, each with the `Recipe` the
kernel calls it by), its cases, and the exercises and checks that grade it:
`matmul`, `mse`, `relu`, `lin`, and `network` (forward_and_backward, the class refactor,
Model). This module joins them into the one table everything else reads: the pipeline
(which functions to call, on which inputs), the comparison (which values), the score and
every report, the pytest plugin (one test per check), `autograde verify` and the tests
that keep the notebooks' nbgrader points in step with it.

Adding an exercise is a family module (or an entry in one) plus its notebook cells; a new
family is also one line in `FAMILIES`. No torch here, nor in the families' import: the
CLI reads the table before it needs torch.
"""

from __future__ import annotations

from types import ModuleType

from . import lin, matmul, mse, network, relu
from .core import (
    Case,
    Check,
    Exercise,
    Expected,
    GraderBug,
    Inputs,
    Maths,
    Protocol,
    Recipe,
)
from .oracle import expected_values, hand_written, make_inputs

__all__ = [
    "ASSIGNMENTS",
    "EXERCISES",
    "FAMILIES",
    "LIN",
    "MATHS",
    "MATMUL",
    "MSE",
    "NETWORK",
    "PROTOCOLS",
    "RELU",
    "Case",
    "Check",
    "Exercise",
    "Expected",
    "GraderBug",
    "Inputs",
    "Maths",
    "Protocol",
    "Recipe",
    "exercises_for",
    "expected_values",
    "get",
    "hand_written",
    "make_inputs",
]

# In the order of the notebooks: an assignment's exercises are listed in this order.
FAMILIES: tuple[ModuleType, ...] = (matmul, mse, relu, lin, network)

EXERCISES: tuple[Exercise, ...] = tuple(e for f in FAMILIES for e in f.EXERCISES)
ASSIGNMENTS: tuple[str, ...] = tuple(dict.fromkeys(e.assignment for e in EXERCISES))
PROTOCOLS: dict[str, Protocol] = {c.protocol.name: c.protocol for e in EXERCISES for c in e.checks}
MATHS: dict[str, Maths] = {p.maths.name: p.maths for p in PROTOCOLS.values()}
# Each family's maths by name, for the catalogue's patterns that belong to one layer.
MATMUL, MSE, RELU, LIN, NETWORK = (f.MATHS for f in FAMILIES)


def exercises_for(assignment: str) -> tuple[Exercise, ...]:
    found = tuple(e for e in EXERCISES if e.assignment == assignment)
    if not found:
        raise KeyError(f"no assignment {assignment!r}; known: {', '.join(ASSIGNMENTS)}")
    return found


def get(protocol: Protocol | str) -> Protocol:
    """The record itself, or the one of that name."""
    if isinstance(protocol, Protocol):
        return protocol
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        raise KeyError(f"no protocol {protocol!r}; known: {', '.join(PROTOCOLS)}") from None
