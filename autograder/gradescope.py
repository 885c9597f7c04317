"""Gradescope: the autograder bundle an instructor uploads, and what runs inside it.

`autograde gradescope --seed-file SEED` (`build_bundle`) writes the `autograder.zip` that
Gradescope's "Configure Autograder" page takes:
- `setup.sh` builds the image once: a venv with the CPU build of torch (PyPI's default is
  a multi-GB CUDA build, and Gradescope has no GPU) and the grader from the bundled wheel,
  every version pinned by the bundled `constraints.txt`;
- `run_autograder` runs for each submission;
- the grader, as a wheel built from the instructor's checkout (this exact version);
- `autograde-gradescope.json`: the seed, read from the instructor's file (the bundle's
  source folder is never shown to students, and the sandbox never mounts it), the
  assignment, and limits that fit Gradescope's default container (768 MB, under one CPU).

Inside the container `python -m autograder.gradescope` (`run_autograder`) grades what the
student uploaded to /autograder/submission and always leaves a valid
/autograder/results/results.json: the score, or zero points and what to do about it
("your submission has no notebook: ..."). The shell script writes one itself if Python
cannot even start. Grading is `batch.grade_one`, so the verdict is `autograde grade`'s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from . import __version__
from .options import GradingError, Options
from .records import Record, unscored

__all__ = ["CONFIG", "BundleConfig", "build_bundle", "read_seed_file", "run_autograder"]

CONFIG = "autograde-gradescope.json"
DEFAULT_ROOT = Path("/autograder")
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
_PACKAGES = ("autograder", "reference", "coursedata")  # what the wheel is built from
_MIN_NOTEBOOK_SECONDS = 60.0  # less than this left: do not start another notebook


@dataclass(frozen=True)
class BundleConfig:
    """What the bundle grades with. The limits fit Gradescope's default container,
    768 MB and under one CPU: measured on two cores, grader and kernel together peak at
    550-570 MB resident on the solutions, and the kernel needs between 400 and 512 MB of
    data for the backprop notebook; cells and calls get twice `autograde`'s time."""

    seed: int
    assignment: str | None = None  # None: each notebook says which it is
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


# --- the bundle -----------------------------------------------------------------------------

_SETUP = """\
#!/usr/bin/env bash
# Gradescope runs this once, when autograder.zip is uploaded, to build the image every
# submission is graded in. Choose the "Ubuntu 24.04" base image (Python 3.12): the pinned
# versions need Python 3.11 or newer.
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3 python3-venv python3-pip > /dev/null
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else
  "backprop-lab needs Python 3.11 or newer: choose the Ubuntu 24.04 base image")'
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install -q --upgrade pip
# The CPU build: PyPI's default torch is a multi-GB CUDA build, and there is no GPU here.
/autograder/venv/bin/pip install -q --index-url {index} "torch=={torch}"
/autograder/venv/bin/pip install -q -c constraints.txt "./{wheel}"
# The build log says what the grader found: its version and how it isolates student code.
/autograder/venv/bin/python -I -m autograder.gradescope --describe
"""

