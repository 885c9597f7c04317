"""`autograde gradescope`: the `autograder-NAME.zip` an instructor uploads to the Gradescope
assignment of course assignment NAME (see gradescope.py for what it holds and what runs
inside it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict
from pathlib import Path

from .. import __version__
from ..course import ASSIGNMENTS
from ..course.oracle import ANSWERS
from ..options import GradingError
from ..report.records import unscored
from .gradescope import CONFIG, BundleConfig
from .upload import full_points

__all__ = [
    "ANSWERS",
    "CPU_TORCH_INDEX",
    "PACKAGE",
    "build_bundle",
    "build_bundles",
    "build_wheel",
    "bundle_name",
    "pinned_torch",
    "python_floor",
]

CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
# The one package the project installs, and what the grader's wheel leaves out of it, for
# students and for Gradescope alike: the lesson's answers. Student code runs beside the
# installed grader and may read its environment's site-packages, so nothing there may hold
# an answer; the grader's expected values come from autograd (course/oracle.py) and need none.
PACKAGE = ANSWERS.partition(".")[0]


_SETUP = """\
#!/usr/bin/env bash
# Gradescope runs this once, when the bundle is uploaded, to build the image every
# submission is graded in. This bundle grades the {assignment} assignment ({points} points):
# upload it to that assignment's Gradescope autograder. Choose the "Ubuntu 24.04" base
# image (Python 3.12): backprop-lab needs Python {python} or newer (its pyproject.toml's
# requires-python).
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3 python3-venv python3-pip > /dev/null
python3 -c 'import sys; sys.exit(0 if sys.version_info >= ({floor}) else
  "backprop-lab needs Python {python} or newer: choose the Ubuntu 24.04 base image")'
python3 -m venv /autograder/venv
# Every package comes at the one version constraints.txt pins, so two builds of this
# image grade alike (pip itself is the venv's own: upgrading it would be a version no
# pin holds). torch is the CPU build from PyTorch's index, without its dependencies:
# PyPI's default torch is a multi-GB CUDA build, and there is no GPU here. Those
# dependencies, and everything the grader needs, come from PyPI with the grader under
# the constraints; `pip check` fails the build if anything is left out.
/autograder/venv/bin/pip install -q --no-deps --index-url {index} "torch=={torch}"
/autograder/venv/bin/pip install -q -c constraints.txt "./{wheel}"
/autograder/venv/bin/pip check
# The build log says what the grader found: its version, the assignment it grades and
# how it isolates student code.
/autograder/venv/bin/python -I -m backprop_lab.verbs.gradescope --root "$(dirname "$PWD")" \\
  --describe
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
# The instructor's test cells, hidden tests included (course_tests.py): never in the
# sandbox's reach, nor in a notebook's environment
export AUTOGRADE_COURSE_TESTS="$root/source/course_tests.json"
# -I: neither the working folder nor PYTHON* variables can put other code first
"$python" -I -m backprop_lab.verbs.gradescope --root "$root"
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


def pinned_torch(constraints: Path) -> str:
    for line in constraints.read_text(encoding="utf-8").splitlines():
        if line.replace(" ", "").startswith("torch=="):
            return line.split("==", 1)[1].split("#")[0].strip()
    raise GradingError(f"{constraints} pins no torch version (a line `torch==X.Y.Z`)")


def python_floor(pyproject: Path) -> tuple[int, int]:
    """The oldest Python the project supports, from its `requires-python = ">=X.Y"`: the
    one place it is stated."""
    import tomllib

    spec = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["requires-python"]
    major, minor = spec.removeprefix(">=").strip().split(".")[:2]
    if not spec.startswith(">=") or not (major.isdigit() and minor.isdigit()):
        raise GradingError(f'{pyproject}: requires-python should read ">=X.Y", not {spec!r}')
    return int(major), int(minor)


def is_answers(package: str) -> bool:
    """Whether the dotted `package` is the answers' or one below it."""
    return package == ANSWERS or package.startswith(ANSWERS + ".")


def _without_answers(pyproject: str) -> str:
    """pyproject.toml's text with `[tool.setuptools] packages` cut down to the grader's (a
    wheel built from fewer folders must not list the others)."""
    import tomllib

    listed = tomllib.loads(pyproject)["tool"]["setuptools"]["packages"]
    kept = [p for p in listed if not is_answers(p)]
    # one line or one per package, as long as it is the only `packages = [...]`
    line = re.compile(r"^packages = \[[^\]]*\]$", re.MULTILINE)
    if len(line.findall(pyproject)) != 1:
        raise GradingError("pyproject.toml: expected one `packages = [...]` list")
    return line.sub(lambda _: "packages = " + json.dumps(kept), pyproject)


