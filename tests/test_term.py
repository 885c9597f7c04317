"""A whole term, as an instructor types it: every command a subprocess, in a fresh venv
where a copy of this course is installed (so that the instructor's edits are the course's).

Edit a hidden test, generate, verify (it fails on the instructor's own slip, then passes
once it is fixed), release, collect a class (a roster, a late submission, an override, a
PDF-only folder, a student who handed in nothing, one who is not on the roster), grade,
export for Canvas and Moodle, and build the Gradescope bundle and run it in a simulated
/autograder tree, where the new hidden test costs what it costs in the batch."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from grading_tools import exercise, full_marks
from notebook_tools import ROOT, SOLUTION, edited
from test_course_tests import IN_PLACE, NEW_HIDDEN_TEST
from test_gradescope import bundled_python, gradescope_environ, package_dirs

pytestmark = pytest.mark.slow

# the course-tests test's hidden test, with a place for the instructor's slip
HIDDEN = NEW_HIDDEN_TEST.replace("out.g, before)", "out.g, {before})").replace(
    "### BEGIN HIDDEN TESTS\n", "### BEGIN HIDDEN TESTS\n# the incoming gradient is the caller's\n"
)
DUE = "2026-12-10T23:59+00:00"
# backprop's full marks, and what the new hidden test in relu_grad's test cell costs
FULL = full_marks("backprop")
RELU = exercise("relu_grad").points


def _copy_course(dest: Path) -> Path:
    """This course's files as git tracks them (as they are in the working tree)."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True,
                            check=True).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def term(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A copy of the course, and a fresh venv with it installed (editable, as the README
    says), over this environment's packages (torch and the rest, nothing downloaded)."""
    base = tmp_path_factory.mktemp("term")
    course = _copy_course(base / "course")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    ask = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run([python, "-I", "-c", ask], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    (Path(site) / "running-environment.pth").write_text("".join(f"{d}\n" for d in package_dirs()))
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "-e", str(course)], check=True, cwd=course)  # fmt: skip
    return {"course": course, "bin": venv / "bin", "base": base}