_RUN = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission. It must always leave results/results.json:
# without one, a student sees only "The autograder failed to execute correctly".
root="${{AUTOGRADER_ROOT:-/autograder}}"
python="${{AUTOGRADE_PYTHON:-$root/venv/bin/python}}"
mkdir -p "$root/results"
rm -f "$root/results/results.json"
# Under one CPU, a thread pool per library only makes the kernels fight.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# -I: neither the working folder nor PYTHON* variables can put other code first
"$python" -I -m autograder.gradescope --root "$root"
status=$?
if [ ! -s "$root/results/results.json" ]; then
  cat > "$root/results/results.json" <<JSON
{fallback}
JSON
fi
exit 0
"""


def _fallback_json() -> str:
    """What run_autograder writes when Python cannot even start; `$status` is filled in
    by the shell (the heredoc expands it)."""
    message = (
        "The autograder could not start (exit $status), so your notebook was not graded. "
        "This is not your doing: tell your instructor, who can regrade it."
    )
    record = unscored(message, status="error", grader_version=__version__)
    return json.dumps(record.to_dict(), indent=1)


def _pinned_torch(constraints: Path) -> str:
    for line in constraints.read_text(encoding="utf-8").splitlines():
        if line.replace(" ", "").startswith("torch=="):
            return line.split("==", 1)[1].split("#")[0].strip()
    raise GradingError(f"{constraints} pins no torch version (a line `torch==X.Y.Z`)")


def _build_wheel(root: Path, dest: Path) -> Path:
    """The grader as a wheel, built from a copy of the checkout so the checkout is not
    touched (no build/ or egg-info left behind) and without the network."""
    with tempfile.TemporaryDirectory(prefix="autograde-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(root / name, src / name)
        for name in _PACKAGES:
            shutil.copytree(root / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
               "--quiet", "--wheel-dir", str(dest), str(src)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise GradingError(f"building the grader's wheel failed:\n{done.stdout}{done.stderr}")
    [wheel] = dest.glob("*.whl")
    return wheel


def build_bundle(root: Path, out: Path, config: BundleConfig) -> list[str]:
    """Write Gradescope's autograder.zip for the course checkout at `root` to `out`;
    return the names in it. GradingError when `root` is not a course checkout."""
    root = Path(root)
    needed = ("pyproject.toml", "constraints.txt", *_PACKAGES)
    missing = [n for n in needed if not (root / n).exists()]
    if missing:
        raise GradingError(
            f"{root} is not the course's checkout (no {missing[0]}): run this in the "
            "repository's folder, or pass --root"
        )
    torch_version = _pinned_torch(root / "constraints.txt")
    with tempfile.TemporaryDirectory(prefix="autograde-bundle-") as tmp:
        wheel = _build_wheel(root, Path(tmp))
        files: dict[str, tuple[bytes, int]] = {
            "setup.sh": (
                _SETUP.format(
                    index=CPU_TORCH_INDEX, torch=torch_version, wheel=wheel.name
                ).encode(),
                0o755,
            ),
            "run_autograder": (_RUN.format(fallback=_fallback_json()).encode(), 0o755),
            "constraints.txt": ((root / "constraints.txt").read_bytes(), 0o644),
            CONFIG: (json.dumps(asdict(config), indent=2).encode(), 0o600),
            wheel.name: (wheel.read_bytes(), 0o644),
        }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
        for name, (data, mode) in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16  # a regular file with these rights
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    os.replace(partial, out)
    return list(files)


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


def _for_student(record: Record, rel: str, folder: Path, seed: int) -> dict[str, Any]:
    """The record as a student may see it: paths relative to the upload, no batch keys,
    and not the seed (extra_data keeps it for the instructor): with it, a student could
    run the grading inputs at home."""
    text = json.dumps(record.to_dict()).replace(json.dumps(str(folder) + os.sep)[1:-1], "")
    data = json.loads(text)
    data["output"] = data["output"].replace(f"seed {seed}", "the instructor's seed")
    meta = data["extra_data"]
    for key in ("signature", "key", "student"):
        meta.pop(key, None)
    meta["notebook"] = rel
    return data


def _combine(graded: list[tuple[str, Record]], folder: Path, seed: int) -> dict[str, Any]:
    """One results.json from the notebooks' records: the best notebook per assignment
    counts (a student who uploads a copy as well loses nothing), each assignment's tests
    named with it when there are several."""
    by_assignment: dict[str, list[tuple[str, Record]]] = {}
    for rel, record in graded:
        by_assignment.setdefault(str(record.assignment), []).append((rel, record))
    chosen = []
    for group in by_assignment.values():
        rel, record = _best(group)
        others = [f"{r} ({x.score} points)" for r, x in group if r != rel]
        lead = f"Graded {rel}."
        if others:
            lead += (f" Also uploaded, not counted (the best notebook for each assignment "
                     f"counts): {', '.join(others)}.")  # fmt: skip
        view = _for_student(record, rel, folder, seed)
        view["output"] = f"{lead}\n{view['output']}"
        chosen.append(view)
    if len(chosen) == 1:
        return chosen[0]
    tests = []
    for view in chosen:
        name = view["extra_data"].get("assignment") or "notebook"
        tests += [{**t, "name": f"{name}: {t['name']}"} for t in view["tests"]]
    return {
        **chosen[0],
        "score": sum(v["score"] for v in chosen),
        "execution_time": round(sum(v.get("execution_time", 0) for v in chosen), 3),
        "output": "\n\n".join(v["output"] for v in chosen),
        "tests": tests,
        "extra_data": {
            "notebooks": [v["extra_data"] for v in chosen],
            "grader_version": __version__,
        },
    }


def grade_upload(folder: Path, config: BundleConfig) -> dict[str, Any]:
    """The results.json for what a student uploaded to `folder`; never raises for
    anything about the upload."""
    from .batch import grade_one
    from .submissions import Submission, notebooks_in

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
    deadline = time.monotonic() + config.time_budget
    graded: list[tuple[str, Record]] = []
    with tempfile.TemporaryDirectory(prefix="autograde-gradescope-") as tmp:
        for i, notebook in enumerate(notebooks):
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
    return _combine(graded, folder, config.seed)


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
    results = root / "results" / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    partial = results.with_name("results.json.partial")
    partial.write_text(json.dumps(record, indent=2), encoding="utf-8")
    os.replace(partial, results)
    return record


def _describe() -> str:
    from . import sandbox

    isolation = sandbox.describe() or "student code runs in the sandbox (namespaces, Landlock)"
    return f"autograde {__version__}, Python {sys.version.split()[0]}: {isolation}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.gradescope",
                                     description="Grade a Gradescope submission.")  # fmt: skip
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--describe", action="store_true",
                        help="print the grader's version and isolation, then exit")  # fmt: skip
    args = parser.parse_args(argv)
    print(_describe())
    if args.describe:
        return 0
    record = run_autograder(args.root)
    print(f"score {record['score']}: {record['output'].splitlines()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
