"""What the mistake catalogue reads (an `Observation`: one failed value of one call, with
everything needed to recognise why) and what an entry of it is (a `Mistake`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from ..course import Expected, Maths, Protocol, get
from .compare import Verdict, compare
from .readback import Value

__all__ = ["Mistake", "Observation", "observe"]


@dataclass(frozen=True)
class Observation:
    """One failed value of one call, with everything needed to recognise why."""

    protocol: Protocol  # a name is looked up
    target: str
    value: str  # the value that failed, e.g. "w.g"
    verdict: Verdict | None  # None when the call raised
    error: dict[str, Any] | None  # the kernel's record of the exception, if any
    got: dict[str, Value]  # every value the call produced
    want: dict[str, Expected]  # the reference for every compared value of the call
    inputs: dict[str, Tensor]  # the call's inputs, float64 (integer ones as they are)
    facts: dict[str, Any] = field(default_factory=dict)  # what the kernel noticed

    def __post_init__(self) -> None:
        object.__setattr__(self, "protocol", get(self.protocol))

    @property
    def maths(self) -> Maths:
        return self.protocol.maths

    def tensor(self, name: str | None = None) -> Tensor | None:
        v = self.got.get(name or self.value)
        if v is None or v.kind != "tensor" or v.tensor is None:
            return None
        return v.tensor.double()

    @property
    def expected(self) -> Tensor | None:
        exp = self.want.get(self.value)
        return exp.value if exp is not None else None

    @property
    def err(self) -> dict[str, Any]:
        """The error's record, empty when the call returned: for hints, which run only
        once their mistake was detected from it."""
        return self.error or {}

    def error_matches(self, pattern: str) -> bool:
        if not self.error:
            return False
        text = f"{self.error.get('type', '')}: {self.error.get('message', '')}"
        return re.search(pattern, text) is not None

    def error_line_matches(self, pattern: str) -> bool:
        return bool(self.error and re.search(pattern, self.error.get("line") or ""))


@dataclass(frozen=True)
class Mistake:
    """`no_answer`: the call gave nothing to compare (not written, not defined, never
    finished), so the hint is the whole message. `own`: the check's own fault even when a
    function it builds on failed too. `locates`: the hint says where in the network the
    bug is, which stays true when the bug is in a function the network calls."""

    id: str
    detect: Callable[[Observation], bool]
    hint: Callable[[Observation], str] | str
    no_answer: bool = False
    own: bool = False
    locates: bool = False

    def text(self, obs: Observation) -> str:
        return self.hint(obs) if callable(self.hint) else self.hint


def observe(
    protocol: Protocol | str,
    target: str,
    value: str,
    *,
    inputs: dict[str, Tensor],
    want: dict[str, Expected],
    got: dict[str, Value],
    error: dict[str, Any] | None = None,
    facts: dict[str, Any] | None = None,
    dtype: str,
    device: str,
) -> Observation:
    """One value of one call as the catalogue reads it: `got` compared with `want`
    (its verdict), or, where the call raised, the `error` and no verdict. The grader's
    scoring and the catalogue's unit tests both build their observations here."""
    verdict = None
    if error is None:
        verdict = compare(value, got.get(value, Value("missing")), want[value],
                          dtype=dtype, device=device)  # fmt: skip
    # integer inputs (labels, indices) stay integers: an index is not a number to round
    inputs64 = {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}
    return Observation(get(protocol), target, value, verdict, error, got, want, inputs64,
                       facts or {})  # fmt: skip
