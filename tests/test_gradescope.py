"""`autograde gradescope`: the bundle Gradescope takes, and what it does with each upload,
run in a simulated /autograder tree (source/ = the unzipped bundle, submission/, results/)
by the bundle's own run_autograder, with the grader installed from the bundle's wheel."""

from __future__ import annotations

import email
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nbformat
import pytest
from grading_tools import full_marks, validate_gradescope
from notebook_tools import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from backprop_lab.course import ASSIGNMENTS, exercises_for
from backprop_lab.plan.notebook import read_notebook, replace_function
from backprop_lab.verbs.bundle import CPU_TORCH_INDEX, python_floor
from backprop_lab.verbs.cli import main
from backprop_lab.verbs.gradescope import CONFIG

# the bundles are built once, and their grader's venv made once: one worker runs these tests
pytestmark = pytest.mark.xdist_group("gradescope")

SEED = 73512


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`autograde gradescope` as an instructor types it: one bundle per assignment."""
    tmp = tmp_path_factory.mktemp("bundle")
    (tmp / "seed.txt").write_text(f"{SEED}\n")
    argv = ["gradescope", "--seed-file", str(tmp / "seed.txt"), "--out", str(tmp / "out"),
            "--root", str(ROOT)]  # fmt: skip
    assert main(argv) == 0
    return {a: tmp / "out" / f"autograder-{a}.zip" for a in ASSIGNMENTS}


@pytest.fixture(scope="module")
def bundle(bundles: dict[str, Path]) -> Path:
    return bundles["backprop"]


def package_dirs() -> list[str]:
    """The folders the interpreter running these tests imports its packages from, in the
    order it searches them."""
    paths = sysconfig.get_paths()
    dirs = [*site.getsitepackages(), paths["purelib"], paths["platlib"]]
    if site.ENABLE_USER_SITE:
        dirs.insert(0, site.getusersitepackages())
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


@pytest.fixture(scope="module")
def grader_python(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the bundle's wheel installed over this environment's packages (torch
    and the rest, which setup.sh would download): the grader that runs is the bundled one."""
    return bundled_python(bundle, tmp_path_factory.mktemp("venv"))


