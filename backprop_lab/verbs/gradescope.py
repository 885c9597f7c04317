"""Gradescope: the autograder bundle an instructor uploads, and what runs inside it.

`autograde gradescope --seed-file SEED` (`bundle.build_bundles`) writes one
`autograder-NAME.zip` per course assignment, each what the "Configure Autograder" page of
one Gradescope assignment takes (a Gradescope assignment is one course assignment):
- `setup.sh` builds the image once: a venv with the CPU build of torch (PyPI's default is
  a multi-GB CUDA build, and Gradescope has no GPU) and the grader from the bundled wheel,
  it and every package it pulls in pinned to one version by the bundled `constraints.txt`;
- `run_autograder` runs for each submission;
- the grader, as a wheel built from the instructor's checkout (this exact version);
- `autograde-gradescope.json`: the seed, read from the instructor's file (the bundle's
  source folder is never shown to students, and the sandbox never mounts it), the
  assignment it grades, and limits that fit Gradescope's default container (768 MB,
  under one CPU).

Inside the container `python -m backprop_lab.verbs.gradescope` (`run_autograder`) grades what the
student uploaded to /autograder/submission and always leaves a valid
/autograder/results/results.json: the score, or zero points and what to do about it
("your submission has no notebook: ..."). The shell script writes one itself if Python
cannot even start. Grading is `batch.grade_one`, so the verdict is `autograde grade`'s.
Only notebooks of the bundle's assignment are graded (upload.py): another assignment's
notebook gets a sentence naming both, and no upload earns more than the assignment's
points.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..options import GradingError, Options
from ..report.records import Record, unscored

if TYPE_CHECKING:
    from .upload import Sorted

__all__ = ["CONFIG", "BundleConfig", "read_seed_file", "run_autograder"]

CONFIG = "autograde-gradescope.json"
DEFAULT_ROOT = Path("/autograder")
_MIN_NOTEBOOK_SECONDS = 60.0  # less than this left: do not start another notebook


@dataclass(frozen=True)
class BundleConfig:
    """What the bundle grades with. The limits fit Gradescope's default container,
    768 MB and under one CPU: measured on two cores, grader and kernel together peak at
    550-570 MB resident on the solutions, and the kernel needs between 400 and 512 MB of
    data for the backprop notebook; cells and calls get twice `autograde`'s time."""

    seed: int
    # The one course assignment this Gradescope assignment grades: a bundle that graded
    # whatever was uploaded gave a matmul notebook 10 points on a 15-point backprop
    # assignment, and both notebooks 25.
    assignment: str
    grader_version: str = __version__
    memory_mb: int = 512
    cell_timeout: float = 240.0
    call_timeout: float = 40.0
    # Gradescope stops an autograder after 10 minutes by default; leave time to start
    # and to write the results.
    time_budget: float = 540.0

    def options(self, seconds_left: float) -> Options:
        return Options(
            seed=self.seed,
            assignment=self.assignment,
            cell_timeout=self.cell_timeout,
            call_timeout=self.call_timeout,
            notebook_timeout=seconds_left,
            memory_mb=self.memory_mb,
            fork_kernels=False,  # one submission: a fork server would cost, not save
        )


