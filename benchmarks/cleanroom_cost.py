"""What the clean room costs: building it, and grading a notebook that needs the second
(full) run against one that does not, side by side in one run.

    python benchmarks/cleanroom_cost.py [--n 20] [--workers 2] [--repeat 3]

Grades two classes of N backprop notebooks each with `autograde grade --no-feedback`'s own
function (the same batch, fork server and sandbox): "ordinary", the solution with a
`# submitted by` line per student (one run each), and "added cells", the same with one
scratch cell appended (the clean room's run and the notebook as it is). Prints seconds
per submission for each and their ratio, and the time to build one clean room. Asserts
nothing about time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nbformat

from backprop_lab.gradebook.batch import grade_submissions
from backprop_lab.plan.cleanroom import clean_room

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "backprop" / "backprop.ipynb"


def _class(folder: Path, n: int, added: bool) -> Path:
    for i in range(n):
        nb = nbformat.read(SOLUTION, as_version=4)
        answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution"))
        answer.source += f"\n# submitted by student {i}"  # every notebook its own bytes
        if added:
            nb.cells.append(nbformat.v4.new_code_cell(f"print('scratch work {i}')"))
        (folder / f"s{i:03d}").mkdir(parents=True)
        nbformat.write(nb, folder / f"s{i:03d}" / "backprop.ipynb")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    nb = nbformat.read(SOLUTION, as_version=4)
    t = time.perf_counter()
    for _ in range(100):
        clean_room(nbformat.from_dict(nb), "backprop")
    build = (time.perf_counter() - t) / 100
    seconds: dict[str, list[float]] = {"ordinary": [], "added cells": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeat):  # alternating, so both see a warm machine
            for name, added in (("ordinary", False), ("added cells", True)):
                folder = _class(Path(tmp) / f"{round_}-{name.replace(' ', '-')}", args.n, added)
                t = time.perf_counter()
                summary = grade_submissions([folder], Path(tmp) / f"out-{round_}-{added}",
                                            workers=args.workers, progress=False,
                                            feedback=False)  # fmt: skip
                seconds[name].append((time.perf_counter() - t) / args.n)
                full_runs = sum("full run" in r["extra_data"].get("timings", {})
                                for r in summary.records)  # fmt: skip
                scores = sorted({r["score"] for r in summary.records})
                print(f"round {round_ + 1} {name:>12}: {seconds[name][-1]:.3f} s per "
                      f"submission, scores {scores}, {full_runs} full runs")  # fmt: skip
    best = {name: min(times) for name, times in seconds.items()}
    print(f"building one clean room: {build * 1000:.1f} ms")
    print(f"best of {args.repeat}: ordinary {best['ordinary']:.3f} s, added cells "
          f"{best['added cells']:.3f} s per submission: "
          f"{best['added cells'] / best['ordinary']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
