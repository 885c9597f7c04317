"""Class-sized grading throughput: `nbgrader autograde` against `autograde grade`, on the
same submissions, and whether the two give the same points.

    python benchmarks/grade_throughput.py [--assignment backprop|matmul] [--n 40]
                                          [--workers W] [--repeat 1] [--fresh-kernels]
                                          [--keep]

Builds a temporary nbgrader course (`nbgrader_config.py` and `solutions/` copied from this
repository, `nbgrader generate_assignment NAME`) with N submissions of that notebook
(backprop by default) in `submitted/<student>/NAME/`: about a third the solution, a third
the solution with one known bug (cycling through that assignment's `BUGS`), a third the
untouched stub. Every notebook gets its own `# submitted by <student>` line, so no two are
byte-identical (`autograde grade` grades identical notebooks only once, and this must
not profit from that).

Then, each in a fresh subprocess and timed by the wall clock (`time.perf_counter`), it
grades the whole class with `nbgrader autograde backprop` (one notebook after the other)
then `nbgrader generate_feedback backprop` (a feedback page per student), and with
`autograde grade submitted/` (its default number of workers, or `--workers W`), which
writes scores and a feedback report per student, and `autograde grade --no-feedback`
(scores only), each with both engines: the default in-process one (a sandboxed child
forked per notebook) and `--engine kernel` (a Jupyter kernel per notebook, forked from
the fork server); with `--fresh-kernels` also `--engine kernel --no-fork-server` (every
kernel started from scratch, to see what the fork server brings). Every autograde run
must give the same points as the first (exit 1 otherwise). With `--repeat R` the
runs alternate R times from a clean state and the medians are reported.
It prints each command's seconds, seconds per submission and submissions per minute,
the throughput ratios like for like (scores: nbgrader autograde against autograde
--no-feedback; scores and feedback: nbgrader autograde + generate_feedback against
autograde grade), then compares points: nbgrader's per test cell (`<grade_id>_tests`) with
autograde's per exercise (`grades.csv`, one column per exercise `grade_id`).

It asserts nothing about time. Exit status: 0 when the run completed, 1 when the tools
disagree on a correct or an untouched notebook (they must agree there; on buggy ones
nbgrader's all-or-nothing test cells and autograde's per-check points can differ, and
every difference is listed), 2 when a grading command failed.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook
from rich.console import Console
from rich.table import Table

import backprop_lab
from backprop_lab.course import exercises_for

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ("backprop", "matmul")


def solution(assignment: str) -> Path:
    return ROOT / "solutions" / assignment / f"{assignment}.ipynb"


def stub(assignment: str) -> Path:
    return ROOT / "assignments" / assignment / f"{assignment}.ipynb"


SEED = 2019
CORRECT, STUB_KIND = "correct", "stub"


@dataclass(frozen=True)
class Bug:
    """The solution with `correct` replaced by `wrong` in the cell with this grade_id
    (the same mistakes as in tests/test_grader_mistakes.py)."""

    name: str
    grade_id: str
    correct: str
    wrong: str

    @property
    def kind(self) -> str:
        return f"bug: {self.name} ({self.grade_id})"


BACKPROP_BUGS = (
    Bug("transposed", "lin_grad", "w.g = inp.t() @ out.g", "w.g = out.g.t() @ inp"),
    Bug("mse-missing-2", "mse_grad", "inp.g = 2.0 * (inp[:, 0]", "inp.g = (inp[:, 0]"),
    Bug(
        "relu-mask-from-out-g",
        "relu_grad",
        "inp.g = (inp > 0).to(out.g.dtype)",
        "inp.g = (out.g > 0).to(out.g.dtype)",
    ),
    Bug("matmul-no-transpose", "lin_grad", "inp.g = out.g @ w.t()", "inp.g = out.g @ w"),
    Bug(
        "backward-order",
        "forward_and_backward",
        "relu_grad(l1, l2)\n    lin_grad(inp, l1, w1, b1)",
        "lin_grad(inp, l1, w1, b1)\n    relu_grad(l1, l2)",
    ),
    Bug(
        "mse-class-broadcast",
        "layer_classes",
        "self.inp[:, 0] - self.targ",
        "self.inp - self.targ",
    ),
)
MATMUL_BUGS = (
    Bug("matmul-row-not-column", "matmul_broadcast", "a[i, :, None]", "a[i, None]"),
    Bug("matmul-float32", "matmul_loops", "dtype=a.dtype, ", ""),
    Bug("elementwise-column", "matmul_elementwise", "b[:, j]", "b[j, :]"),
)
BUGS = {"backprop": BACKPROP_BUGS, "matmul": MATMUL_BUGS}


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def cell_with(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    return cell


def with_bug(bug: Bug, assignment: str) -> nbformat.NotebookNode:
    nb = read(solution(assignment))
    cell = cell_with(nb, bug.grade_id)
    if cell.source.count(bug.correct) != 1:
        raise SystemExit(f"bug {bug.name!r} no longer applies to the solution: update BUGS")
    cell.source = cell.source.replace(bug.correct, bug.wrong)
    return nb


def signed(nb: nbformat.NotebookNode, student: str) -> nbformat.NotebookNode:
    """A copy with `# submitted by <student>` at the end of the first solution cell."""
    nb = nbformat.from_dict(nb)
    (cell, *_) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    cell.source = cell.source.rstrip("\n") + f"\n# submitted by {student}"
    return nb


def build_class(course: Path, n: int, assignment: str) -> dict[str, str]:
    """Write n submissions under course/submitted/; return student -> kind."""
    bugs = BUGS[assignment]
    templates = {CORRECT: read(solution(assignment)), STUB_KIND: read(stub(assignment))}
    templates |= {b.kind: with_bug(b, assignment) for b in bugs}  # every bug checked
    width = max(2, len(str(n - 1)))
    kinds: dict[str, str] = {}
    for i in range(n):
        student = f"student-{i:0{width}d}"
        third = i % 3
        kind = (CORRECT, bugs[(i // 3) % len(bugs)].kind, STUB_KIND)[third]
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True)
        nbformat.write(signed(templates[kind], student), folder / f"{assignment}.ipynb")
        kinds[student] = kind
    digests = {
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (course / "submitted").glob(f"*/{assignment}/*.ipynb")
    }
    if len(digests) != n:
        raise SystemExit(f"{n} submissions but only {len(digests)} distinct notebooks")
    return kinds


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-4000:]
        print(f"{' '.join(cmd)} exited with {done.returncode}:\n{tail}", file=sys.stderr)
        raise SystemExit(2)
    return seconds


def nbgrader_points(
    course: Path, students: list[str], assignment: str
) -> dict[str, dict[str, float | None]]:
    """student -> {grade_id -> nbgrader's points for the test cell `<grade_id>_tests`}."""
    cells = [e.cell for e in exercises_for(assignment)]
    out: dict[str, dict[str, float | None]] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in students:
            try:
                (nb,) = gb.find_submission(assignment, student).notebooks
            except Exception:  # MissingEntry: never graded
                out[student] = dict.fromkeys(cells)
                continue
            scores = {g.cell.name: g.score for g in nb.grades}
            out[student] = {c: scores.get(f"{c}_tests") for c in cells}
    return out


def autograde_points(
    graded: Path, students: list[str], assignment: str
) -> dict[str, dict[str, float | None]]:
    """student -> {grade_id -> autograde's points for that exercise}, from grades.csv."""
    cells = [e.cell for e in exercises_for(assignment)]
    with (graded / "grades.csv").open(newline="", encoding="utf-8") as f:
        rows = {r["student"]: r for r in csv.DictReader(f) if r["assignment"] == assignment}
    out: dict[str, dict[str, float | None]] = {}
    for student in students:
        row = rows.get(student, {})
        if row and row["status"] != "graded":
            print(f"autograde: {student} {row['status']}: {row['message']}", file=sys.stderr)
        out[student] = {c: float(row[c]) if row.get(c) else None for c in cells}
    return out


def fmt(points: float | None) -> str:
    return "-" if points is None else f"{points:g}"


def vectors(
    points: dict[str, dict[str, float | None]], students: list[str], cells: list[str]
) -> str:
    """The distinct per-exercise point lists of these students, e.g. `2 2 3 3 3 2`."""
    found = {" ".join(fmt(points[s][c]) for c in cells) for s in students}
    return " | ".join(sorted(found))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="submissions (default: 40)")
    parser.add_argument(
        "--assignment",
        choices=ASSIGNMENTS,
        default="backprop",
        help="the notebook every student submits (default: backprop)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="autograde's --workers (default: its own)"
    )
    parser.add_argument(
        "--fresh-kernels",
        action="store_true",
        help="also time `autograde grade --engine kernel --no-fork-server`",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="alternating runs of each tool (default: 1)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary course")
    args = parser.parse_args(argv)
    if args.n < 1 or (args.workers is not None and args.workers < 1) or args.repeat < 1:
        parser.error("--n, --workers and --repeat must be at least 1")

    assignment = args.assignment
    console = Console() if sys.stdout.isatty() else Console(width=120)  # wide when piped
    tmp = Path(tempfile.mkdtemp(prefix="grade-throughput-"))
    course, graded = tmp / "course", tmp / "graded"
    course.mkdir()
    shutil.copy2(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions", course / "solutions")
    generate = [sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force"]
    timed(generate, course)
    pristine = tmp / "gradebook.generated.db"
    shutil.copy2(course / "gradebook.db", pristine)
    kinds = build_class(course, args.n, assignment)
    students = sorted(kinds)

    nbgrader_cmd = [sys.executable, "-m", "nbgrader", "autograde", assignment]
    autograde_cmd = [
        sys.executable,
        "-m",
        "backprop_lab.verbs.cli",
        "grade",
        str(course / "submitted"),
    ]
    autograde_cmd += ["--out", str(graded), "--seed", str(SEED)]
    autograde_cmd += ["--quiet"] + (["--workers", str(args.workers)] if args.workers else [])
    feedback_cmd = [sys.executable, "-m", "nbgrader", "generate_feedback", assignment]
    variants = {  # autograde run -> its own output folder and extra flags
        "autograde grade": (graded, []),
        "autograde grade --no-feedback": (tmp / "graded-scores", ["--no-feedback"]),
        "autograde grade --engine kernel": (tmp / "graded-kernel", ["--engine", "kernel"]),
        "autograde grade --engine kernel --no-feedback": (
            tmp / "graded-kernel-scores", ["--engine", "kernel", "--no-feedback"]),
    }  # fmt: skip
    if args.fresh_kernels:
        variants["autograde grade --engine kernel --no-fork-server"] = (
            tmp / "graded-fresh", ["--engine", "kernel", "--no-fork-server"])  # fmt: skip
    runs: dict[str, list[float]] = {
        "nbgrader autograde": [],
        "nbgrader generate_feedback": [],
        **{name: [] for name in variants},
    }
    for r in range(args.repeat):
        # every run from the state generate_assignment left: nothing graded yet
        shutil.rmtree(course / "autograded", ignore_errors=True)
        shutil.rmtree(course / "feedback", ignore_errors=True)
        shutil.copy2(pristine, course / "gradebook.db")
        runs["nbgrader autograde"].append(timed(nbgrader_cmd, course))
        runs["nbgrader generate_feedback"].append(timed(feedback_cmd, course))
        for name, (out, flags) in variants.items():
            shutil.rmtree(out, ignore_errors=True)
            cmd = [*autograde_cmd, *flags]
            cmd[cmd.index(str(graded))] = str(out)
            runs[name].append(timed(cmd, tmp))
        console.print(
            f"run {r + 1}/{args.repeat}: "
            + ", ".join(f"{tool} {times[-1]:.1f} s" for tool, times in runs.items()),
            highlight=False,
        )

    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    workers = args.workers or (cores or 1) + 1  # autograde's default: CPUs plus one
    console.print(
        f"\ncores: {cores} (usable: {usable})   N: {args.n}   workers (autograde): "
        f"{workers}   repeats: {args.repeat}\n"
        f"python {sys.version.split()[0]}   torch {version('torch')}   nbgrader "
        f"{version('nbgrader')}   autograder {backprop_lab.__version__}",
        highlight=False,
    )
    medians = {tool: statistics.median(times) for tool, times in runs.items()}
    table = Table(title=f"Each command on its own (median of {args.repeat})")
    for col in ("command", "runs (s)", "total (s)", "s / submission", "submissions / min"):
        table.add_column(col, justify="left" if col == "command" else "right")
    for tool, seconds in medians.items():
        table.add_row(
            tool if tool.startswith("nbgrader") else f"{tool} (--workers {workers})",
            " ".join(f"{t:.1f}" for t in runs[tool]),
            f"{seconds:.1f}",
            f"{seconds / args.n:.2f}",
            f"{60 * args.n / seconds:.1f}",
        )
    console.print(table)
    # Like for like: scores alone, and scores with a feedback page per student.
    nb_scores = medians["nbgrader autograde"]
    nb_both = nb_scores + medians["nbgrader generate_feedback"]
    both = "nbgrader autograde + generate_feedback"
    pairs = [
        ("scores", "nbgrader autograde", nb_scores, "autograde grade --no-feedback"),
        ("scores + a feedback page per student", both, nb_both, "autograde grade"),
        ("scores, Jupyter kernels", "nbgrader autograde", nb_scores,
         "autograde grade --engine kernel --no-feedback"),
        ("scores + feedback, Jupyter kernels", both, nb_both, "autograde grade --engine kernel"),
    ]  # fmt: skip
    if args.fresh_kernels:
        pairs.append(
            ("scores + feedback, every kernel started from scratch", both, nb_both,
             "autograde grade --engine kernel --no-fork-server")
        )  # fmt: skip
    ratio = Table(title=f"Throughput, {args.n} submissions on {cores} cores")
    for col in ("job", "nbgrader (s)", "autograde (s)", "autograde's throughput"):
        ratio.add_column(col, justify="left" if col == "job" else "right")
    for (
        job,
        nb_label,
        nb_s,
        ag_label,
    ) in pairs:
        ratio.add_row(
            job, f"{nb_s:.1f}  ({nb_label})", f"{medians[ag_label]:.1f}  ({ag_label})",
            f"{nb_s / medians[ag_label]:.2f}x nbgrader's",
        )  # fmt: skip
    console.print(ratio)

    cells = [e.cell for e in exercises_for(assignment)]
    nbg = nbgrader_points(course, students, assignment)
    ag = autograde_points(graded, students, assignment)
    for name, (out, _) in variants.items():
        if autograde_points(out, students, assignment) != ag:
            console.print(f"[red]{name} gave other points than autograde grade[/red]")
            return 1
    differ = [(s, c) for s in students for c in cells if nbg[s][c] is None or nbg[s][c] != ag[s][c]]
    agreement = Table(
        title="Points per exercise: nbgrader (test cell <grade_id>_tests) vs autograde",
        caption="points in exercise order: " + ", ".join(cells),
    )
    for col in ("kind", "submissions", "nbgrader", "autograde", "same points"):
        agreement.add_column(col, justify="right" if col == "submissions" else "left")
    order = [CORRECT, *(b.kind for b in BUGS[assignment]), STUB_KIND]
    for kind in [k for k in order if k in kinds.values()]:
        of_kind = [s for s in students if kinds[s] == kind]
        bad = {s for s, _ in differ if kinds[s] == kind}
        agreement.add_row(
            kind,
            str(len(of_kind)),
            vectors(nbg, of_kind, cells),
            vectors(ag, of_kind, cells),
            "yes" if not bad else f"no ({len(bad)} of {len(of_kind)})",
        )
    console.print(agreement)
    if differ:
        listing = Table(title=f"Disagreements ({len(differ)})")
        for col in ("student", "kind", "exercise", "nbgrader", "autograde"):
            listing.add_column(col)
        for s, c in differ:
            listing.add_row(s, kinds[s], c, fmt(nbg[s][c]), fmt(ag[s][c]))
        console.print(listing)
    else:
        console.print("No disagreements.")

    if args.keep:
        console.print(f"course and outputs kept in {tmp}", highlight=False)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    must_agree = [(s, c) for s, c in differ if kinds[s] in (CORRECT, STUB_KIND)]
    if must_agree:
        console.print(
            f"[red]{len(must_agree)} disagreement(s) on correct or untouched notebooks[/red]"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
