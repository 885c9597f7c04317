"""The record of one graded submission: what every reader of a grade (the class's
gradebook and summary, Gradescope, CI, `check --json`) takes, in one dataclass.

On disk a record is Gradescope's results.json (one "test" per check) with the grader's
own facts under `extra_data`; `Record.to_dict` writes that shape and `Record.from_dict`
reads it back, so no reader parses an exercise out of a test's `number` or a mistake out
of its `tags`. The class's records are also signed (an HMAC with a key kept beside them,
which no kernel can see) and written atomically: see `save` and `reusable`. Each
submission's files are in a folder of its own under the output folder's `submissions/`
(`submission_dir`), apart from the class's files, so no student's name can be the name of
one of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..options import seed_words

if TYPE_CHECKING:
    from ..gradebook.submissions import Submission
    from ..judge.score import CheckResult
    from ..options import Options
    from ..pipeline import GradeResult

__all__ = [
    "FEEDBACK",
    "RESULTS",
    "Adjustment",
    "CheckRecord",
    "Lateness",
    "Record",
    "Submitted",
    "copy_feedback",
    "feedback_text",
    "read_records",
    "record_from",
    "reusable",
    "save",
    "submission_dir",
    "twin_record",
    "unscored",
    "unscored_results",
    "write_text_atomic",
]

RESULTS = "results.json"
FEEDBACK = ("feedback.html", "feedback.md", "feedback_files")  # per graded submission
KEY_FILE = ".autograde-key"
SUBMISSIONS = "submissions"  # under a class's output folder: one folder per submission
# A part of a submission's key (submissions.py makes them from names): characters every
# file system takes, not "." or "..", short enough for any file system's names.
_KEY_PART = re.compile(r"[A-Za-z0-9_.@+-]{1,200}")


@dataclass(frozen=True)
class CheckRecord:
    """One check of one submission: a Gradescope test."""

    exercise: str  # the exercise's cell (nbgrader grade_id); Gradescope's `number`
    title: str  # the exercise's title
    check: str  # the check's name
    score: int
    max_score: int
    passed: bool
    feedback: str  # what the student reads: the message and the hint; "" when passed
    mistake: str | None = None  # the catalogue id of the recognised mistake

    @property
    def name(self) -> str:
        """`exercise: check` as one name, the same in every report."""
        return f"{self.title}: {self.check}"

    @property
    def status(self) -> str:
        return "passed" if self.passed else "failed"

    def to_dict(self, visibility: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "name_format": "text",
            "number": self.exercise,
            "score": self.score,
            "max_score": self.max_score,
            "status": self.status,
            "output": self.feedback or "Passed.",
            "output_format": "text",
            "tags": [self.exercise] + ([self.mistake] if self.mistake else []),
            "visibility": visibility,
        }

    @classmethod
    def from_dict(cls, test: dict[str, Any]) -> CheckRecord:
        # exercise titles hold no ": " (backprop_lab/course), so the first one ends the title
        title, _, check = test["name"].partition(": ")
        passed = test["status"] == "passed"
        output = test.get("output", "")
        mistakes = [t for t in test.get("tags", []) if t != test["number"]]
        return cls(
            exercise=test["number"], title=title, check=check, score=test["score"],
            max_score=test["max_score"], passed=passed,
            feedback="" if passed and output == "Passed." else output,
            mistake=mistakes[0] if mistakes else None,
        )  # fmt: skip


@dataclass(frozen=True)
class Submitted:
    """Whose record it is, in a class graded by `autograde grade`."""

    student: str | None
    key: str | None  # where its results go under the output folder
    notebook: str | None  # the file graded; None when the student's folder held none


@dataclass(frozen=True)
class Adjustment:
    """A change made to the autograded score after grading, by the course's own files
    (gradebook.py applies them): a person's override of an exercise or of the total, or
    the late policy's penalty. Kept beside the autograded checks, never in place of them,
    so a re-run with other files starts again from what the grader found."""

    kind: str  # "override" or "late"
    exercise: str  # an exercise's cell (nbgrader grade_id), or "total"
    before: float  # its points before the change
    after: float  # and after
    reason: str  # the override's reason as written, or the late policy's sentence


@dataclass(frozen=True)
class Lateness:
    """How a submission stood against its due date (latepolicy.py decides it)."""

    due: str  # the student's due date (ISO 8601): the course's, or their extension's
    seconds_late: float  # 0 when on time
    days_late: int  # each started day counts
    percent: float  # the penalty, in percent of the score
    after_cutoff: bool = False  # past the policy's cut-off: the score is 0


# extra_data's keys in the order they are written; a class's record writes every one up
# to "message" (null where unknown), any other record only those it knows
_META = ("assignment", "max_score", "notebook_sha256", "grader_version", "seed", "device",
         "student", "key", "notebook", "status", "message")  # fmt: skip
_LATER = ("feedback", "feedback_error", "timings", "signature", "identical_to",
          "submitted_at", "time_source", "autograded_score", "adjustments", "late")  # fmt: skip
# a record with no score has always named the reason first when alone, and the
# notebook's digest after the reason in a class
_UNSCORED = (*(k for k in _META if k != "notebook_sha256"), "notebook_sha256")
_LONE_UNSCORED: tuple[str, ...] = ("status", "grader_version", "assignment", "seed")
_LONE_UNSCORED += tuple(k for k in _META if k not in _LONE_UNSCORED)


@dataclass(frozen=True)
class Record:
    """Everything known about one submission's grading. `status` is one of
    gradebook.STATUSES for a class's record, None for a lone `check`."""

    score: float  # the grade: the checks' points, then any `adjustments`
    output: str  # the text over the checks (or the reason there are none)
    checks: tuple[CheckRecord, ...] = ()
    execution_time: float = 0
    visibility: str = "visible"
    assignment: str | None = None
    max_score: int | None = None
    notebook_sha256: str | None = None
    grader_version: str | None = None
    seed: int | None = None
    device: str | None = None
    submitted: Submitted | None = None
    status: str | None = None
    message: str | None = None  # the notes, or why there is no score
    feedback: str | None = None  # the report's file name, beside results.json
    feedback_error: str | None = None
    timings: dict[str, float] | None = None  # seconds, by part of the grading
    signature: str | None = None
    identical_to: str | None = None  # the student whose identical notebook was graded
    # when it was handed in (ISO 8601) and where that was read (submittime.py)
    submitted_at: str | None = None
    time_source: str | None = None
    # set by the course's files (gradebook.adjusted): the score before them, and why it
    # changed; None and () when nothing changed it
    autograded_score: float | None = None
    adjustments: tuple[Adjustment, ...] = ()
    late: Lateness | None = None

    @property
    def student(self) -> str:
        return (self.submitted and self.submitted.student) or ""

    @property
    def key(self) -> str:
        return (self.submitted and self.submitted.key) or ""

    @property
    def notebook(self) -> str:
        return (self.submitted and self.submitted.notebook) or ""

    def per_exercise(self) -> dict[str, float]:
        """exercise cell -> points scored: the checks' points, or an override's."""
        out: dict[str, float] = {}
        for c in self.checks:
            out[c.exercise] = out.get(c.exercise, 0) + int(c.score)
        for a in self.adjustments:
            if a.kind == "override" and a.exercise != "total":
                out[a.exercise] = a.after
        return out

    def autograded(self) -> Record:
        """This record as the grader left it, before the course's files changed it."""
        if self.autograded_score is None and not self.adjustments and self.late is None:
            return self
        score = self.score if self.autograded_score is None else self.autograded_score
        return replace(self, score=score, autograded_score=None, adjustments=(), late=None)

    def to_dict(self) -> dict[str, Any]:
        """Gradescope's results.json, with the grader's facts in `extra_data`."""
        s = self.submitted
        who = {"student": s and s.student, "key": s and s.key, "notebook": s and s.notebook}
        values = {k: who[k] if k in who else getattr(self, k) for k in (*_META, *_LATER)}
        values["adjustments"] = [asdict(a) for a in self.adjustments] or None
        values["late"] = self.late and asdict(self.late)
        order: tuple[str, ...] = _META
        if self.status in ("ungradeable", "error"):
            order = _UNSCORED if s is not None else _LONE_UNSCORED
        meta = {k: values[k] for k in order if s is not None or values[k] is not None}
        meta.update({k: values[k] for k in _LATER if values[k] is not None})
        return {
            "score": self.score,
            "execution_time": self.execution_time,
            "output": self.output,
            "output_format": "text",
            "visibility": self.visibility,
            "stdout_visibility": "hidden",
            "tests": [c.to_dict(self.visibility) for c in self.checks],
            "extra_data": meta,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        meta = dict(data.get("extra_data") or {})
        who = {k: meta.pop(k) for k in ("student", "key", "notebook") if k in meta}
        known = set(_META) | set(_LATER)
        meta["adjustments"] = tuple(Adjustment(**a) for a in meta.get("adjustments") or ())
        meta["late"] = Lateness(**meta["late"]) if meta.get("late") else None
        return cls(
            score=data.get("score", 0),
            output=data.get("output", ""),
            checks=tuple(CheckRecord.from_dict(t) for t in data.get("tests", [])),
            execution_time=data.get("execution_time", 0),
            visibility=data.get("visibility", "visible"),
            submitted=Submitted(who.get("student"), who.get("key"), who.get("notebook"))
            if who
            else None,
            **{k: v for k, v in meta.items() if k in known},
        )


def as_record(record: Record | dict[str, Any]) -> Record:
    """A record, or its JSON as read from a results.json."""
    return record if isinstance(record, Record) else Record.from_dict(record)


def feedback_text(c: CheckResult) -> str:
    """What a student reads for a check: the message and the hint; "" when passed."""
    if c.passed:
        return ""
    return c.message + (f"\nHint: {c.hint}" if c.hint and c.hint != c.message else "")


def record_from(result: GradeResult, *, visibility: str = "visible") -> Record:
    """The record of a grading: one check record per check, points from the table."""
    score = result.score
    checks = tuple(
        CheckRecord(
            c.exercise,
            c.exercise_title,
            c.name,
            c.score,
            c.max_score,
            c.passed,
            feedback_text(c),
            c.mistake,
        )
        for c in score.checks
    )
    notes = "\n".join(score.notes)
    return Record(
        score=score.total,
        output=(
            f"{score.total}/{score.max_total} on {result.assignment}, graded with "
            f"{seed_words(result.seed)} on {result.device}." + (f"\n{notes}" if notes else "")
        ),
        checks=checks,
        execution_time=round(result.seconds, 3),
        visibility=visibility,
        assignment=result.assignment,
        max_score=score.max_total,
        notebook_sha256=result.digest,
        grader_version=result.grader_version,
        seed=result.seed,
        device=result.device,
    )


def unscored(message: str, /, **facts: Any) -> Record:
    """The record of a submission that got no score: zero points and the reason, shaped
    like a graded one, so every reader handles it."""
    return Record(score=0, output=message, **facts)


def unscored_results(message: str, extra_data: dict[str, Any]) -> dict[str, Any]:
    """`unscored`, as results.json, from `extra_data`'s keys."""
    return Record.from_dict({"score": 0, "output": message, "extra_data": extra_data}).to_dict()


# --- a class's records on disk ------------------------------------------------------------


def record_key(out: Path) -> bytes:
    """The secret `out`'s records are signed with, made on first use (readable by this
    user only; the kernels, in their sandboxes, never see the output folder)."""
    path = out / KEY_FILE
    if not path.exists():
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".{KEY_FILE}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # the first process to get here sets the key
        tmp.unlink()
    return path.read_bytes()


def _signature(data: dict[str, Any], key: bytes) -> str:
    """The HMAC of a record's JSON without its signature (key order does not matter)."""
    meta = {k: v for k, v in data.get("extra_data", {}).items() if k != "signature"}
    body = json.dumps({**data, "extra_data": meta}, sort_keys=True).encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def submission_dir(out: Path, key: str) -> Path:
    """The folder of submission `key` (`student/assignment`) under the class's output
    folder `out`: its results.json and feedback report. ValueError for a key that is not
    a safe relative path: a key comes from a name a student chose, or from a record."""
    parts = key.split("/")
    if not all(_KEY_PART.fullmatch(p) and p not in (".", "..") for p in parts):
        raise ValueError(f"{key!r} is not a submission's key (safe folder names, '/' between)")
    return out / SUBMISSIONS / key


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # readers see the old file or the new one, never half of one


def save(out: Path, key: str, record: Record) -> Record:
    """Sign `record` with `out`'s key, write it as its submission's results.json (see
    `submission_dir`), return it signed."""
    folder = submission_dir(out, key)
    signed = replace(record, signature=_signature(record.to_dict(), record_key(out)))
    write_text_atomic(folder / RESULTS, json.dumps(signed.to_dict(), indent=2))
    return signed


def reusable(out: Path, key: str, digest: str, options: Options) -> Record | None:
    """The earlier record of submission `key` if this grader wrote it (its signature) and
    it graded these exact bytes the same way."""
    try:
        data = json.loads((submission_dir(out, key) / RESULTS).read_text(encoding="utf-8"))
        meta = data["extra_data"]
        signed = hmac.compare_digest(
            str(meta.get("signature", "")), _signature(data, record_key(out))
        )
        record = Record.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    same = (
        signed
        and record.notebook_sha256 == digest
        and record.grader_version == __version__
        and record.seed == options.seed
        and record.device == options.device
        # grader errors are worth another try; a student's outcome is deterministic
        and record.status in ("graded", "ungradeable")
    )
    return record if same else None


def read_records(out: Path) -> tuple[Record, ...]:
    """Every record under the class's output folder `out`, by key. ValueError when there
    is none (not a folder `autograde grade` or `merge` wrote)."""
    found = sorted((Path(out) / SUBMISSIONS).glob(f"*/*/{RESULTS}"))
    if not found:
        raise ValueError(f"{out}: no {SUBMISSIONS}/*/*/{RESULTS}: not a graded class's folder")
    return tuple(Record.from_dict(json.loads(p.read_text(encoding="utf-8"))) for p in found)


def copy_feedback(src: Path, dest: Path) -> None:
    """The feedback report beside `src`'s results.json, beside `dest`'s too."""
    for name in FEEDBACK:
        if (src / name).is_dir():
            shutil.copytree(src / name, dest / name, dirs_exist_ok=True)
        elif (src / name).exists():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, dest / name)


def twin_record(record: Record, first: Submission, twin: Submission, out: Path) -> Record:
    """`first`'s record, saved for `twin` whose notebook has the same bytes."""
    text = json.dumps(record.to_dict())
    if first.notebook is not None and twin.notebook is not None:
        # messages name the file they are about ("... is not valid notebook JSON")
        text = text.replace(
            json.dumps(str(first.notebook))[1:-1], json.dumps(str(twin.notebook))[1:-1]
        )
    copy = replace(
        Record.from_dict(json.loads(text)),
        submitted=Submitted(twin.student, twin.key, str(twin.notebook)),
        identical_to=first.student,
    )
    copy_feedback(submission_dir(out, first.key), submission_dir(out, twin.key))
    return save(out, twin.key, copy)
