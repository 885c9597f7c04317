"""Where the time of `autograde check` goes, measured side by side in one run.

    python benchmarks/check_breakdown.py [NOTEBOOK ...]

For each notebook (default: the backprop solution and its untouched student version) it
times the whole `autograde check` command, a bare `papermill` run of the same notebook,
and, inside one grading, the parts: grader start-up (imports), kernel start, the
notebook's own cells (of which `import torch` in the kernel), the grader's calls of the
student's functions (harvest), and scoring. Prints seconds and fractions; asserts nothing.

The parts are measured one after the other; in a real `check` the kernel starts (and
imports torch) while the grader process imports torch and makes its inputs, so on two
cores the parts add up to more than the whole. Two differences from a bare papermill
run are the grader's doing: it starts the kernel before its own imports, and it does
not import `rfc3987_syntax`, which jsonschema (under nbformat) builds a grammar for at
import, about 0.9 s, only to check a string format notebooks do not use.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [ROOT / "solutions/backprop/backprop.ipynb", ROOT / "assignments/backprop/backprop.ipynb"]
REPEAT = 3


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=False, cwd=ROOT)
    return time.perf_counter() - start


def median_wall(cmd: list[str]) -> float:
    return statistics.median(wall(cmd) for _ in range(REPEAT))


def parts(notebook: Path) -> dict[str, float]:
    """One grading, taken apart with the pipeline's own pieces."""
    from autograder.execute import run_notebook
    from autograder.exercises import exercises_for
    from autograder.harvest import AUTOGRADER_TAG, inject, make_plan, read_harvest
    from autograder.notebook import cell_shas, detect_assignment, read_notebook
    from autograder.score import score

    nb = read_notebook(notebook)
    exercises = exercises_for(detect_assignment(nb, notebook))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plan = make_plan(exercises, seed=0, device="cpu")
        prepared = inject(
            nb, plan, call_timeout=20, cell_shas=cell_shas(nb), limits={"cell_timeout": 120}
        )
        (work / "notebook").mkdir()
        execution = run_notebook(
            prepared,
            parameters={"seed": 0, "device": "cpu"},
            workdir=work / "notebook",
            cell_timeout=120,
            skip_tag=AUTOGRADER_TAG,
        )
        cells = execution.notebook.cells
        durations = [
            (c, float(c.metadata.get("papermill", {}).get("duration") or 0)) for c in cells
        ]
        grader_cells = [d for c, d in durations if AUTOGRADER_TAG in c.metadata.get("tags", [])]
        torch_cell = [
            d
            for c, d in durations
            if "import torch" in c.source and AUTOGRADER_TAG not in c.metadata.get("tags", [])
        ]
        t = time.perf_counter()
        score(exercises, plan, read_harvest(execution.notebook))
        scoring = time.perf_counter() - t
    notebook_cells = sum(d for _, d in durations) - sum(grader_cells)
    return {
        "execution (papermill, kernel start to shutdown)": execution.seconds,
        "  kernel start (imports torch), papermill overhead": execution.seconds
        - sum(d for _, d in durations),
        "  grader's set-up cell": grader_cells[0],
        "  notebook cells": notebook_cells,
        "    of which the set-up cell (import torch, data)": torch_cell[0] if torch_cell else 0.0,
        "  harvest: grader calls student functions": grader_cells[-1],
        "scoring (reference, autograd, compare)": scoring,
    }


def main(argv: list[str]) -> None:
    notebooks = [Path(a) for a in argv] or DEFAULT
    startup = median_wall(
        [
            sys.executable,
            "-c",
            "import autograder.cli, autograder.pipeline, autograder.report, papermill, torch",
        ]
    )
    print(f"grader process start-up and imports: {startup:.2f} s (median of {REPEAT})\n")
    for nb in notebooks:
        check = median_wall([sys.executable, "-m", "autograder.cli", "check", str(nb)])
        with tempfile.TemporaryDirectory() as tmp:
            bare = median_wall(
                [
                    sys.executable,
                    "-m",
                    "papermill",
                    str(nb),
                    f"{tmp}/out.ipynb",
                    "--no-progress-bar",
                    "-k",
                    "python3",
                ]
            )
        print(f"{nb.relative_to(ROOT)}")
        print(f"  autograde check (whole command) {check:6.2f} s")
        print(
            f"  bare papermill run              {bare:6.2f} s   ratio check/papermill "
            f"{check / bare:.2f}"
        )
        for name, seconds in parts(nb).items():
            print(f"  {name:<50}{seconds:6.2f} s  ({seconds / check:5.1%} of check)")
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