def bundled_python(bundle: Path, venv: Path) -> Path:
    """The python of a new venv at `venv` whose grader is `bundle`'s wheel (see
    grader_python)."""
    # Not --system-site-packages: that reaches the base interpreter's packages, and when
    # the tests run in a venv, what is installed there (nbformat, torch...) is not.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    with zipfile.ZipFile(bundle) as z:
        [wheel] = [n for n in z.namelist() if n.endswith(".whl")]
        z.extract(wheel, venv)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", "--no-index", str(venv / wheel)], check=True)  # fmt: skip
    # Written after the install, so that pip sees a bare venv. Plain folder lines come after
    # the venv's own site-packages, and the .pth files in those folders are not run: this
    # environment's editable install of the grader (an __editable__ finder) stays out, so
    # the bundled wheel is the grader, and a module the wheel lacks fails here as it would
    # on Gradescope. Nothing else the grader needs is set up by a .pth (torch, the Jupyter
    # stack and the rest are plain folders; setuptools' distutils shim it never imports).
    ask = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site_packages = subprocess.run([python, "-I", "-c", ask], capture_output=True, text=True,
                                   check=True).stdout.strip()  # fmt: skip
    (Path(site_packages) / "running-environment.pth").write_text(
        "".join(f"{d}\n" for d in package_dirs())
    )
    where = subprocess.run([python, "-I", "-c", "import backprop_lab as p; print(p.__file__)"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert where.startswith(str(venv)), where
    return python


def run_gradescope(
    bundle: Path, python: Path, root: Path, upload: dict[str, bytes], **env: str
) -> dict:
    """Gradescope's steps for one submission: unzip the bundle into source/, put the upload
    in submission/, run source/run_autograder (with `env` added to the environment);
    return results/results.json."""
    (root / "source").mkdir(parents=True)
    with zipfile.ZipFile(bundle) as z:
        z.extractall(root / "source")
    for info in zipfile.ZipFile(bundle).infolist():  # zipfile drops the rights: restore them
        os.chmod(root / "source" / info.filename, (info.external_attr >> 16) & 0o777)
    (root / "submission").mkdir()
    for name, data in upload.items():
        (root / "submission" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "submission" / name).write_bytes(data)
    # without PYTHONPATH, which Gradescope does not set: the sandbox passes it on to the
    # kernels, and one naming a checkout (`PYTHONPATH=. pytest`) mixed it into the bundled
    # grader's imports there ("No module named 'backprop_lab.coursedata.checks'")
    env = {**gradescope_environ(), **env, "AUTOGRADER_ROOT": str(root),
           "AUTOGRADE_PYTHON": str(python)}  # fmt: skip
    done = subprocess.run([root / "source" / "run_autograder"], env=env, capture_output=True,
                          text=True, timeout=600, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads((root / "results" / "results.json").read_text())


def gradescope_environ() -> dict[str, str]:
    """This environment as Gradescope's container would have it: no PYTHONPATH."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def notebook_bytes(path: Path, edits=()) -> bytes:
    nb = read_notebook(path)
    for name, source in edits:
        nb = replace_function(nb, name, source)
    return nbformat.writes(nb).encode()


def test_one_bundle_per_assignment_named_for_it(
    bundles: dict[str, Path], grader_python: Path, tmp_path: Path
) -> None:
    assert sorted(p.name for p in bundles["backprop"].parent.iterdir()) == sorted(
        f"autograder-{a}.zip" for a in ASSIGNMENTS)  # fmt: skip
    for assignment, path in bundles.items():
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read(CONFIG))
            setup = z.read("setup.sh").decode()
        assert config["assignment"] == assignment
        # the build log and the script itself say which Gradescope assignment it is for
        points = full_marks(assignment)
        assert f"This bundle grades the {assignment} assignment ({points} points)" in setup
        # what setup.sh prints in Gradescope's build log, from the unzipped bundle
        root = tmp_path / assignment
        with zipfile.ZipFile(path) as z:
            z.extract(CONFIG, root / "source")
        described = subprocess.run(
            [grader_python, "-I", "-m", "backprop_lab.verbs.gradescope", "--root", str(root),
             "--describe"], capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert f"grades the {assignment} assignment, out of {points} points." in described


def test_one_assignment_s_bundle_on_request(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "seed.txt").write_text("5\n")
    argv = ["gradescope", "--seed-file", str(tmp_path / "seed.txt"), "--assignment", "matmul",
            "--out", str(tmp_path / "out"), "--root", str(ROOT)]  # fmt: skip
    assert main(argv) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["autograder-matmul.zip"]
    out = capsys.readouterr().out
    assert "autograder-matmul.zip: grades matmul (10 points); upload it to the Gradescope " \
           "assignment for matmul" in out  # fmt: skip


def test_out_is_a_folder_not_a_zip(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """An instructor used to `--out autograder.zip`: told what changed, nothing written."""
    (tmp_path / "seed.txt").write_text("5\n")
    argv = ["gradescope", "--seed-file", str(tmp_path / "seed.txt"), "--out",
            str(tmp_path / "autograder.zip"), "--root", str(ROOT)]  # fmt: skip
    assert main(argv) == 2
    assert "give a folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [tmp_path / "seed.txt"]


def test_the_bundle_holds_what_gradescope_runs(bundle: Path) -> None:
    with zipfile.ZipFile(bundle) as z:
        infos = {i.filename: i for i in z.infolist()}
        texts = {n: z.read(n) for n in infos}
    [wheel] = [n for n in infos if n.endswith(".whl")]
    assert set(infos) == {"setup.sh", "run_autograder", "constraints.txt", CONFIG, wheel,
                          "course_tests.json"}  # fmt: skip
    # the instructor's test cells, hidden tests included, of this assignment only, for the
    # grader's eyes only (0600, outside the sandbox's reach)
    tests = json.loads(texts["course_tests.json"])
    assert list(tests) == ["backprop"] and "### BEGIN HIDDEN TESTS" in tests["backprop"][
        "relu_grad_tests"]  # fmt: skip
    assert (infos["course_tests.json"].external_attr >> 16) & 0o777 == 0o600
    assert b"AUTOGRADE_COURSE_TESTS" in texts["run_autograder"]
    for script in ("setup.sh", "run_autograder"):
        assert (infos[script].external_attr >> 16) & 0o111, f"{script} is not executable"
        assert texts[script].startswith(b"#!/usr/bin/env bash\n")
        subprocess.run(["bash", "-n", "-c", texts[script].decode()], check=True)
    setup = texts["setup.sh"].decode()
    # the CPU build of the tested torch, then this very grader under the tested versions
    pin = next(line for line in texts["constraints.txt"].decode().splitlines()
               if line.startswith("torch=="))  # fmt: skip
    assert f'--no-deps --index-url {CPU_TORCH_INDEX} "{pin}"' in setup
    assert f'-c constraints.txt "./{wheel}"' in setup
    assert texts["constraints.txt"] == (ROOT / "constraints.txt").read_bytes()
    config = json.loads(texts[CONFIG])
    assert config["seed"] == SEED and config["assignment"] == "backprop"
    assert config["memory_mb"] <= 768 and config["time_budget"] < 600  # Gradescope's defaults
    # the seed travels in the config only, never in anything the kernel could be shown
    assert [n for n, t in texts.items() if str(SEED).encode() in t] == [CONFIG]
    with zipfile.ZipFile(bundle) as z, zipfile.ZipFile(z.open(wheel)) as w:
        names = set(w.namelist())
    assert {"backprop_lab/verbs/gradescope.py", "backprop_lab/kernel/wire.py",
            "backprop_lab/coursedata/__init__.py"} <= names  # fmt: skip
    # no answers where student code runs: Gradescope's grader works without the reference
    assert not [n for n in names if n.startswith("backprop_lab/reference/")]
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"backprop_lab"}
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "solutions/"))]


def pins(constraints: str) -> dict[str, list[str]]:
    """Each name in a constraints file -> its specifiers, as written (`["==2.13.0"]`)."""
    found: dict[str, list[str]] = {}
    for line in constraints.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            found.setdefault(canonicalize_name(req.name), []).extend(map(str, req.specifier))
    return found


def pinned_to_one_version(specifiers: list[str]) -> bool:
    return len(specifiers) == 1 and specifiers[0].startswith("==") and "*" not in specifiers[0]


def requirement_closure(requires: list[str]) -> dict[str, str]:
    """Every distribution that installing `requires` pulls in (for this Python and
    platform), with the version installed here: name -> version."""
    found: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(Requirement(r), frozenset({""})) for r in requires]
    while todo:
        req, extras = todo.pop()
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in extras):
            continue
        name = canonicalize_name(req.name)
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        dist = importlib.metadata.distribution(req.name)
        found[name] = dist.version
        todo += [(Requirement(r), frozenset({"", *req.extras})) for r in dist.requires or []]
    return found


def pip_installs(setup: str) -> list[list[str]]:
    """The arguments of each `pip install` in a shell script."""
    return [shlex.split(line)[shlex.split(line).index("install") + 1:]
            for line in setup.splitlines()
            if not line.lstrip().startswith("#") and "pip install" in line]  # fmt: skip


def test_every_package_the_image_installs_is_pinned_to_one_version(bundle: Path) -> None:
    """Two builds of Gradescope's image install the same versions: every requirement
    setup.sh names, and everything they pull in, is pinned by the bundled constraints
    (or, for torch from PyTorch's own index, on its line), to exactly one version."""
    with zipfile.ZipFile(bundle) as z:
        setup = z.read("setup.sh").decode()
        constraints = pins(z.read("constraints.txt").decode())
        [wheel] = [n for n in z.namelist() if n.endswith(".whl")]
        with zipfile.ZipFile(z.open(wheel)) as w:
            [meta] = [n for n in w.namelist() if n.endswith(".dist-info/METADATA")]
            requires = email.message_from_bytes(w.read(meta)).get_all("Requires-Dist") or []
    installs = pip_installs(setup)
    assert len(installs) == 2, installs  # torch, then the grader: nothing else, no pip upgrade
    needed: dict[str, str] = {}
    for args in installs:
        options_with_values = {"-c", "--constraint", "--index-url", "-i", "--extra-index-url"}
        named = [a for i, a in enumerate(args) if not a.startswith("-")
                 and args[i - 1] not in options_with_values]  # fmt: skip
        assert "--upgrade" not in args and "-U" not in args, args
        if "--no-deps" not in args:  # what pip resolves must come under the constraints
            assert args[args.index("-c") + 1] == "constraints.txt", args
        for spec in named:
            if spec.endswith(".whl"):
                assert spec == f"./{wheel}"
                needed |= requirement_closure(requires)
                continue
            req = Requirement(spec)  # named on its own line: pinned there, as in constraints
            assert pinned_to_one_version(list(map(str, req.specifier))), spec
            assert constraints[canonicalize_name(req.name)] == list(map(str, req.specifier))
            needed[canonicalize_name(req.name)] = str(req.specifier)
    # torch's own dependencies: installed with --no-deps, resolved with the grader
    needed |= requirement_closure(importlib.metadata.distribution("torch").requires or [])
    unpinned = sorted(n for n in needed if not pinned_to_one_version(constraints.get(n, [])))
    add = "".join(f"\n{n}=={needed[n]}" for n in unpinned)
    assert not unpinned, f"add these lines to constraints.txt (the versions tested here):{add}"
    assert len(needed) > 50  # the closure was walked, not just the wheel's own list


def test_one_supported_python_everywhere(bundle: Path) -> None:
    """pyproject.toml's requires-python is the one statement; the README says it once and
    the image Gradescope builds refuses an older Python with the same number."""
    major, minor = python_floor(ROOT / "pyproject.toml")
    assert sys.version_info >= (major, minor)
    readme = (ROOT / "README.md").read_text()
    stated = re.findall(r"Python (3\.\d+)", readme)
    assert stated == [f"{major}.{minor}"], stated  # once, and that one
    assert f"Python {major}.{minor} or newer" in readme
    with zipfile.ZipFile(bundle) as z:
        setup = z.read("setup.sh").decode()
    assert f"sys.version_info >= ({major}, {minor})" in setup
    assert f"needs Python {major}.{minor} or newer" in setup
    assert not re.findall(r"3\.1[0-9]", setup.replace(f"{major}.{minor}", "")
                          .replace("Python 3.12", ""))  # fmt: skip


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "no such file"), ("seventy\n", "one integer")],
)
def test_a_bad_seed_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture, content: str | None, expected: str
) -> None:
    seed = tmp_path / "seed.txt"
    if content is not None:
        seed.write_text(content)
    out = tmp_path / "out"
    assert main(["gradescope", "--seed-file", str(seed), "--out", str(out)]) == 2
    assert expected in capsys.readouterr().err.lower() and not out.exists()