def typed(term: dict[str, Path], *argv: str, ok: tuple[int, ...] = (0,)) -> str:
    """One command as the instructor types it in the course's folder, with the venv on
    PATH; its output (stdout and stderr)."""
    env = {**os.environ, "PATH": f"{term['bin']}{os.pathsep}{os.environ['PATH']}",
           "VIRTUAL_ENV": str(term["bin"].parent), "NO_COLOR": "1", "COLUMNS": "200"}  # fmt: skip
    env.pop("PYTHONPATH", None)
    done = subprocess.run(list(argv), cwd=term["course"], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode in ok, f"{' '.join(argv)} exited {done.returncode}:\n{out[-4000:]}"
    return out


def _add_hidden_test(course: Path, before: str) -> None:
    path = course / "solutions/backprop/backprop.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == "relu_grad_tests")  # fmt: skip
    source = cell.source
    if "relu_grad must not modify" in source:
        source = source[: source.index("\n### BEGIN HIDDEN TESTS\n# the incoming")]
    cell.source = source + HIDDEN.format(before=before)
    nbformat.write(nb, path)


def _hand_in(folder: Path, student: str, notebook: nbformat.NotebookNode | None,
             when: str, extra: dict[str, bytes] | None = None) -> None:  # fmt: skip
    where = folder / student / "backprop"
    where.mkdir(parents=True)
    if notebook is not None:
        nbformat.write(notebook, where / "backprop.ipynb")
    for name, data in (extra or {}).items():
        (where / name).write_bytes(data)
    (where / "timestamp.txt").write_text(when)


def test_a_term_as_an_instructor_types_it(term: dict[str, Path]) -> None:
    course, base = term["course"], term["base"]
    # 1. Edit: a hidden test, with a slip (it compares with the wrong tensor) ...
    _add_hidden_test(course, before="before * 2")
    # 2. Generate, as the README says
    typed(term, "python", "-m", "nbgrader", "generate_assignment", "backprop", "--force")
    shutil.copy(course / "assignments/backprop/backprop.ipynb", course / "backprop_lab/released/")
    # 3. Verify: the slip fails the instructor's own solution
    out = typed(term, "autograde", "verify", ok=(1,))
    assert f"BAD solution   solutions/backprop/backprop.ipynb: {FULL - RELU}/{FULL}" in out, out
    assert "verify: all good" not in out
    _add_hidden_test(course, before="before")  # ... fixed
    out = typed(term, "autograde", "verify")
    assert "verify: all good" in out, out
    # 4. Release
    out = typed(term, "autograde", "release", "--out", str(base / "release"))
    assert not (base / "release/solutions").exists()
    # 5. Collect: nbgrader's submitted/STUDENT/backprop/ with timestamp.txt
    submitted = base / "submitted"
    solution = nbformat.read(SOLUTION["backprop"], as_version=4)
    _hand_in(submitted, "alice", solution, "2026-12-10 20:00:00.000000 UTC")
    _hand_in(submitted, "bob", edited(SOLUTION["backprop"], [("relu_grad", IN_PLACE, None)]),
             "2026-12-10 21:00:00.000000 UTC")  # fmt: skip
    _hand_in(submitted, "carol", solution, "2026-12-12 08:00:00.000000 UTC")  # 2 days late
    _hand_in(submitted, "dave", None, "2026-12-10 22:00:00.000000 UTC",
             {"backprop.pdf": b"%PDF-1.4 a printout"})  # fmt: skip
    _hand_in(submitted, "frank", solution, "2026-12-10 19:00:00.000000 UTC")  # not on roster
    roster = base / "roster.csv"
    roster.write_text(
        "student,name,email,lms_id,sis_id,section\n"
        + "".join(f"{s},{s.title()},{s}@uni.edu,{40100 + i},S{i:04d},A\n"
                  for i, s in enumerate(["alice", "bob", "carol", "dave", "erin"]))
    )  # fmt: skip
    overrides = base / "overrides.csv"
    overrides.write_text(
        "student,assignment,exercise,points,reason\n"
        "bob,backprop,relu_grad,1,partial credit after a regrade request\n"
    )
    course_flags = ["--roster", str(roster), "--overrides", str(overrides), "--due", DUE,
                    "--late-policy", "10%/day,cutoff=3d"]  # fmt: skip
    # 6. Grade, with a secret seed
    graded = base / "graded"
    typed(term, "autograde", "grade", str(submitted), "--out", str(graded), "--seed", "7177",
          "--workers", "2", "--quiet", *course_flags, ok=(0, 1))  # fmt: skip
    rows = {
        r["student"]: r for r in csv.DictReader(io.StringIO((graded / "grades.csv").read_text()))
    }
    assert (rows["alice"]["score"], rows["alice"]["status"]) == (str(FULL), "graded")
    # the new hidden test costs relu_grad's points; the override gives 1 back
    bob = (str(FULL - RELU), str(FULL - RELU + 1))
    assert (rows["bob"]["autograded"], rows["bob"]["score"]) == bob, rows["bob"]
    carol = float(rows["carol"]["score"])  # 2 days late at 10%/day
    assert carol == pytest.approx(FULL * 0.8) and "late" in rows["carol"]["flags"]
    assert rows["dave"]["score"] == "0" and "backprop.pdf" in rows["dave"]["message"]
    assert rows["erin"]["status"] == "missing"
    assert "not on roster" in rows["frank"]["flags"]
    summary = (graded / "summary.md").read_text()
    assert "partial credit after a regrade request" in summary
    (base / "summary.md").write_text(summary)  # for the closing note
    # 7. Export for Canvas and Moodle
    typed(term, "autograde", "export", str(graded), "--to", "canvas", "--out",
          str(base / "canvas.csv"), *course_flags, ok=(0, 1))  # fmt: skip
    canvas = list(csv.reader(io.StringIO((base / "canvas.csv").read_text())))
    assert canvas[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert canvas[1][0] == "Points Possible"
    by_id = {r[1]: r for r in canvas[2:]}
    assert by_id["40101"][5] == bob[1] and by_id["40104"][5] in ("0", "")  # bob; erin
    typed(term, "autograde", "export", str(graded), "--to", "moodle", "--out",
          str(base / "moodle.csv"), *course_flags, ok=(0, 1))  # fmt: skip
    moodle = list(csv.reader(io.StringIO((base / "moodle.csv").read_text())))
    assert moodle[0][:2] == ["Email address", "ID number"]
    print("SUMMARY.md\n" + summary + "\nCANVAS\n" + (base / "canvas.csv").read_text())
    # 8. Gradescope: the bundle, run as Gradescope runs it
    seed = base / "seed.txt"
    seed.write_text("7177\n")
    typed(term, "autograde", "gradescope", "--seed-file", str(seed), "--assignment",
          "backprop", "--out", str(base / "bundles"))  # fmt: skip
    bundle = base / "bundles" / "autograder-backprop.zip"
    python = bundled_python(bundle, base / "gradescope-venv")  # what setup.sh installs
    results = run_bundle(bundle, python, base / "autograder", submitted / "bob/backprop")
    assert results["score"] == FULL - RELU, results["output"]  # the hidden test ships too
    assert "relu_grad must not modify" not in json.dumps(results)


def run_bundle(bundle: Path, python: Path, root: Path, upload: Path) -> dict:
    """Gradescope's steps: the bundle unzipped into source/, the upload in submission/,
    source/run_autograder run; results/results.json."""
    (root / "source").mkdir(parents=True)
    with zipfile.ZipFile(bundle) as z:
        z.extractall(root / "source")
        for info in z.infolist():  # zipfile drops the rights: restore them
            os.chmod(root / "source" / info.filename, (info.external_attr >> 16) & 0o777)
    shutil.copytree(upload, root / "submission")
    env = {**gradescope_environ(), "AUTOGRADER_ROOT": str(root), "AUTOGRADE_PYTHON": str(python)}
    done = subprocess.run([root / "source" / "run_autograder"], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads((root / "results" / "results.json").read_text())
