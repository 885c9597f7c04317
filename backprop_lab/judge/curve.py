"""How the student's `fit` trains on the digits, epoch by epoch, beside the reference: each
epoch's training loss, validation loss and validation accuracy as the student's fit
returned them (the notebook's contract: one such triple per epoch), and the course's
float64 SGD on the same inputs. For the report's loss curve; it scores nothing (the
parameters after training do)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..course import expected_values, training
from ..plan.calls import Plan
from .readback import Harvest, Value

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["Epoch", "LossCurve", "loss_curve"]

Epoch = tuple[float, float, float]  # training loss, validation loss, validation accuracy


@dataclass(frozen=True)
class LossCurve:
    expected: tuple[Epoch, ...]
    yours: tuple[Epoch, ...] | None  # None where fit returned no such history
    why_not_yours: str = ""  # what fit returned instead, for the report
    # the last epoch's "validation" accuracy fit reported is its parameters' accuracy on the
    # training set, not on the validation set: (what it reported, the validation set's)
    on_the_training_set: tuple[float, float] | None = None


def loss_curve(plan: Plan, harvest: Harvest | None) -> LossCurve | None:
    """The curve of the plan's fit on the digits; None where the plan has no such call."""
    for key, call in plan.calls.items():
        if call.protocol != training.FIT.name or call.case.variant != training.DIGITS:
            continue
        cached = [v for v in call.expected.values() if training.HISTORY in v]
        want = cached[0] if cached else expected_values(call.protocol, call.inputs, ())
        expected = tuple(_triple(row) for row in want[training.HISTORY].value.tolist())
        result = harvest.calls.get(key) if harvest is not None else None
        if result is None or result.error is not None:
            return LossCurve(expected, None, "fit raised an error on the digits")
        yours, why = _history(result.values.get("return"), len(expected))
        trained = {k: result.values.get(k) for k in training.PARAMS}
        return LossCurve(expected, yours, why, _on_the_training_set(yours, trained, call.inputs))
    return None


def _on_the_training_set(
    yours: tuple[Epoch, ...] | None, trained: dict[str, Value | None], inputs: dict[str, Tensor]
) -> tuple[float, float] | None:
    """(reported, validation) when fit's last reported validation accuracy is that of its
    trained parameters on the training set and not the validation set's."""
    params = [v.tensor if v is not None else None for v in trained.values()]
    if yours is None or any(p is None for p in params):
        return None
    from ..course import lesson

    w1, b1, w2, b2 = (p.double() for p in params if p is not None)

    def right(x: Tensor, y: Tensor) -> float:
        logits = lesson.classifier_logits(x.double(), w1, b1, w2, b2)
        return float((logits.argmax(-1) == y.reshape(-1)).double().mean().item())

    reported = yours[-1][2]
    on_train = right(inputs["x_train"], inputs["y_train"])
    on_valid = right(inputs["x_valid"], inputs["y_valid"])
    if abs(reported - on_train) < 1e-6 and abs(reported - on_valid) > 1e-6:
        return reported, on_valid
    return None


def _triple(row: list[float]) -> Epoch:
    return float(row[0]), float(row[1]), float(row[2])


def _history(value: Value | None, epochs: int) -> tuple[tuple[Epoch, ...] | None, str]:
    """fit's return value as one (training loss, validation loss, validation accuracy) per
    epoch, or None and what it was instead."""
    if value is None or value.kind in ("none", "missing"):
        return None, "fit returned nothing"
    rows: list[list[float]] = []
    if value.kind == "tensor" and value.tensor is not None and value.tensor.dim() == 2:
        rows = value.tensor.double().tolist()
    elif value.kind == "sequence":
        for item in value.items:
            row = _numbers(item)
            if row is None:
                return None, "fit's return value holds something other than numbers"
            rows.append(row)
    else:
        return None, f"fit returned a {value.type or value.kind}, not one row per epoch"
    if len(rows) != epochs or any(len(r) < 3 for r in rows):
        return None, (f"fit returned {len(rows)} rows for {epochs} epochs; the notebook's fit "
                      "returns one (training loss, validation loss, validation accuracy) "
                      "per epoch")  # fmt: skip
    triples = tuple(_triple(r) for r in rows)
    if not all(math.isfinite(x) for t in triples for x in t):
        return None, "fit's losses are not finite"
    return triples, ""


def _numbers(value: Value) -> list[float] | None:
    if value.kind == "tensor" and value.tensor is not None and value.tensor.dim() <= 1:
        return [float(x) for x in value.tensor.reshape(-1).tolist()]
    if value.kind == "sequence":
        out = []
        for item in value.items:
            if item.kind == "tensor" and item.tensor is not None and item.tensor.numel() == 1:
                out.append(float(item.tensor.item()))
                continue
            try:
                out.append(float(item.repr))
            except ValueError:
                return None
        return out
    return None