def test_not_a_course_checkout_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "seed.txt").write_text("5\n")
    argv = ["gradescope", "--seed-file", str(tmp_path / "seed.txt"), "--root", str(tmp_path),
            "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 2
    assert "not the course's checkout (no pyproject.toml)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("upload", "says"),
    [
        ({}, "Your submission is empty"),
        ({"backprop.pdf": b"%PDF-1.7", "notes/matmul.py": b"print(1)\n"},
         "has no Jupyter notebook (it holds backprop.pdf, notes/matmul.py)"),
        ({"backprop.ipynb": b'{"cells": [ ,'}, "backprop.ipynb"),
    ],
    ids=["empty", "not-a-notebook", "broken-json"],
)  # fmt: skip
def test_an_upload_that_cannot_be_graded_gets_zero_and_what_to_do(
    bundle: Path, grader_python: Path, tmp_path: Path, upload: dict, says: str
) -> None:
    results = run_gradescope(bundle, grader_python, tmp_path / "autograder", upload)
    validate_gradescope(results, tests_required=False)
    assert results["score"] == 0 and results["tests"] == []
    assert says in results["output"]
    assert results["extra_data"]["status"] == "ungradeable"
    assert str(tmp_path) not in json.dumps(results)  # the student sees their own file names


def test_a_grader_that_cannot_start_still_leaves_results(bundle: Path, tmp_path: Path) -> None:
    results = run_gradescope(bundle, Path("/bin/false"), tmp_path / "autograder",
                             {"backprop.ipynb": b"{}"})  # fmt: skip
    validate_gradescope(results, tests_required=False)
    assert results["score"] == 0 and "could not start (exit 1)" in results["output"]
    assert "not your doing" in results["output"]


