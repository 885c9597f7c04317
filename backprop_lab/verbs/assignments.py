"""The student notebooks: regenerate them from `solutions/` with nbgrader and check that
the committed `assignments/` are exactly that, with no solution or hidden test left in.

`assignments/` is never edited by hand; an instructor edits `solutions/` and runs
`nbgrader generate_assignment NAME --force`. These functions let the tests (and later
`autograde verify`) prove the two are in sync.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat import NotebookNode

__all__ = [
    "HIDDEN_TEST_MARKERS",
    "SOLUTION_MARKERS",
    "assignment_names",
    "find_leaks",
    "generated_differences",
    "notebook_differences",
    "regenerate",
    "secret_lines",
    "shipped_problems",
    "sync_problems",
]

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
HIDDEN_TEST_MARKERS = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")

# The nbgrader metadata that defines a cell's role and grading; all of it must match.
_NBGRADER_KEYS = ("grade_id", "grade", "solution", "locked", "task", "points", "checksum")


def assignment_names(root: Path) -> list[str]:
    """Assignments are the folders of `solutions/` that hold notebooks."""
    solutions = root / "solutions"
    return sorted(d.name for d in solutions.iterdir() if d.is_dir() and any(d.glob("*.ipynb")))


def regenerate(root: Path, scratch: Path) -> Path:
    """Run `nbgrader generate_assignment` on a copy of the course in `scratch`, so the
    checkout (and its gradebook) is not touched; return the generated `assignments/`."""
    shutil.copy2(root / "nbgrader_config.py", scratch / "nbgrader_config.py")
    shutil.copytree(root / "solutions", scratch / "solutions", dirs_exist_ok=True)
    for name in assignment_names(root):
        cmd = [sys.executable, "-m", "nbgrader", "generate_assignment", name, "--force"]
        done = subprocess.run(cmd, cwd=scratch, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"nbgrader generate_assignment {name} failed (exit {done.returncode}):\n"
                f"{done.stdout}{done.stderr}"
            )
    return scratch / "assignments"


def _role(cell: NotebookNode) -> dict:
    meta = cell.metadata.get("nbgrader", {})
    return {k: meta[k] for k in _NBGRADER_KEYS if k in meta}


def notebook_differences(expected: NotebookNode, actual: NotebookNode) -> list[str]:
    """What differs between two notebooks in what students see and what grading reads:
    cell types, sources, nbgrader roles and checksums, outputs, the kernel."""
    problems = []
    if expected.metadata.get("kernelspec") != actual.metadata.get("kernelspec"):
        problems.append("kernelspec differs")
    if len(expected.cells) != len(actual.cells):
        problems.append(f"{len(actual.cells)} cells, expected {len(expected.cells)}")
    for i, (want, got) in enumerate(zip(expected.cells, actual.cells, strict=False)):
        where = f"cell {i} ({want.metadata.get('nbgrader', {}).get('grade_id', want.cell_type)})"
        if want.cell_type != got.cell_type:
            problems.append(f"{where}: a {got.cell_type} cell, expected {want.cell_type}")
        if want.source != got.source:
            problems.append(f"{where}: source differs")
        if _role(want) != _role(got):
            problems.append(f"{where}: nbgrader metadata {_role(got)}, expected {_role(want)}")
        if got.get("outputs"):
            problems.append(f"{where}: has outputs; released notebooks must be cleared")
    return problems


def _regions(source: str, markers: tuple[str, str]) -> tuple[list[str], list[str]]:
    """Split a cell's lines into those inside `markers` regions and those outside."""
    begin, end = markers
    inside: list[str] = []
    outside: list[str] = []
    depth = False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith(begin):
            depth = True
        elif stripped.startswith(end):
            depth = False
        else:
            (inside if depth else outside).append(stripped)
    return inside, outside


def secret_lines(source_nb: NotebookNode) -> set[str]:
    """Lines that appear only inside solution or hidden-test regions of the source
    notebook. A line that also appears outside them (a hint in the text, a given line)
    is public and not a leak."""
    secret: set[str] = set()
    public: set[str] = set()
    for cell in source_nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        text = cell.source
        if meta.get("solution") and SOLUTION_MARKERS[0] not in text:
            # nbgrader replaces a solution cell without markers as a whole.
            secret.update(line.strip() for line in text.splitlines())
            continue
        solution, rest = _regions(text, SOLUTION_MARKERS)
        hidden, rest = _regions("\n".join(rest), HIDDEN_TEST_MARKERS)
        secret.update(solution + hidden)
        public.update(rest)
    return {line for line in secret - public if line}


def find_leaks(source_nb: NotebookNode, released_nb: NotebookNode) -> list[str]:
    """Every secret line of `source_nb` that appears in `released_nb` (sources or
    outputs), and every nbgrader marker left in it."""
    secrets = secret_lines(source_nb)
    found = []
    for i, cell in enumerate(released_nb.cells):
        texts = [cell.source] + [
            str(out.get("text", "")) + str(out.get("data", {})) for out in cell.get("outputs", [])
        ]
        for text in texts:
            for line in text.splitlines():
                stripped = line.strip()
                if stripped in secrets:
                    found.append(f"cell {i}: solution or hidden-test line {stripped!r}")
                if any(m in stripped for m in SOLUTION_MARKERS + HIDDEN_TEST_MARKERS):
                    found.append(f"cell {i}: nbgrader marker {stripped!r}")
    return found


def sync_problems(root: Path, scratch: Path) -> list[str]:
    """Everything wrong with `root/assignments` compared with what nbgrader generates from
    `root/solutions` now: missing or extra notebooks, differences, leaks. Empty when in sync."""
    return generated_differences(root, regenerate(root, scratch))


def generated_differences(root: Path, generated: Path) -> list[str]:
    """`sync_problems` against assignments nbgrader has already generated (`regenerate`)
    from the same solutions."""
    problems = []
    for name in assignment_names(root):
        for fresh in sorted((generated / name).glob("*.ipynb")):
            rel = fresh.relative_to(generated)
            committed = root / "assignments" / rel
            if not committed.is_file():
                problems.append(
                    f"assignments/{rel}: missing; run nbgrader generate_assignment {name} --force"
                )
                continue
            released = nbformat.read(committed, as_version=4)
            source = nbformat.read(root / "solutions" / rel, as_version=4)
            for p in notebook_differences(nbformat.read(fresh, as_version=4), released):
                problems.append(f"assignments/{rel}: {p}")
            for p in find_leaks(source, released):
                problems.append(f"assignments/{rel}: leaks {p}")
    for nb in sorted((root / "assignments").glob("*/*.ipynb")):
        if not (generated / nb.relative_to(root / "assignments")).is_file():
            problems.append(f"{nb.relative_to(root)}: not generated from any solution notebook")
    return problems


def shipped_problems(root: Path) -> list[str]:
    """Where the released notebooks shipped inside the grader (backprop_lab/released/: the
    clean room runs them) are not `root/assignments`' byte for byte."""
    problems = []
    for nb in sorted((root / "assignments").glob("*/*.ipynb")):
        if nb.stem != nb.parent.name:
            continue  # only an assignment's own notebook is graded
        rel, shipped = nb.relative_to(root), f"backprop_lab/released/{nb.name}"
        copy = root / shipped
        if not copy.is_file() or copy.read_bytes() != nb.read_bytes():
            problems.append(
                f"{shipped} differs from {rel}, which the clean room must run: cp {rel} {shipped}"
            )
    return problems
