"""`autograde release --out DIR`: the course as students get it, to push as a GitHub
Classroom template repository (or to hand out any other way).

The course repository is the instructor's and stays private: `solutions/` holds every
answer and hidden test, `backprop_lab/reference/` the lesson's hand-written answers. The
release holds only what students may see: the notebooks nbgrader generates from the
solutions (checked here for left-over solution lines), a README for students, a workflow that runs
`autograde check` on their notebooks when they push (feedback, never a grade: a student's
repository can hold no secret and decides nothing), and the grader as a wheel built
without `backprop_lab.reference` (its expected values come from autograd, see course/oracle.py).
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..course import exercises_for
from ..options import GradingError
from .assignments import assignment_names, find_leaks, generated_differences, regenerate
from .bundle import PACKAGE, build_wheel, is_answers, pinned_torch, python_floor

__all__ = ["Release", "build_release", "student_readme"]

_NAMESPACE_ACTION = ".github/actions/allow-user-namespaces/action.yml"


@dataclass(frozen=True)
class Release:
    out: Path
    files: tuple[str, ...]  # relative to `out`, '/'-separated
    stale: tuple[str, ...]  # how the committed assignments/ differ from what was released


_README = """\
# The notebooks of "deep learning from the foundations": matmul and backprop

Your repository for the course's exercises. Write your answers in the notebooks under
`assignments/`, check them with `autograde check`, and hand them in the way your course
says (with GitHub Classroom: commit and push).

## Set up once

With Python {python} or newer, from this folder, best in a virtual environment
(`python -m venv .venv && . .venv/bin/activate`):

```bash
# PyTorch first: the CPU build (PyPI's default is a multi-GB CUDA build). On a machine
# with a GPU, install the CUDA build of the same version instead (see pytorch.org).
python -m pip install --index-url {torch_index} "torch=={torch}"
# Then the course's grader and what the notebooks use (Jupyter included).
python -m pip install -c constraints.txt -r requirements.txt
```

## What to do

| notebook | you write | points |
|---|---|---|
{table}

1. Open a notebook with `jupyter lab`.
2. Replace each `raise NotImplementedError()` with your code, and run the cells in order.
   Each test cell passes silently and fails with a message that says what is wrong.
3. The tests you see are not all: grading adds hidden tests on other shapes (a batch of
   one, a single hidden unit, float64), so test your code on more than the example.
4. Check your work the way it will be graded, then hand it in.

## Check your work: `autograde check`

```bash
autograde check assignments/backprop/backprop.ipynb      # add --device cuda on a GPU
autograde check assignments/backprop/backprop.ipynb --report feedback.html
```

It runs your notebook in a fresh, sandboxed process, calls your functions on inputs it
makes itself, compares every return value and every `.g` with the right answer (from
PyTorch's autograd on the notebook's own forward functions), and prints one row per
check: its points and, for a failed check, what is wrong and a hint when it recognises
the mistake. `--report` also writes a page to read at leisure, with pictures of every
wrong gradient.

Exit code: 0 every check passed; 1 something failed (the table says what); 2 the
notebook could not be graded at all, with one line saying why.

**This is a self-check, not your grade.** Your instructor grades the notebooks you hand
in with the same checks on other inputs (another seed) and hidden tests you do not have,
so code that is right in general passes both, and code fitted to these inputs does not.

## Feedback when you push

`.github/workflows/check.yml` runs `autograde check` on every notebook under
`assignments/` when you push a change to one: the run's log shows each table, each failed
check is an annotation on the line of your code it is about, its artifact `feedback`
holds the reports, and the points reach your GitHub Classroom dashboard. A red run means
a check failed. It is feedback only: nothing in this repository (which is yours, and can
hold no secret) decides a grade; your instructor grades what you hand in.
"""

_REQUIREMENTS = """\
# The course's grader (`autograde`), without the lesson's answers, and what the notebooks
# use: PyTorch (install it first, see README.md), Jupyter, the bundled digits data set.
./grader/{wheel}
"""

_GITIGNORE = """\
__pycache__/
.ipynb_checkpoints/
.venv/
feedback/
feedback*.html
feedback*.md
"""

_WORKFLOW = """\
# Feedback on your notebooks when you push: `autograde check` on each of them, the same
# checks your instructor grades with on inputs of its own. The points it finds reach your
# GitHub Classroom dashboard, as feedback: this repository is yours (it can hold no secret:
# no grading seed, no hidden test), and the grade of record is your instructor's.
name: Autograding Tests