def build_wheel(root: Path, dest: Path, readme: str | None = None) -> Path:
    """The grader as a wheel: the package without its answers, built from a copy of the
    checkout so the checkout is not touched (no build/ or egg-info left behind) and without
    the network. `readme` replaces README.md as the wheel's description."""
    with tempfile.TemporaryDirectory(prefix="autograde-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
        (src / "pyproject.toml").write_text(_without_answers(pyproject), "utf-8")
        if readme is None:
            shutil.copy2(root / "README.md", src / "README.md")
        else:
            (src / "README.md").write_text(readme, encoding="utf-8")
        answers = root.joinpath(*ANSWERS.split("."))

        def leave_out(folder: str, names: list[str]) -> list[str]:
            return [n for n in names if n == "__pycache__" or n.endswith(".pyc")
                    or Path(folder, n) == answers]  # fmt: skip

        shutil.copytree(root / PACKAGE, src / PACKAGE, ignore=leave_out)
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
               "--quiet", "--wheel-dir", str(dest), str(src)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise GradingError(f"building the grader's wheel failed:\n{done.stdout}{done.stderr}")
    [wheel] = dest.glob("*.whl")
    return wheel


def bundle_name(assignment: str) -> str:
    """The bundle's file name: the assignment in it, so the instructor uploads each to the
    right Gradescope assignment."""
    return f"autograder-{assignment}.zip"


def _check_root(root: Path) -> None:
    needed = ("pyproject.toml", "constraints.txt", PACKAGE)
    missing = [n for n in needed if not (root / n).exists()]
    if missing:
        raise GradingError(
            f"{root} is not the course's checkout (no {missing[0]}): run this in the "
            "repository's folder, or pass --root"
        )


def build_bundles(
    root: Path, out: Path, seed: int, assignments: tuple[str, ...] = ASSIGNMENTS
) -> list[Path]:
    """One Gradescope bundle per assignment in `assignments`, `out`/autograder-NAME.zip,
    all with the same grader wheel (built once) and seed; return their paths.
    GradingError when `root` is not a course checkout."""
    root, out = Path(root), Path(out)
    _check_root(root)
    with tempfile.TemporaryDirectory(prefix="autograde-bundle-") as tmp:
        wheel = build_wheel(root, Path(tmp))
        written = []
        for assignment in assignments:
            path = out / bundle_name(assignment)
            build_bundle(root, path, BundleConfig(seed=seed, assignment=assignment), wheel)
            written.append(path)
    return written


def _course_tests(root: Path, assignment: str) -> bytes:
    from ..plan.course_tests import all_course_tests

    return json.dumps({assignment: all_course_tests(root).get(assignment, {})}).encode()


def build_bundle(
    root: Path, out: Path, config: BundleConfig, wheel: Path | None = None
) -> list[str]:
    """Write the Gradescope bundle that grades `config.assignment` for the course checkout
    at `root` to `out`; return the names in it. `wheel`: the grader's, if already built.
    GradingError when `root` is not a course checkout."""
    root = Path(root)
    _check_root(root)
    if wheel is None:
        with tempfile.TemporaryDirectory(prefix="autograde-bundle-") as tmp:
            return build_bundle(root, out, config, build_wheel(root, Path(tmp)))
    torch_version = pinned_torch(root / "constraints.txt")
    floor = python_floor(root / "pyproject.toml")
    setup = _SETUP.format(
        index=CPU_TORCH_INDEX,
        torch=torch_version,
        wheel=wheel.name,
        floor=f"{floor[0]}, {floor[1]}",
        python=f"{floor[0]}.{floor[1]}",
        assignment=config.assignment,
        points=full_points(config.assignment),
    )
    files: dict[str, tuple[bytes, int]] = {
        "setup.sh": (setup.encode(), 0o755),
        "run_autograder": (_RUN.format(fallback=_fallback_json()).encode(), 0o755),
        "constraints.txt": ((root / "constraints.txt").read_bytes(), 0o644),
        CONFIG: (json.dumps(asdict(config), indent=2).encode(), 0o600),
        # the hidden tests too: a bundle is the instructor's, students never see it
        "course_tests.json": (_course_tests(root, config.assignment), 0o600),
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
