"""The kernel boundary's format: what the grader sends into the kernel (a `KernelPlan`)
and what comes back (`Results`), as dataclasses, with their JSON. The one module that
writes and reads both: it is joined into the injected source, where the kernel reads the
plan and writes the results, and imported by the grader, which writes the plan
(harvest.py) and reads the results (readback.py).

Standard library only. Tensors do not travel in the JSON: each value's tensor is saved
beside it (`torch.save`) under the key `value_key` gives it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .calling import Recipe

# Bumped whenever a field is added, removed or changes meaning, on either side.
SCHEMA = 2
# The type of the one display message that carries the results out of the kernel.
RESULTS_MIME = "application/vnd.autograde.results+json"
# The tag on the grader's cells: the results are read from the output of the last one only.
AUTOGRADER_TAG = "autograder"
VALUE_KINDS = ("tensor", "missing", "none", "sequence", "other")


class WireError(ValueError):
    """A plan or results message that does not have this schema's shape."""


def value_key(call: str, name: str) -> str:
    """Where the tensor of value `name` of call `call` is saved."""
    return f"{call}|{name}"


def item_key(key: str, index: int) -> str:
    """Where item `index` of a sequence saved under `key` is saved."""
    return f"{key}[{index}]"


def _plain(obj: Any) -> Any:
    """A dataclass as JSON's dicts and lists (`dataclasses.asdict` without its deep copies:
    the kernel's side sends what it built)."""
    if hasattr(type(obj), "__dataclass_fields__"):
        return {name: _plain(getattr(obj, name)) for name in type(obj).__dataclass_fields__}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _check_schema(data: Any, what: str) -> None:
    """`what` ("plan" or "results") is a mapping in this module's schema."""
    verb = "is" if what == "plan" else "are"
    if not isinstance(data, dict):
        raise WireError(f"the {what} {verb} not a mapping")
    if type(data.get("schema")) is not int or data["schema"] != SCHEMA:  # not True, not 1.0
        raise WireError(
            f"the {what} {verb} in schema {data.get('schema')!r}, and this grader reads schema "
            f"{SCHEMA}: the kernel ran another version of the grader's code"
        )


# -- into the kernel ----------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedCall:
    """One call of student code: which name, called how (the protocol and its recipe),
    which definition (the exercise's cell, the hashes of its source and of the other
    rungs' cells, its place among the definitions of `target`), and its time limit."""

    key: str
    target: str
    protocol: str
    recipe: Recipe
    timeout: float
    cell: str | None = None
    cell_sha: str | None = None
    index: int | None = None
    rungs: int = 1
    other_shas: tuple[str, ...] = ()


@dataclass(frozen=True)
class SpeedSpec:
    """The matmul timings: the shapes (a rows, a cols, b cols), the seconds of runs per
    rung, and the seconds after which a run is stopped and counted as at least that."""

    shape: tuple[int, int, int]
    budget: float
    cap: float | None = None