def test_a_broken_bundle_is_the_grader_s_fault_not_the_student_s(
    bundle: Path, grader_python: Path, tmp_path: Path
) -> None:
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    (root / "source" / CONFIG).write_text("{not json")
    shutil.copy(ROOT / "solutions/backprop/backprop.ipynb", tmp_path / "nb.ipynb")
    env = {**os.environ}
    done = subprocess.run([grader_python, "-I", "-m", "backprop_lab.verbs.gradescope",
                           "--root", str(root)],
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    validate_gradescope(results, tests_required=False)
    assert results["extra_data"]["status"] == "error"
    assert "JSONDecodeError" in results["output"] and "not your doing" in results["output"]


def solution(assignment: str) -> bytes:
    return notebook_bytes(ROOT / "solutions" / assignment / f"{assignment}.ipynb")


@pytest.mark.parametrize(
    ("expected", "uploaded", "name"),
    [("backprop", "matmul", "matmul.ipynb"), ("matmul", "backprop", "backprop.ipynb"),
     ("backprop", "matmul", "backprop.ipynb")],
    ids=["matmul-to-backprop", "backprop-to-matmul", "matmul-renamed-backprop"],
)  # fmt: skip
def test_another_assignment_s_notebook_gets_zero_and_which_is_which(
    bundles: dict[str, Path], grader_python: Path, tmp_path: Path,
    expected: str, uploaded: str, name: str,
) -> None:  # fmt: skip
    """A right answer to the other assignment earns nothing here (the file's name does
    not decide: its cells do), and the student reads what it is and where it goes."""
    results = run_gradescope(bundles[expected], grader_python, tmp_path / "autograder",
                             {name: solution(uploaded)})  # fmt: skip
    validate_gradescope(results, tests_required=False)
    assert results["score"] == 0 and results["tests"] == []
    assert results["output"] == (
        f"Not graded: you uploaded {name} (the {uploaded} assignment), but this Gradescope "
        f"assignment grades the {expected} assignment. Upload your {expected} notebook "
        f"here, and {name} to the Gradescope assignment for {uploaded}."
    )
    meta = results["extra_data"]
    assert meta["status"] == "ungradeable" and meta["assignment"] == expected
    assert meta["max_score"] == full_marks(expected)


@pytest.mark.slow
@pytest.mark.parametrize("expected", ["backprop", "matmul"])
def test_with_both_notebooks_only_the_expected_one_counts(
    bundles: dict[str, Path], grader_python: Path, tmp_path: Path, expected: str
) -> None:
    """Every assignment's right answer uploaded to one: its points, never the sum (the
    bundle that graded everything gave 25 on a 15-point assignment)."""
    others = ", ".join(f"{a}.ipynb (the {a} assignment)" for a in ASSIGNMENTS if a != expected)
    upload = {f"{a}.ipynb": solution(a) for a in ASSIGNMENTS}
    results = run_gradescope(bundles[expected], grader_python, tmp_path / "autograder", upload)
    validate_gradescope(results)
    assert results["score"] == full_marks(expected) == results["extra_data"]["max_score"]
    cells = {e.cell for e in exercises_for(expected)}
    assert {t["number"] for t in results["tests"]} == cells
    assert results["output"].startswith(
        f"Graded {expected}.ipynb. Not graded here: {others}; "
        f"this Gradescope assignment grades only the {expected} assignment.\n"
    ), results["output"]


@pytest.mark.slow
def test_a_correct_notebook_gets_full_marks_and_a_copy_costs_nothing(
    bundle: Path, grader_python: Path, tmp_path: Path
) -> None:
    right = notebook_bytes(ROOT / "solutions/backprop/backprop.ipynb")
    no_mean = "def mse_grad(inp, targ):\n    inp.g = 2. * (inp.squeeze() - targ).unsqueeze(-1)\n"
    wrong = notebook_bytes(ROOT / "solutions/backprop/backprop.ipynb", [("mse_grad", no_mean)])
    upload = {"backprop.ipynb": right, "old/backprop-Copy1.ipynb": wrong}
    results = run_gradescope(bundle, grader_python, tmp_path / "autograder", upload)
    validate_gradescope(results)
    assert results["score"] == full_marks("backprop") == results["extra_data"]["max_score"]
    assert all(t["score"] == t["max_score"] for t in results["tests"])
    assert results["output"].startswith("Graded backprop.ipynb. Also uploaded, not counted")
    assert "old/backprop-Copy1.ipynb (" in results["output"]
    assert "graded with the instructor's seed" in results["output"]
    assert str(SEED) not in json.dumps({k: v for k, v in results.items() if k != "extra_data"})
    assert results["extra_data"]["seed"] == SEED and results["extra_data"]["status"] == "graded"


@pytest.mark.skipif(os.geteuid() != 0, reason="Gradescope's container runs the grader as root")
def test_in_gradescope_s_container_it_grades_and_says_how_isolated(
    bundle: Path, grader_python: Path, tmp_path: Path
) -> None:
    """The policy, in a simulated Gradescope container (root, user namespaces refused):
    grade, with Landlock, seccomp and the keeper, and say so on every result."""
    upload = {"backprop.ipynb": notebook_bytes(ROOT / "solutions/backprop/backprop.ipynb")}
    results = run_gradescope(bundle, grader_python, tmp_path / "autograder", upload,
                             AUTOGRADE_SANDBOX_SIMULATE="namespaces=0")  # fmt: skip
    validate_gradescope(results)
    full = full_marks("backprop")
    assert results["score"] == results["extra_data"]["max_score"] == full, results["output"]
    assert "partly isolated" in results["extra_data"]["isolation"]
    assert "For the course staff: student code is only partly isolated" in results["output"]
    plain = run_gradescope(bundle, grader_python, tmp_path / "plain", upload)
    assert plain["extra_data"]["isolation"].startswith("isolated")
    assert "For the course staff" not in plain["output"]
