"""`autograde release`: the course as students get it holds no answer. Its files and the
wheel students install are searched for every solution line, every hidden test and the
body of every graded function; and the students' grader, installed from that wheel
without `reference`, grades as the instructor's does."""

from __future__ import annotations

import ast
import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest
import yaml
from grading_tools import full_marks
from notebook_tools import ROOT, SOLUTION, STUB, edited, mse_grad

from backprop_lab.course import ASSIGNMENTS
from backprop_lab.verbs import demo
from backprop_lab.verbs.assignments import (
    HIDDEN_TEST_MARKERS,
    SOLUTION_MARKERS,
    _regions,
    find_leaks,
)
from backprop_lab.verbs.cli import main

# the release is built once, and its student venv made once: one worker runs these tests
pytestmark = pytest.mark.xdist_group("release")

# The functions and methods students write, as the reference writes them: the answer
# `autograde demo` gives each stub of every assignment.
GRADED: tuple[Callable, ...] = tuple(fn for a in ASSIGNMENTS for fn in demo._answers(a).values())


def worth_finding(line: str) -> bool:
    """A line that gives something away: long enough not to be `return c` or a loop head
    any code has, and not a comment."""
    line = line.strip()
    return len(line) > 12 and not line.startswith("#") and not line.startswith("for ")


