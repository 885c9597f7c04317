"""The verbs that grade more than one notebook in one process, run as a user runs them: a
fresh process, started from a shell, with a time limit that catches a hang. A test that
calls `main()` inside pytest takes another path (pytest has imported torch first, so the
grader never forks from itself there) and stays green while the typed command hangs.

The hang such a test missed: a process that forked a notebook's process from itself after
its first grading, when its torch had started threads the child waited on forever. The
grader no longer forks from itself at all (test_secrets.py says why)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from grading_tools import full_marks
from notebook_tools import ROOT

# Far above what each command needs on 2 cores (10-40 s), far below a hung cell's 120 s.
TIMEOUT = 110


def typed(*argv: str, cwd: Path = ROOT, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """`autograde ARGV...` as typed in a shell: the console script installed beside this
    interpreter, in a new process with this environment."""
    script = Path(sys.executable).parent / "autograde"
    assert script.is_file(), "reinstall with: python -m pip install -e '.[dev]'"
    try:
        return subprocess.run([str(script), *argv], cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`autograde {' '.join(argv)}` hung: still running after {timeout} s\n"
                    f"{exc.stdout or ''}{exc.stderr or ''}")  # fmt: skip


def python(script: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the script hung: still running after {timeout} s\n{exc.stdout or ''}")


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["inprocess", "kernel"])
def test_one_process_grades_three_notebooks_in_turn(engine: str) -> None:
    """backprop, matmul, backprop, in one fresh process, with torch's thread pool started
    between them as any program that grades in a loop may start it."""
    done = python(f"""
        from pathlib import Path
        import torch
        from backprop_lab.pipeline import Options, grade

        for name in ("backprop", "matmul", "backprop"):
            nb = Path("solutions") / name / f"{{name}}.ipynb"
            r = grade(nb, Options(assignment=name, engine={engine!r}, cell_timeout=60))
            print(name, f"{{r.score.total}}/{{r.score.max_total}}", *r.score.notes, flush=True)
            torch.ones(2000, 2000).sum(0)  # a parallel operation: the pool starts
    """, timeout=240 if engine == "kernel" else TIMEOUT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    b, m = full_marks("backprop"), full_marks("matmul")
    assert done.stdout.splitlines() == [f"backprop {b}/{b}", f"matmul {m}/{m}", f"backprop {b}/{b}"]


def test_verify_as_typed() -> None:  # in the fast suite too: about 10 s
    done = typed("verify")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    m, b = full_marks("matmul"), full_marks("backprop")
    assert f"ok  solution   solutions/matmul/matmul.ipynb: {m}/{m} (want full marks)" in lines
    assert f"ok  assignment assignments/backprop/backprop.ipynb: 0/{b} (want 0)" in lines
    assert lines[-1] == "verify: all good"


@pytest.mark.slow
def test_the_pytest_form_as_typed(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "backprop_lab.verbs.grading", "-p",
         "no:cacheprovider", "--autograde-notebook",
         str(ROOT / "solutions/matmul/matmul.ipynb")],
        cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"autograde: {full_marks('matmul')}/{full_marks('matmul')} points for" in done.stdout


@pytest.mark.slow
def test_ci_grade_of_two_changed_notebooks_as_typed(tmp_path: Path) -> None:
    from test_ci import copy_course

    base = copy_course(tmp_path / "base")
    head = tmp_path / "head"
    shutil.copytree(base, head)
    for name in ("matmul", "backprop"):  # the pull request: both assignments done
        shutil.copy(ROOT / "solutions" / name / f"{name}.ipynb",
                    head / "assignments" / name / f"{name}.ipynb")  # fmt: skip
    summary = tmp_path / "summary.md"
    done = typed("ci-grade", "--base", str(base), "--head", str(head), "--summary",
                 str(summary), "--out", str(tmp_path / "graded"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    md = summary.read_text()
    m, b = full_marks("matmul"), full_marks("backprop")
    assert f"matmul.ipynb (matmul): {m}/{m}" in md, md
    assert f"backprop.ipynb (backprop): {b}/{b}" in md, md
