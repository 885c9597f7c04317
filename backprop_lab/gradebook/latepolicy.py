"""When a submission is late and what that costs: a pure function of the hand-in time,
the student's due date and the course's policy.

The policy, as `--late-policy` writes it: comma-separated parts,
- `N%/day`: N percent of the score off for each day late, each started day counting
  (a minute late is a day late; three days late at 10%/day is 30% off);
- `cutoff=Nd` (or `Nh`): handed in more than N days (hours) after the due date, the
  score is 0; `cutoff=0` takes nothing late.
With a due date and no policy, lateness is reported and costs nothing. The penalty is a
share of the submission's own score (after any override of an exercise), never below 0,
rounded to 0.01 point; an override of the total is the last word and replaces it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..report.records import Lateness

__all__ = ["LatePolicy", "describe", "lateness", "parse_due", "parse_late_policy", "penalty"]

DAY = 86400.0


@dataclass(frozen=True)
class LatePolicy:
    due: datetime | None = None  # the course's due date; a roster's `due` overrides it
    percent_per_day: float = 0.0
    cutoff: timedelta | None = None  # after due + cutoff, the score is 0


def parse_due(text: str) -> datetime:
    """An ISO 8601 date-time with its offset (2026-12-10T23:59+01:00, or Z for UTC).
    ValueError without one: a due date read in the grading machine's own time zone would
    move with the machine (a CI runner is in UTC)."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 date-time; write it like 2026-12-10T23:59+01:00"
        ) from None
    if when.tzinfo is None:
        raise ValueError(
            f"{text!r} has no time zone: add its offset, like {text.strip()}+01:00 (or Z for UTC)"
        )
    return when


_PART = re.compile(
    r"(?P<pct>\d+(?:\.\d+)?)%/day|cutoff=(?P<n>\d+(?:\.\d+)?)(?P<unit>[dh])?", re.IGNORECASE
)


def parse_late_policy(text: str, due: datetime | None = None) -> LatePolicy:
    """`--late-policy`'s text (see the module's docstring) as a LatePolicy. ValueError
    with the part that cannot be read."""
    percent, cutoff = 0.0, None
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = _PART.fullmatch(part)
        if m is None:
            raise ValueError(
                f"late policy {part!r}: write N%/day and/or cutoff=Nd (or Nh), like "
                "10%/day,cutoff=3d"
            )
        if m["pct"] is not None:
            percent = float(m["pct"])
            if percent > 100:
                raise ValueError(f"late policy {part!r}: at most 100%/day")
        else:
            hours = float(m["n"]) * (1 if (m["unit"] or "d").lower() == "h" else 24)
            cutoff = timedelta(hours=hours)
    return LatePolicy(due, percent, cutoff)


def lateness(policy: LatePolicy, submitted: datetime, due: datetime) -> Lateness:
    """How `submitted` stands against `due` under `policy`."""
    seconds = max(0.0, (submitted - due).total_seconds())
    days = math.ceil(seconds / DAY)
    after_cutoff = policy.cutoff is not None and seconds > policy.cutoff.total_seconds()
    percent = 100.0 if after_cutoff else min(100.0, policy.percent_per_day * days)
    return Lateness(due.isoformat(), seconds, days, percent, after_cutoff)


def penalty(late: Lateness, score: float) -> float:
    """The points `late` costs a submission that scored `score`."""
    return round(score * late.percent / 100, 2)


def _duration(seconds: float) -> str:
    minutes = math.ceil(seconds / 60)
    d, rest = divmod(minutes, 24 * 60)
    h, m = divmod(rest, 60)
    parts = [f"{d} d" if d else "", f"{h} h" if h else "", f"{m} min" if m and not d else ""]
    return " ".join(p for p in parts if p) or "0 min"


def describe(late: Lateness) -> str:
    """One sentence for the student and the summary."""
    if late.seconds_late <= 0:
        return f"on time (due {late.due})"
    cost = (
        "past the cut-off: the score is 0"
        if late.after_cutoff
        else f"{late.days_late} started day(s): {late.percent:g}% off"
        if late.percent
        else "no penalty"
    )
    return f"{_duration(late.seconds_late)} late (due {late.due}); {cost}"