def read_seed_file(path: Path) -> int:
    """The integer in the instructor's seed file; GradingError saying what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise GradingError(f"--seed-file {path}: {exc.strerror or exc}") from None
    try:
        return int(text)
    except ValueError:
        raise GradingError(
            f"--seed-file {path}: it should hold one integer (like 73512), not {text[:40]!r}"
        ) from None


def _read_config(path: Path) -> BundleConfig:
    data = json.loads(path.read_text(encoding="utf-8"))
    known = {f.name for f in fields(BundleConfig)}
    return BundleConfig(**{k: v for k, v in data.items() if k in known})


# --- in the container ---------------------------------------------------------------------


def _unscored(message: str, status: str, config: BundleConfig | None) -> Record:
    where = {} if config is None else {"assignment": config.assignment, "seed": config.seed}
    return unscored(message, status=status, grader_version=__version__, **where)


def _uploaded(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _best(records: list[tuple[str, Record]]) -> tuple[str, Record]:
    def rank(item: tuple[str, Record]) -> tuple[bool, float]:
        return item[1].status in ("graded", "review"), item[1].score

    return max(records, key=rank)


def _for_student(record: Record, rel: str, folder: Path) -> dict[str, Any]:
    """The record as a student may see it: paths relative to the upload and no batch keys
    (its text names the seed only as the instructor's: options.seed_words)."""
    text = json.dumps(record.to_dict()).replace(json.dumps(str(folder) + os.sep)[1:-1], "")
    data = json.loads(text)
    meta = data["extra_data"]
    for key in ("signature", "key", "student"):
        meta.pop(key, None)
    meta["notebook"] = rel
    return data


def _combine(graded: list[tuple[str, Record]], folder: Path, upload: Sorted) -> dict[str, Any]:
    """One results.json from the records of the assignment's notebooks: the best one
    counts (a student who uploads a copy as well loses nothing), the others and any
    notebook of another assignment are named. One assignment's record: never more than
    its points."""
    from .upload import also_uploaded

    rel, record = _best(graded)
    lead = [f"Graded {rel}."]
    others = [f"{r} ({x.score} points)" for r, x in graded if r != rel]
    if others:
        lead.append(f"Also uploaded, not counted (the best notebook counts): {', '.join(others)}.")
    elsewhere = also_uploaded(upload)
    if elsewhere:
        lead.append(elsewhere)
    view = _for_student(record, rel, folder)
    view["output"] = f"{' '.join(lead)}\n{view['output']}"
    return view


def grade_upload(folder: Path, config: BundleConfig) -> dict[str, Any]:
    """The results.json for what a student uploaded to `folder`; never raises for
    anything about the upload."""
    from ..gradebook.batch import grade_one
    from ..gradebook.submissions import Submission, notebooks_in
    from .upload import full_points, sort_upload, wrong_assignment

    uploaded = _uploaded(folder)
    if not uploaded:
        return _unscored(
            "Your submission is empty: nothing was uploaded. Upload your notebook, the "
            ".ipynb file (in Jupyter: File > Download).",
            "ungradeable",
            config,
        ).to_dict()
    notebooks = notebooks_in(folder)
    if not notebooks:
        names = [p.relative_to(folder).as_posix() for p in uploaded]
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        return _unscored(
            f"Your submission has no Jupyter notebook (it holds {shown}). Upload the .ipynb "
            "file itself (in Jupyter: File > Download), not a PDF, an export or a script.",
            "ungradeable",
            config,
        ).to_dict()
    upload = sort_upload(notebooks, folder, config.assignment)
    if not upload.graded:
        record = _unscored(wrong_assignment(upload), "ungradeable", config)
        return replace(record, max_score=full_points(config.assignment)).to_dict()
    deadline = time.monotonic() + config.time_budget
    graded: list[tuple[str, Record]] = []
    with tempfile.TemporaryDirectory(prefix="autograde-gradescope-") as tmp:
        for i, notebook in enumerate(upload.graded):
            rel = notebook.relative_to(folder).as_posix()
            left = deadline - time.monotonic()
            if left < _MIN_NOTEBOOK_SECONDS:
                record = _unscored(
                    f"{rel} was not graded: the autograder's time ran out on the notebooks "
                    "before it. Upload only the notebook to be graded.",
                    "ungradeable",
                    config,
                )
            else:
                sub = Submission("upload", notebook, config.assignment, key=f"notebook-{i}")
                record, _ = grade_one(sub, Path(tmp), config.options(left), feedback=False)
            graded.append((rel, record))
    return _combine(graded, folder, upload)


def run_autograder(root: Path = DEFAULT_ROOT) -> dict[str, Any]:
    """Grade `root`/submission with the bundle in `root`/source and write
    `root`/results/results.json, whatever happens; return what was written."""
    config = None
    try:
        config = _read_config(root / "source" / CONFIG)
        record = grade_upload(root / "submission", config)
    except Exception as exc:  # the grader's fault, never the student's: say so
        record = _unscored(
            f"The autograder failed on this submission ({type(exc).__name__}: {exc}), so it "
            "was not graded. This is not your doing: tell your instructor, who can regrade it.",
            "error",
            config,
        ).to_dict()
    _state_isolation(record)
    results = root / "results" / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    partial = results.with_name("results.json.partial")
    partial.write_text(json.dumps(record, indent=2), encoding="utf-8")
    os.replace(partial, results)
    return record


def _state_isolation(record: dict[str, Any]) -> None:
    """The policy Gradescope grades under: grade, and say on every result how isolated the
    student's code was (Gradescope runs its container as root, often where user namespaces
    are refused: the sandbox is then Landlock, seccomp and the keeper, or less)."""
    from ..run import sandbox

    warning = sandbox.describe()
    extra = record.setdefault("extra_data", {})
    extra["isolation"] = warning or "isolated: namespaces, Landlock, seccomp, limits"
    if warning:
        record["output"] = f"{record.get('output', '')}\n\nFor the course staff: {warning}."


def _describe() -> str:
    from ..run import sandbox

    isolation = sandbox.describe() or "student code runs in the sandbox (namespaces, Landlock)"
    return f"autograde {__version__}, Python {sys.version.split()[0]}: {isolation}"


def _grades(root: Path) -> str:
    """Which assignment the bundle in `root`/source grades: setup.sh prints it, so the
    build log on Gradescope says whether this is the right Gradescope assignment for it
    (a broken bundle fails the build here, not on the first student's upload)."""
    from .upload import full_points

    a = _read_config(root / "source" / CONFIG).assignment
    return f"This autograder grades the {a} assignment, out of {full_points(a)} points."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backprop_lab.verbs.gradescope",
                                     description="Grade a Gradescope submission.")  # fmt: skip
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--describe", action="store_true",
                        help="print the grader's version and isolation, then exit")  # fmt: skip
    args = parser.parse_args(argv)
    print(_describe())
    if args.describe:
        print(_grades(args.root))
        return 0
    record = run_autograder(args.root)
    print(f"score {record['score']}: {record['output'].splitlines()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
