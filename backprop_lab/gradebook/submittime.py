"""When a submission was handed in, read from the best evidence its folder holds:

1. nbgrader's `timestamp.txt` (what `nbgrader submit` writes and `nbgrader collect`
   copies into `submitted/<student>/<assignment>/`): by default like
   `2026-12-10 22:59:01.123456 UTC` (the exchange's `timestamp_format`,
   `%Y-%m-%d %H:%M:%S.%f %Z`), the zone a name, an offset or absent (then UTC, as
   nbgrader's own `parse_utc` takes it); an ISO 8601 time is read too;
2. the last commit of a git clone (a GitHub Classroom repository): its committer date;
3. the notebook file's modification time (an LMS export or a copy keeps it, or not).

The source is recorded with the time, so a person can judge it: a commit date is the
student's machine's clock, a file's time is whatever the last copy left.

git runs on the student's repository with the settings that could run a program turned
off (hooks, fsmonitor, signature checks, a pager, fetching missing objects), with no
prompt and a time limit; a repository git refuses (another user's, broken) falls back to
the file's time.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .submissions import Submission

__all__ = ["NBGRADER", "HandedIn", "handed_in", "parse_nbgrader_timestamp"]

NBGRADER, GIT, FILE_TIME = "nbgrader timestamp.txt", "git commit", "file modification time"
_UTC_NAMES = {"UTC", "GMT", "Z"}


@dataclass(frozen=True)
class HandedIn:
    at: datetime  # with its time zone
    source: str  # NBGRADER, GIT or FILE_TIME


def _zone(name: str):
    if name.upper() in _UTC_NAMES:
        return UTC
    sign = {"+": 1, "-": -1}.get(name[:1])
    digits = name[1:].replace(":", "")
    if sign and digits.isdigit() and len(digits) == 4:
        return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def parse_nbgrader_timestamp(text: str) -> datetime:
    """The time in an nbgrader timestamp.txt (see the module's docstring), in its zone."""
    text = text.strip()
    try:
        when = datetime.fromisoformat(text)
        zone = None
    except ValueError:
        parts = text.split(" ")
        if len(parts) != 3:
            raise ValueError(f"not an nbgrader timestamp: {text[:60]!r}") from None
        when, zone = datetime.fromisoformat(" ".join(parts[:2])), _zone(parts[2])
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone or UTC)
    return when


def _timestamp_file(folder: Path) -> datetime | None:
    path = folder / "timestamp.txt"
    if not path.is_file() or path.is_symlink():
        return None
    try:
        return parse_nbgrader_timestamp(path.read_text(encoding="utf-8", errors="replace")[:200])
    except ValueError:
        return None


_GIT_SAFE = (
    "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
    "-c", "log.showSignature=false", "-c", "protocol.allow=never", "--no-pager",
)  # fmt: skip


def _commit_time(folder: Path) -> datetime | None:
    if not (folder / ".git").exists():
        return None
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_NO_LAZY_FETCH": "1",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_OPTIONAL_LOCKS": "0"}  # fmt: skip
    try:
        done = subprocess.run(
            ["git", *_GIT_SAFE, "-C", str(folder), "log", "-1", "--format=%cI"],
            capture_output=True, text=True, timeout=10, env=env, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        return datetime.fromisoformat(done.stdout.strip()) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None


def handed_in(sub: Submission) -> HandedIn | None:
    """When `sub` was handed in, and how that is known; None with nothing to go by."""
    if sub.folder is not None and not sub.folder.is_symlink():
        when = _timestamp_file(sub.folder)
        if when is not None:
            return HandedIn(when, NBGRADER)
        when = _commit_time(sub.folder)
        if when is not None:
            return HandedIn(when, GIT)
    if sub.notebook is not None:
        try:
            stamp = sub.notebook.lstat().st_mtime
        except OSError:
            return None
        return HandedIn(datetime.fromtimestamp(stamp, UTC), FILE_TIME)
    return None