@dataclass(frozen=True)
class KernelPlan:
    device: str
    calls: tuple[PlannedCall, ...]
    speed: SpeedSpec | None = None
    # the grader's and the reference's folders: a notebook that imports from them is reported
    protected: tuple[str, ...] = ()
    schema: int = SCHEMA

    def to_json(self) -> str:
        return json.dumps(_plain(self))

    @classmethod
    def from_json(cls, text: str) -> KernelPlan:
        data = json.loads(text)
        _check_schema(data, "plan")
        try:
            speed = data.get("speed")
            calls = [c | {"other_shas": tuple(c.get("other_shas") or ()),
                          "recipe": Recipe.from_dict(c["recipe"])}
                     for c in data["calls"]]  # fmt: skip
            return cls(
                str(data["device"]),
                tuple(PlannedCall(**c) for c in calls),
                None if speed is None else SpeedSpec(**{**speed, "shape": tuple(speed["shape"])}),
                tuple(data.get("protected", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise WireError(f"the plan has the wrong structure: {exc}") from exc


# -- out of the kernel --------------------------------------------------------------------


@dataclass(frozen=True)
class ValueInfo:
    """One value a call gave back: a tensor (saved beside the results), or what it was."""

    kind: str  # one of VALUE_KINDS
    dtype: str | None = None
    shape: tuple[int, ...] | None = None
    device: str | None = None
    type: str | None = None
    items: tuple[ValueInfo, ...] = ()
    repr: str = ""

    @classmethod
    def from_dict(cls, meta: Any, key: str) -> ValueInfo:
        kind = meta.get("kind") if isinstance(meta, dict) else None
        if kind not in VALUE_KINDS:
            raise WireError(f"unknown value kind {kind!r} for {key}")
        items: tuple[ValueInfo, ...] = ()
        if kind == "sequence":
            items = tuple(cls.from_dict(m, item_key(key, i)) for i, m in enumerate(meta["items"]))
        shape = meta.get("shape")
        return cls(
            kind,
            meta.get("dtype"),
            None if shape is None else tuple(shape),
            meta.get("device"),
            meta.get("type"),
            items,
            str(meta.get("repr", "")),
        )


@dataclass(frozen=True)
class CallEntry:
    """What one call did: which definition was picked and how, its values or its error
    (type, message, the student's line...), its seconds, and what the kernel noticed:
    "globals" (notebook tensors the code reads; "globals_stored": those also stored as
    attributes, `self.targ`), "replaced" (parameters overwritten),
    "arg_order" (Model's constructor's order), "autograd" (how often it was seen),
    "unwatched" (how the call switched a watch off), "device_unaware"."""

    picked: str | None
    seconds: float = 0.0
    values: dict[str, ValueInfo] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, entry: Any, key: str) -> CallEntry:
        facts = entry.get("facts") or {}
        if not isinstance(facts, dict):
            raise WireError(f"facts of {key} are not a mapping")
        error = entry.get("error")
        # read as text by every message: flat, and nothing but text, counts and flags
        if error is not None and not (
            isinstance(error, dict)
            and all(isinstance(v, str | int | bool | None) for v in error.values())
        ):
            raise WireError(f"the error of {key} is not a mapping of plain values")
        values = {
            k: ValueInfo.from_dict(m, value_key(key, k))
            for k, m in (entry.get("values") or {}).items()
        }
        return cls(entry.get("picked"), float(entry.get("seconds", 0.0)), values, error, facts)


@dataclass(frozen=True)
class Speed:
    """Seconds per call on the lesson's shapes, measured in the student's kernel: rows of
    (label, seconds or None when it failed, is the student's, the run was stopped at that
    many seconds: a lower bound)."""

    shape: tuple[int, int, int]
    rows: tuple[tuple[str, float | None, bool, bool], ...]
    # torch.matmul's time moved more than 3x during the timings: too busy a machine to rank
    noisy: bool = False

    @classmethod
    def from_dict(cls, data: Any) -> Speed:
        try:
            rows = tuple(
                (str(label), None if s is None else float(s), bool(mine), bool(at_least))
                for label, s, mine, at_least in data["rows"]
            )
            ar, ac, bc = (int(x) for x in data["shape"])
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise WireError(f"the speed results have the wrong structure: {exc}") from exc
        return cls((ar, ac, bc), rows, data.get("noisy") is True)


@dataclass(frozen=True)
class Results:
    calls: dict[str, CallEntry]
    defined: tuple[str, ...] = ()  # the notebook's public callables
    debugger_calls: int = 0  # breakpoints the kernel skipped
    integrity: tuple[str, ...] = ()  # what the notebook did to the grading environment
    speed: Speed | None = None
    schema: int = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_dict(cls, data: Any) -> Results:
        _check_schema(data, "results")
        skipped = data.get("debugger_calls", 0)
        if not isinstance(skipped, int):
            raise WireError("debugger_calls is not a count")
        integrity = data.get("integrity", [])
        if not isinstance(integrity, list) or not all(isinstance(i, str) for i in integrity):
            raise WireError("integrity is not a list of lines")
        try:
            calls = {k: CallEntry.from_dict(e, k) for k, e in data.get("calls", {}).items()}
            defined = tuple(data.get("defined", ()))
        except WireError:
            raise
        # A number too large for a float, values nested past Python's recursion limit:
        # forged results, refused like any other malformed ones.
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError,
                RecursionError) as exc:  # fmt: skip
            raise WireError(f"the results have the wrong structure: {exc}") from exc
        speed = data.get("speed")
        return cls(
            calls,
            defined,
            skipped,
            tuple(integrity),
            None if speed is None else Speed.from_dict(speed),
        )
