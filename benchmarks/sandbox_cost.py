"""What the operating-system sandbox costs, measured side by side in one run.

    python benchmarks/sandbox_cost.py [--repeat N] [--baseline REV] [NOTEBOOK]

1. Setting it up: a Python process that enters the sandbox of each machine kind (simulated
   here: namespaces + Landlock, Landlock only, namespaces only) and exits, against the same
   process without it.
2. The seccomp filter: a million `getppid` calls in a process under it and in one without.
3. The keeper: one count of a notebook's tree (its processes' memory), in milliseconds,
   and what share of one core it costs at one count every `keeper.EVERY` seconds.
4. Grading: `pipeline.grade` of the notebook (default: the backprop solution, each
   checkout's own copy) with this checkout and with the checkout at `--baseline`
   (default: 3e04f56, before the seccomp layer, the keeper, the course's own tests in the
   clean room and the second calls), alternating, each in a process of its own with its
   own fork server: what a submission costs now against then.
Prints medians; asserts nothing.
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
KINDS = {
    "namespaces + Landlock": "",
    "Landlock only": "namespaces=0",
    "namespaces only": "landlock=0",
}
ENTER = """
import json, os, sys, time
t = time.perf_counter()
if os.environ["P"] != "-":
    from backprop_lab.run import sandbox
    sandbox.enter(json.loads(os.environ["P"]))
print(time.perf_counter() - t)
"""
SYSCALLS = """
import ctypes, json, os, time
if os.environ["P"] != "-":
    from backprop_lab.run import sandbox
    sandbox.enter(json.loads(os.environ["P"]))
libc = ctypes.CDLL(None)
getppid = libc.getppid
t = time.perf_counter()
for _ in range(1_000_000):
    getppid()
print(time.perf_counter() - t)
"""
GRADE = """
import json, sys, time
from pathlib import Path
from backprop_lab.pipeline import Options, grade
notebook, repeat = Path(sys.argv[1]), int(sys.argv[2])
grade(notebook, Options())  # the fork server's start, not counted
times = []
for _ in range(repeat):
    t = time.perf_counter()
    result = grade(notebook, Options())
    times.append(time.perf_counter() - t)
    assert result.score.total == result.score.max_total, "a correct notebook"
print(json.dumps(times))
"""


def _policy(found: dict, folder: Path) -> dict:
    from backprop_lab.run import sandbox

    (folder / "nb").mkdir()
    (folder / "k").mkdir(mode=0o700)
    return sandbox.policy(scratch=str(folder / "nb"), sockets=str(folder / "k"),
                          read=sandbox.kernel_reads(), memory_mb=1024, found=found)  # fmt: skip


def _inside(code: str, found: dict | None, repeat: int) -> float:
    """Median of what `code` prints, run in a process in the sandbox `found` (None: none)."""
    from backprop_lab.run import sandbox

    values = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(dir=sandbox.host_folder()) as tmp:
            p = json.dumps(_policy(found, Path(tmp))) if found else "-"
            out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "P": p},
                                 capture_output=True, text=True, check=True)  # fmt: skip
            values.append(float(out.stdout.split()[-1]))
    return statistics.median(values)


def _found(simulate: str) -> dict:
    from backprop_lab.run import sandbox

    found = dict(sandbox.probe())
    if "namespaces=0" in simulate:
        found["namespaces"] = False
    if "landlock=0" in simulate:
        found["landlock"] = 0
    return found


def keeper_count_ms(repeat: int) -> float:
    """One count of this process's tree, as the keeper makes it every EVERY seconds."""
    from backprop_lab.run.sandbox import keeper

    proc = keeper.open_proc()
    children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
                for _ in range(4)]  # fmt: skip
    try:
        times = []
        for _ in range(repeat * 20):
            t = time.perf_counter()
            tree = keeper.descendants(proc, os.getpid())
            sum(keeper.memory_kb(proc, pid) for pid in tree)
            times.append(time.perf_counter() - t)
        return 1000 * statistics.median(times)
    finally:
        for child in children:
            child.kill()
            child.wait()
        os.close(proc)


def grading(checkout: Path, notebook: Path, repeat: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run([sys.executable, "-c", GRADE, str(notebook), str(repeat)], env=env,
                         capture_output=True, text=True, cwd=checkout)  # fmt: skip
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", nargs="?", default=ROOT / "solutions/backprop/backprop.ipynb")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", default="3e04f56")
    args = parser.parse_args()
    from backprop_lab.run import sandbox
    from backprop_lab.run.sandbox import keeper

    print(f"this machine: {sandbox.probe()}  ({sandbox.describe() or 'student code isolated'})")
    bare = _inside(ENTER, None, args.repeat)
    print(f"\n1. entering the sandbox, in a process (median of {args.repeat})")
    for kind, simulate in KINDS.items():
        boxed = _inside(ENTER, _found(simulate), args.repeat)
        print(f"   {kind:24s} {1000 * boxed:6.1f} ms   (a bare process: {1000 * bare:.2f} ms)")
    print("\n2. a million getppid() calls")
    plain = _inside(SYSCALLS, None, 3)
    for kind, simulate in KINDS.items():
        filtered = _inside(SYSCALLS, _found(simulate), 3)
        print(f"   {kind:24s} {filtered:5.3f} s   without the sandbox {plain:5.3f} s   "
              f"({1e9 * (filtered - plain) / 1e6:+.0f} ns a call)")  # fmt: skip
    count = keeper_count_ms(args.repeat)
    print(
        f"\n3. the keeper: one count of a tree of 4 processes {count:.2f} ms, every "
        f"{keeper.EVERY} s: {count / 1000 / keeper.EVERY:.2%} of a core"
    )
    notebook = Path(args.notebook).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base),
                        args.baseline], check=True, capture_output=True)  # fmt: skip
        try:
            runs: dict[str, list[float]] = {"baseline": [], "this": []}
            # each checkout grades its own copy of the notebook: a notebook from another
            # version of the course differs from its clean room, and costs a second run
            ours = notebook.is_relative_to(ROOT)
            theirs = base / notebook.relative_to(ROOT) if ours else notebook
            for _ in range(2):  # alternating, so that a busy moment costs both alike
                runs["baseline"] += grading(base, theirs, args.repeat)
                runs["this"] += grading(ROOT, notebook, args.repeat)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                           check=False, capture_output=True)  # fmt: skip
    old, new = statistics.median(runs["baseline"]), statistics.median(runs["this"])
    print(f"\n4. grading {notebook.name} in-process (median of {2 * args.repeat})")
    print(f"   at {args.baseline}: {old:5.3f} s   this checkout: {new:5.3f} s   "
          f"cost {new - old:+.3f} s per submission ({new / old:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