on:
  push:
    paths:
      - "assignments/**.ipynb"
      - ".github/workflows/check.yml"
  workflow_dispatch:

permissions:
  checks: write
  actions: read
  contents: read

concurrency:
  group: check-${{{{ github.ref }}}}
  cancel-in-progress: true

jobs:
  run-autograding-tests:
    # Classroom's reporter finds the points in the check run of this name
    name: Autograding Tests
    if: github.actor != 'github-classroom[bot]'
    runs-on: ubuntu-latest
    timeout-minutes: 30
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
        with:
          persist-credentials: false
      - uses: actions/setup-python@0b93645e9fea7318ecaed2b359559ac225c90a2b # v5.3.0
        with:
          python-version: "{python}"
      - name: Let the sandbox make user namespaces
        uses: ./.github/actions/allow-user-namespaces
      - name: Install the grader (CPU PyTorch, then the course's wheel)
        run: |
          python -m pip install -q --index-url {torch_index} "torch=={torch}"
          python -m pip install -q -c constraints.txt -r requirements.txt
      - name: Check every notebook
        id: autograde
        run: |
          status=0
          pairs=()
          mkdir -p feedback
          for nb in assignments/*/*.ipynb; do
            name=$(basename "$nb" .ipynb)
            echo "::group::$nb"
            autograde check "$nb" --require-sandbox --report "feedback/$name.html" \\
              --json "feedback/$name.json" || status=1
            echo "::endgroup::"
            pairs+=("$nb=feedback/$name.json")
          done
          # annotations on your code, and the points for the Classroom reporter
          python -m backprop_lab.verbs.classroom "${{pairs[@]}}"
          exit "$status"
      - name: Report the points to GitHub Classroom
        if: always() && steps.autograde.outputs.results != ''
        # GitHub Classroom's own action, by its tag as Classroom's generated workflows use
        # it (no commit of it could be checked when this was written): pin it to the
        # commit of v1 when you publish the template repository.
        uses: classroom-resources/autograding-grading-reporter@v1 # zizmor: ignore[unpinned-uses]
        env:
          AUTOGRADE_RESULTS: ${{{{ steps.autograde.outputs.results }}}}
        with:
          runners: autograde
      - name: Keep the reports
        if: always()
        uses: actions/upload-artifact@b4b15b8c7c6ac21ea08fcf65892d2ee8f75cf882 # v4.4.3
        with:
          name: feedback
          path: feedback/
          if-no-files-found: ignore
"""


def _table() -> str:
    from ..course import ASSIGNMENTS

    rows = []
    for name in ASSIGNMENTS:
        exercises = exercises_for(name)
        titles = ", ".join(dict.fromkeys(e.title for e in exercises))
        points = sum(e.points for e in exercises)
        rows.append(f"| `assignments/{name}/{name}.ipynb` | {titles} | {points} |")
    return "\n".join(rows)


def _fill(root: Path) -> dict[str, str]:
    """What the README and the workflow say about versions: the project's oldest Python,
    the pinned torch and where its CPU build is."""
    from .bundle import CPU_TORCH_INDEX

    floor = python_floor(root / "pyproject.toml")
    return {"python": f"{floor[0]}.{floor[1]}", "torch_index": CPU_TORCH_INDEX,
            "torch": pinned_torch(root / "constraints.txt")}  # fmt: skip


def student_readme(root: Path) -> str:
    """The README of the release, also the description of the students' wheel."""
    return _README.format(table=_table(), **_fill(root))


def _check_course(root: Path) -> None:
    needed = ("pyproject.toml", "constraints.txt", "nbgrader_config.py", "solutions",
              _NAMESPACE_ACTION, PACKAGE)  # fmt: skip
    missing = [n for n in needed if not (root / n).exists()]
    if missing:
        raise GradingError(
            f"{root} is not the course's checkout (no {missing[0]}): run this in the "
            "repository's folder, or pass --root"
        )


def _released_notebooks(root: Path, scratch: Path) -> tuple[Path, tuple[str, ...]]:
    """The notebooks nbgrader generates from `solutions/` now, refused if any solution
    line, hidden test or marker is left in; and how the committed `assignments/` differ."""
    try:
        generated = regenerate(root, scratch)
    except RuntimeError as exc:
        raise GradingError(str(exc)) from None
    for name in assignment_names(root):
        for nb in sorted((generated / name).glob("*.ipynb")):
            source = nbformat.read(root / "solutions" / name / nb.name, as_version=4)
            leaks = find_leaks(source, nbformat.read(nb, as_version=4))
            if leaks:
                raise GradingError(f"assignments/{name}/{nb.name} would leak {leaks[0]}")
    return generated, tuple(generated_differences(root, generated))


def _wheel_packages(wheel: Path) -> set[str]:
    """The dotted names of the packages in `wheel` (its folders with an `__init__.py`)."""
    with zipfile.ZipFile(wheel) as z:
        return {n.rpartition("/")[0].replace("/", ".") for n in z.namelist()
                if n.endswith("/__init__.py") and ".dist-info/" not in n}  # fmt: skip


def build_release(root: Path, out: Path) -> Release:
    """Write the student-facing course of the checkout at `root` into the new folder `out`.
    GradingError when `root` is not the course's checkout, `out` is not empty, or a
    notebook would leak an answer."""
    root, out = Path(root).resolve(), Path(out)
    _check_course(root)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GradingError(f"{out} exists and is not empty: release into a new folder")
    fill = _fill(root)
    readme = student_readme(root)
    with tempfile.TemporaryDirectory(prefix="autograde-release-") as tmp:
        scratch, stage = Path(tmp) / "scratch", Path(tmp) / "release"
        scratch.mkdir()
        generated, stale = _released_notebooks(root, scratch)
        shutil.copytree(generated, stage / "assignments",
                        ignore=shutil.ignore_patterns(".*"))  # fmt: skip
        wheel = build_wheel(root, stage / "grader", readme=readme)
        extra = {p for p in _wheel_packages(wheel) if p.split(".")[0] != PACKAGE or is_answers(p)}
        if extra:  # pyproject's package list and the wheel's copy disagree
            raise GradingError(f"the students' wheel would hold {sorted(extra)}")
        texts = {
            "README.md": readme,
            "requirements.txt": _REQUIREMENTS.format(wheel=wheel.name),
            ".gitignore": _GITIGNORE,
            ".github/workflows/check.yml": _WORKFLOW.format(**fill),
        }
        for rel, text in texts.items():
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            (stage / rel).write_text(text, encoding="utf-8")
        shutil.copy2(root / "constraints.txt", stage / "constraints.txt")
        (stage / _NAMESPACE_ACTION).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / _NAMESPACE_ACTION, stage / _NAMESPACE_ACTION)
        files = tuple(sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*")
                             if p.is_file()))  # fmt: skip
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            out.rmdir()  # empty, checked above
        shutil.move(stage, out)
    return Release(out, files, stale)


def describe(release: Release) -> list[str]:
    """What `autograde release` prints: the files, then what to do with them."""
    lines = [f"{release.out}: {len(release.files)} files"]
    lines += [f"  {f}" for f in release.files]
    lines += [f"warning: committed {p}" for p in release.stale]
    lines.append(
        f"Push {release.out} as its own repository (for GitHub Classroom: a template "
        "repository) and give students that one; keep this repository private."
    )
    return lines
