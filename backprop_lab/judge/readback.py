"""Reading the kernel's answers back: the one results message of the grader's last cell,
read through the boundary's format (`kernel.wire`) into the grader's own types, each value
with its tensor.

Read from the executed notebook with `torch.load(weights_only=True)` and `json`: plain
tensors and data, never a pickled object from the student's process.
"""

from __future__ import annotations

import base64
import io
import pickle
from dataclasses import dataclass, field
from typing import Any

import torch
from nbformat import NotebookNode
from torch import Tensor

from ..kernel.wire import (
    AUTOGRADER_TAG,
    RESULTS_MIME,
    Results,
    Speed,
    ValueInfo,
    WireError,
    item_key,
    value_key,
)

__all__ = [
    "CallResult",
    "Harvest",
    "HarvestError",
    "Speed",
    "Value",
    "read_harvest",
    "results_messages",
]


class HarvestError(RuntimeError):
    """The kernel's results are missing or not plain data."""


@dataclass(frozen=True)
class Value:
    """One value the kernel reported: a tensor, or why there is none."""

    kind: str  # tensor | missing | none | sequence | other
    tensor: Tensor | None = None
    dtype: str | None = None
    device: str | None = None
    type: str | None = None
    items: tuple[Value, ...] = ()
    repr: str = ""


@dataclass(frozen=True)
class CallResult:
    values: dict[str, Value]
    error: dict[str, Any] | None
    picked: str | None
    seconds: float
    facts: dict[str, Any] = field(default_factory=dict)  # what the kernel noticed: wire.CallEntry


@dataclass(frozen=True)
class Harvest:
    calls: dict[str, CallResult]
    defined: tuple[str, ...]
    debugger_calls: int = 0  # breakpoints the kernel skipped
    integrity: tuple[str, ...] = ()  # what the notebook did to the grading environment
    speed: Speed | None = None  # the matmul timings, for the matmul assignment


def _value(info: ValueInfo, key: str, tensors: dict[str, Tensor]) -> Value:
    if info.kind == "tensor":
        t = tensors.get(key)
        if not isinstance(t, Tensor):
            raise HarvestError(f"tensor {key} is missing from the results")
        return Value("tensor", t, info.dtype, info.device)
    if info.kind == "sequence":
        items = tuple(_value(m, item_key(key, i), tensors) for i, m in enumerate(info.items))
        return Value("sequence", type=info.type, items=items)
    return Value(info.kind, type=info.type, repr=info.repr)


def results_messages(executed: NotebookNode | None) -> list[Any]:
    """The results messages in the output of the grader's last cell."""
    if executed is None or not executed.cells:
        return []
    last = executed.cells[-1]
    if AUTOGRADER_TAG not in last.get("metadata", {}).get("tags", []):
        return []
    return [
        o["data"][RESULTS_MIME]
        for o in last.get("outputs", [])
        if o.get("output_type") == "display_data" and RESULTS_MIME in o.get("data", {})
    ]


def read_harvest(executed: NotebookNode | None) -> Harvest:
    """The kernel's results, as data, from the grader's cell's output in the executed
    notebook. Raises HarvestError if there is not exactly one results message, if it is
    not plain tensors and JSON (a pickled object is refused by `weights_only=True`), or if
    it is not in the format (`kernel.wire`, its schema version) this grader reads."""
    messages = results_messages(executed)
    if not messages:
        raise HarvestError("the grading cell did not send its results")
    if len(messages) > 1:
        raise HarvestError(
            f"the grading cell's output holds {len(messages)} results messages, not one: "
            "something in the notebook sent results of its own, so none can be trusted"
        )
    message = messages[0]
    try:
        raw = base64.b64decode(message["tensors"], validate=True)
        tensors = torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu")
        data = message["results"]
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, KeyError, TypeError) as exc:
        raise HarvestError(f"the results are not plain data: {exc}") from exc
    if not isinstance(tensors, dict) or not isinstance(data, dict):
        raise HarvestError("the results have the wrong structure")
    try:
        results = Results.from_dict(data)
    except WireError as exc:
        raise HarvestError(str(exc)) from exc
    try:
        calls = {
            key: CallResult(
                {k: _value(v, value_key(key, k), tensors) for k, v in entry.values.items()},
                entry.error,
                entry.picked,
                entry.seconds,
                entry.facts,
            )
            for key, entry in results.calls.items()
        }
    except RecursionError as exc:  # values nested as deep as Python's stack: forged
        raise HarvestError("the results nest values too deeply") from exc
    return Harvest(calls, results.defined, results.debugger_calls, results.integrity, results.speed)
