"""Where the time of checking and grading one notebook goes, measured side by side in one
run.

    python benchmarks/check_breakdown.py [--repeat 3] [NOTEBOOK ...]

For each notebook (default: both solutions and both untouched student versions):
1. The whole `autograde check` command with each engine (`--engine inprocess`, the
   default on Linux, and `--engine kernel`), and a bare `papermill` run of the same
   notebook (its CLI, a Jupyter kernel), each the median of --repeat runs, with the
   ratios check / papermill.
2. One submission as `autograde grade` grades it (a warm worker, the batch's fork server),
   taken apart with the grader's own timings: the fork, the child's set-up (sandbox and
   IPython shell), the student's cells, the grader's calls of the student's functions,
   the rest of the execution (papermill, the wire), the plan (inputs), the comparison and
   score, and the feedback report (Markdown, HTML and pictures). Medians of --repeat.
Prints seconds and fractions; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [
    ROOT / "solutions/backprop/backprop.ipynb",
    ROOT / "assignments/backprop/backprop.ipynb",
    ROOT / "solutions/matmul/matmul.ipynb",
    ROOT / "assignments/matmul/matmul.ipynb",
]
PARTS = ("fork", "child set-up", "notebook cells", "grader calls", "execution, the rest",
         "plan", "score", "report")  # fmt: skip


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=False, cwd=ROOT)
    return time.perf_counter() - start


def median_wall(cmd: list[str], repeat: int) -> float:
    return statistics.median(wall(cmd) for _ in range(repeat))


def submission_parts(notebooks: list[Path], repeat: int) -> dict[Path, dict[str, float]]:
    """Medians of the grader's own timings for each notebook, graded as a batch worker
    grades it: from the batch's fork server, after a first grading has warmed up."""
    from backprop_lab.gradebook.batch import _write_feedback
    from backprop_lab.options import Options
    from backprop_lab.pipeline import grade
    from backprop_lab.run import forkserver

    server = forkserver.start(kernels=False)
    if server is None:
        raise SystemExit("no fork server on this machine: the in-process engine needs Linux")
    try:
        grade(notebooks[0], Options(), server=server.socket_path)  # warm-up
        out: dict[Path, dict[str, float]] = {}
        for nb in notebooks:
            runs: dict[str, list[float]] = {p: [] for p in (*PARTS, "whole")}
            for _ in range(repeat):
                t = time.perf_counter()
                result = grade(nb, Options(), server=server.socket_path)
                r = time.perf_counter()
                with tempfile.TemporaryDirectory() as folder:
                    _write_feedback(result, Path(folder))
                report = time.perf_counter() - r
                timings = dict(result.timings)
                inside = sum(timings.get(k, 0.0) for k in PARTS[:4])
                timings["execution, the rest"] = timings.get("execute", 0.0) - inside
                timings["report"] = report
                for part in PARTS:
                    runs[part].append(timings.get(part, 0.0))
                runs["whole"].append(time.perf_counter() - t)
            out[nb] = {k: statistics.median(v) for k, v in runs.items()}
        return out
    finally:
        server.close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    notebooks = args.notebooks or DEFAULT
    print("1. The whole command, one notebook (medians of", args.repeat, "runs)\n")
    print(f"{'notebook':<40}{'check':>9}{'check --engine kernel':>23}{'papermill':>11}"
          f"{'ratios to papermill':>22}")  # fmt: skip
    for nb in notebooks:
        check = [sys.executable, "-m", "backprop_lab.verbs.cli", "check", str(nb)]
        fast = median_wall(check, args.repeat)
        kernel = median_wall([*check, "--engine", "kernel"], args.repeat)
        with tempfile.TemporaryDirectory() as tmp:
            bare = median_wall([sys.executable, "-m", "papermill", str(nb), f"{tmp}/out.ipynb",
                                "--no-progress-bar", "-k", "python3"], args.repeat)  # fmt: skip
        name = str(nb.relative_to(ROOT) if nb.is_relative_to(ROOT) else nb)
        print(f"{name:<40}{fast:8.2f}s{kernel:22.2f}s{bare:10.2f}s"
              f"{fast / bare:11.2f}x /{kernel / bare:6.2f}x")  # fmt: skip

    print("\n2. One submission graded as `autograde grade` grades it (seconds, medians)\n")
    parts = submission_parts(notebooks, args.repeat)
    header = f"{'part':<22}" + "".join(f"{nb.parent.name + '/' + nb.parent.parent.name:>24}"
                                       for nb in notebooks)  # fmt: skip
    print(header)
    for part in (*PARTS, "whole"):
        row = f"{part:<22}"
        for nb in notebooks:
            seconds, whole = parts[nb][part], parts[nb]["whole"]
            row += f"{seconds:14.3f} ({seconds / whole:5.1%})" if part != "whole" else (
                f"{seconds:14.3f}{'':9}")  # fmt: skip
        print(row)


if __name__ == "__main__":
    main(sys.argv[1:])
