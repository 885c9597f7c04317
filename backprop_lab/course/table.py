"""The one table, joined from the families: every exercise in notebook order, the
assignments, the protocols and the maths by name."""

from __future__ import annotations

from types import ModuleType

from . import crossentropy, lin, matmul, mse, network, relu, training
from .core import Exercise, Maths, Protocol

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
    "exercises_for",
    "get",
]

# In the order of the notebooks: an assignment's exercises are listed in this order.
FAMILIES: tuple[ModuleType, ...] = (matmul, mse, relu, lin, network, crossentropy, training)

EXERCISES: tuple[Exercise, ...] = tuple(e for f in FAMILIES for e in f.EXERCISES)
ASSIGNMENTS: tuple[str, ...] = tuple(dict.fromkeys(e.assignment for e in EXERCISES))
PROTOCOLS: dict[str, Protocol] = {c.protocol.name: c.protocol for e in EXERCISES for c in e.checks}
MATHS: dict[str, Maths] = {p.maths.name: p.maths for p in PROTOCOLS.values()}
# Each family's maths by name, for the catalogue's patterns that belong to one layer.
# The maths the catalogue's patterns of one layer name (mistakes.py, detectors.py); a new
# family needs a name here only when the catalogue has a pattern for it.
MATMUL, MSE, RELU, LIN, NETWORK = matmul.MATHS, mse.MATHS, relu.MATHS, lin.MATHS, network.MATHS


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
