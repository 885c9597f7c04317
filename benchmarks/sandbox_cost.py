"""What the operating-system sandbox costs, measured side by side in one run.

    python benchmarks/sandbox_cost.py [--repeat N] [NOTEBOOK]

1. Setting the sandbox up: a Python process that enters it (namespaces, new root,
   Landlock, limits) and exits, against the same process without it.
2. Grading: `pipeline.grade` of the same notebook (default: the backprop solution) with
   the sandbox and with the machine taken to have none (the probe's answer replaced in
   this process), with kernels forked from a fork server and with plain kernels.
Prints medians and the per-submission difference; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NONE = {"namespaces": False, "landlock": 0}


def enter_seconds(found: dict, repeat: int) -> float:
    from autograder import sandbox

    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "nb").mkdir()
            (Path(tmp) / "k").mkdir()
            reads = sandbox.kernel_reads()
            policy = sandbox.policy(scratch=f"{tmp}/nb", sockets=f"{tmp}/k", read=reads,
                                    memory_mb=1024, found=found)  # fmt: skip
            code = "import json, os; from autograder import sandbox; "
            code += "sandbox.enter(json.loads(os.environ['P'])) if os.environ['P'] != '-' else 0"
            env = {**os.environ, "P": json.dumps(policy) if found != NONE else "-"}
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def grade_seconds(notebook: Path, found: dict, fork: bool, repeat: int) -> dict[str, float]:
    """Median seconds of `grade` without and with the sandbox, the two alternating (one
    fork server for both), so that a busy moment of the machine costs both alike."""
    from autograder import forkserver, sandbox
    from autograder.pipeline import Options, grade

    server = forkserver.start() if fork else None
    times: dict[str, list[float]] = {"without": [], "with": []}
    try:
        spec = server.kernel_spec_manager() if server else None
        for _ in range(repeat):
            for name, probed in (("without", NONE), ("with", found)):
                sandbox.probing._PROBED = probed
                t = time.perf_counter()
                result = grade(notebook, Options(), kernel_spec_manager=spec)
                times[name].append(time.perf_counter() - t)
                assert result.score.total == result.score.max_total, "a correct notebook"
    finally:
        if server:
            server.close()
        sandbox.probing._PROBED = None
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", nargs="?", default=ROOT / "solutions/backprop/backprop.ipynb")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from autograder import sandbox

    found = sandbox.probe()
    print(f"this machine: {found}  ({sandbox.describe(found) or 'student code isolated'})")
    if sandbox.describe(found):
        print("nothing to compare: this machine cannot sandbox")
        return
    bare, boxed = enter_seconds(NONE, args.repeat), enter_seconds(found, args.repeat)
    print(f"\n1. a process that enters the sandbox and exits (median of {args.repeat})")
    print(f"   without {bare * 1000:7.1f} ms   with {boxed * 1000:7.1f} ms   "
          f"set-up {1000 * (boxed - bare):+6.1f} ms")  # fmt: skip
    print(f"\n2. grading {Path(args.notebook).name} (median of {args.repeat})")
    for fork in (True, False):
        median = grade_seconds(Path(args.notebook), found, fork, args.repeat)
        off, on = median["without"], median["with"]
        kind = "fork-server kernels" if fork else "plain kernels      "
        print(f"   {kind}  without {off:5.2f} s   with {on:5.2f} s   "
              f"cost {on - off:+5.2f} s per submission ({on / off:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