def solution_and_hidden_lines() -> set[str]:
    lines: set[str] = set()
    for path in sorted((ROOT / "solutions").glob("*/*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            solution, rest = _regions(cell.source, SOLUTION_MARKERS)
            hidden, _ = _regions("\n".join(rest), HIDDEN_TEST_MARKERS)
            lines.update(solution + hidden)
    return {line for line in lines if worth_finding(line)}


def graded_bodies() -> set[str]:
    """Each statement line of the graded functions' bodies, docstrings and comments left
    out; `backprop.f(...)` also as the notebook writes it, `f(...)`."""
    lines: set[str] = set()
    for fn in GRADED:
        source = textwrap.dedent(inspect.getsource(fn))
        node = ast.parse(source).body[0]
        assert isinstance(node, ast.FunctionDef)
        body = node.body[1:] if ast.get_docstring(node) else node.body
        text = source.splitlines()[body[0].lineno - 1 : node.end_lineno]
        for line in text:
            line = line.split("  #")[0].strip()
            lines.update({line, line.replace("backprop.", "")})
    return {line for line in lines if worth_finding(line)}


def public_text() -> str:
    """Everything the released notebooks show (their sources: the lesson's text explains
    some answers on purpose). A line found there is the instructor's choice, not a leak."""
    return "\n".join(cell.source for path in sorted((ROOT / "assignments").glob("*/*.ipynb"))
                     for cell in nbformat.read(path, as_version=4).cells)  # fmt: skip


@pytest.fixture(scope="module")
def secrets() -> set[str]:
    public = public_text()
    found = {s for s in solution_and_hidden_lines() | graded_bodies() if s not in public}
    # the search is not vacuous: every graded function has lines to look for
    assert len(found) > 30, sorted(found)
    return found


def texts(folder: Path) -> Iterator[tuple[str, str]]:
    """(name, text) of every file under `folder`, a wheel's members included."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as z:
                for member in z.namelist():
                    yield f"{rel}!{member}", z.read(member).decode("utf-8", "replace")
        else:
            yield rel, path.read_bytes().decode("utf-8", "replace")


def leaks(folder: Path, secrets: set[str]) -> list[str]:
    found = []
    for name, text in texts(folder):
        if name.endswith(".ipynb"):  # JSON-escaped: search the sources themselves
            nb = nbformat.reads(text, as_version=4)
            text = "\n".join(c.source for c in nb.cells)
        found += [f"{name}: {s!r}" for s in sorted(secrets) if s in text]
    return found


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("release") / "course-template"
    assert main(["release", "--out", str(out), "--root", str(ROOT)]) == 0
    return out


def wheel(release: Path) -> Path:
    [whl] = (release / "grader").glob("*.whl")
    return whl


def test_the_release_holds_the_student_course_and_nothing_else(release: Path) -> None:
    files = {p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file()}
    assert files == {
        "README.md", "requirements.txt", "constraints.txt", ".gitignore",
        *(f"assignments/{a}/{a}.ipynb" for a in ASSIGNMENTS),
        ".github/workflows/check.yml", ".github/actions/allow-user-namespaces/action.yml",
        f"grader/{wheel(release).name}",
    }  # fmt: skip
    for name in ASSIGNMENTS:  # what nbgrader generates, as committed
        got = (release / "assignments" / name / f"{name}.ipynb").read_bytes()
        assert got == STUB[name].read_bytes()
    with zipfile.ZipFile(wheel(release)) as z:
        names = [n for n in z.namelist() if ".dist-info/" not in n]
        assert {n.split("/")[0] for n in names} == {"backprop_lab"}, names  # one namespace
        assert "backprop_lab/coursedata/__init__.py" in names
        assert not [n for n in names if n.startswith("backprop_lab/reference/")]  # no answers
    assert f"./grader/{wheel(release).name}" in (release / "requirements.txt").read_text()


def test_nothing_in_the_release_or_its_wheel_gives_an_answer_away(
    release: Path, secrets: set[str]
) -> None:
    assert leaks(release, secrets) == []
    for name in ASSIGNMENTS:  # nbgrader's own test, line by line, in every cell
        source = nbformat.read(SOLUTION[name], as_version=4)
        released = nbformat.read(release / "assignments" / name / f"{name}.ipynb", as_version=4)
        assert find_leaks(source, released) == []


def test_nothing_in_the_gradescope_bundle_gives_an_answer_away(
    secrets: set[str], tmp_path: Path
) -> None:
    """Gradescope runs student code beside the grader it installs from the bundle. The
    instructor's test cells are there (course_tests.json: hidden tests compute what the
    answers compute, so they count as answers here), for the grader alone: 0600, and out
    of the sandbox's reach (test_sandbox_modes.py); nothing else holds an answer."""
    (tmp_path / "seed.txt").write_text("4242\n")
    argv = ["gradescope", "--seed-file", str(tmp_path / "seed.txt"), "--out",
            str(tmp_path / "out"), "--root", str(ROOT)]  # fmt: skip
    assert main(argv) == 0
    bundles = sorted((tmp_path / "out").glob("autograder-*.zip"))
    assert len(bundles) == len(ASSIGNMENTS)  # one per assignment
    for bundle in bundles:
        folder = tmp_path / bundle.stem
        with zipfile.ZipFile(bundle) as z:
            z.extractall(folder)
            mode = (z.getinfo("course_tests.json").external_attr >> 16) & 0o777
        assert mode == 0o600
        assert [f for f in leaks(folder, secrets) if not f.startswith("course_tests.json:")] == []
        [whl] = folder.glob("*.whl")
        with zipfile.ZipFile(whl) as z:
            assert not [n for n in z.namelist() if n.startswith("backprop_lab/reference/")]


def test_every_graded_function_is_searched_for(secrets: set[str]) -> None:
    for fn in GRADED:
        source = inspect.getsource(fn)
        assert any(s in source or s in source.replace("backprop.", "") for s in secrets), fn


def test_the_search_finds_answers_where_they_are(secrets: set[str], tmp_path: Path) -> None:
    """The instructor's repository holds them: the search above would see a leak."""
    for folder in ("backprop_lab/reference", "solutions"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    found = leaks(tmp_path, secrets)
    assert "backprop_lab/reference/backprop.py: 'inp.g = out.g @ w.t()'" in found
    assert "backprop_lab/reference/matmul.py: 'c[i, j] += a[i, k] * b[k, j]'" in found
    assert "backprop_lab/reference/modules.py: 'relu_grad(self.inp, self.out)'" in found
    hidden = 'check_close(f"matmul(a, b) for float64 {shape_a} @ {shape_b}", matmul(a, b), a @ b)'
    assert f"solutions/matmul/matmul.ipynb: {hidden!r}" in found


def test_the_workflow_gives_feedback_and_holds_no_secret(release: Path) -> None:
    text = (release / ".github/workflows/check.yml").read_text()
    flow = yaml.safe_load(text)
    # checks: write for Classroom's reporter, which writes the points on the check run
    assert flow["permissions"] == {"checks": "write", "actions": "read", "contents": "read"}
    job = flow["jobs"]["run-autograding-tests"]
    assert job["name"] == "Autograding Tests"  # the check run the reporter looks for
    run = "\n".join(s.get("run", "") for s in job["steps"])
    assert "python -m backprop_lab.verbs.classroom" in run and "--json" in run
    [reporter] = [s for s in job["steps"] if "autograding-grading-reporter" in s.get("uses", "")]
    assert reporter["with"]["runners"] == "autograde"
    assert reporter["env"]["AUTOGRADE_RESULTS"] == "${{ steps.autograde.outputs.results }}"
    assert "autograde check" in run and "--require-sandbox" in run
    assert "secrets." not in text and "AUTOGRADE_SEED" not in text and "--seed" not in run
    assert not (release / ".github/workflows/grade-pr.yml").exists()
    readme = (release / "README.md").read_text()
    assert "autograde check" in readme and "not your grade" in readme
    assert "solutions/" not in readme and "reference/" not in readme


def test_zizmor_finds_nothing_in_the_release_s_workflow(release: Path) -> None:
    zizmor = shutil.which("zizmor") or str(Path(sys.executable).parent / "zizmor")
    done = subprocess.run([zizmor, "--offline", "--format", "json", "--min-severity", "medium",
                           str(release / ".github")], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert json.loads(done.stdout or "[]") == [], done.stdout


def test_a_folder_that_is_not_empty_is_refused(tmp_path: Path, capsys) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["release", "--out", str(tmp_path), "--root", str(ROOT)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


# -- the grader a student installs ---------------------------------------------------------


@pytest.fixture(scope="module")
def student_python(release: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the release's wheel installed over this environment's packages (torch
    and the rest), where neither this checkout's grader nor its `reference` is importable."""
    from test_gradescope import package_dirs

    venv = tmp_path_factory.mktemp("student-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", "--no-index", str(wheel(release))], check=True)  # fmt: skip
    ask = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site_packages = subprocess.run([python, "-I", "-c", ask], capture_output=True, text=True,
                                   check=True).stdout.strip()  # fmt: skip
    # Plain folders: their .pth files (this environment's editable install) are not run.
    (Path(site_packages) / "running-environment.pth").write_text(
        "".join(f"{d}\n" for d in package_dirs())
    )
    return python


def student_env() -> dict[str, str]:
    # PYTHONPATH would put this checkout (and its `reference`) back in reach.
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def run_student(python: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "backprop_lab.verbs.cli", *args], capture_output=True,
                          text=True, timeout=600, env=student_env(), cwd=python.parent)  # fmt: skip


def test_the_student_install_has_no_reference(student_python: Path) -> None:
    probe = ("import importlib.util, backprop_lab; from backprop_lab.course import hand_written; "
             "print(backprop_lab.__file__, importlib.util.find_spec('backprop_lab.reference'), "
             "hand_written())")  # fmt: skip
    done = subprocess.run([student_python, "-c", probe], capture_output=True, text=True,
                          env=student_env(), cwd=student_python.parent, check=True)  # fmt: skip
    where, spec, ref = done.stdout.split()
    assert where.startswith(str(student_python.parents[1])), where
    assert spec == "None" and ref == "None"
    demo = run_student(student_python, "demo")
    assert demo.returncode == 2 and "instructor's install" in demo.stderr, demo.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("assignment", "solved"), [("backprop", True), ("backprop", False), ("matmul", True)],
    ids=["backprop-solution", "backprop-stub", "matmul-solution"],
)  # fmt: skip
def test_the_student_install_grades_as_the_instructor_s(
    student_python: Path, assignment: str, solved: bool
) -> None:
    notebook = (SOLUTION if solved else STUB)[assignment]
    done = run_student(student_python, "check", str(notebook))
    assert done.returncode == (0 if solved else 1), done.stdout + done.stderr
    full = full_marks(assignment)
    assert f"Total: {full if solved else 0}/{full}" in done.stdout, done.stdout
    assert "Integrity" not in done.stdout


# The attack measured on 62566a9: a notebook that finds the installed reference's file and
# execs it scored 15/15. Where students' code runs there is no such file to find.
EXEC_THE_REFERENCE = """
import glob, sys
found = [p for d in sys.path for p in glob.glob(d + "/backprop_lab/reference/backprop.py")]
if not found:
    raise FileNotFoundError("no backprop_lab/reference/backprop.py anywhere on sys.path")
answers = {}
exec(open(found[0]).read(), answers)
answers["mse_grad"](inp, targ)
"""


@pytest.mark.slow
def test_a_notebook_that_execs_the_installed_reference_finds_none(
    student_python: Path, tmp_path: Path
) -> None:
    nb = tmp_path / "backprop.ipynb"
    nbformat.write(edited(SOLUTION["backprop"], [mse_grad(EXEC_THE_REFERENCE)]), nb)
    done = run_student(student_python, "check", str(nb), "--json", str(tmp_path / "r.json"))
    assert done.returncode == 1, done.stdout + done.stderr
    results = json.loads((tmp_path / "r.json").read_text())
    mse = [t for t in results["tests"] if t["name"].startswith("mse_grad")]
    assert mse and all(t["score"] == 0 for t in mse), mse
    assert any("no backprop_lab/reference/backprop.py" in t["output"] for t in mse), mse
    assert results["score"] < full_marks("backprop")
