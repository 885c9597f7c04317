"""Nothing secret enters the notebook's process: not the grader's environment (tokens,
keys), not its memory (the grader never forks a notebook's process from itself: a forked
child can read all of its parent's memory, whatever the sandbox), and not the grading seed.
Each attack is a notebook graded by a fresh process, as typed, with secrets planted."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from grading_tools import full_marks
from notebook_tools import ROOT, SOLUTION

from backprop_lab.options import DEFAULT_SEED

# Run in the mse_grad answer cell (the clean room runs it): everything of the grader's
# environment and memory the notebook's process can find, raised as the cell's error so
# that it lands in every report.
LOOKS_FOR_SECRETS = """
import gc, os, posix, re

def _found():
    seen = [repr(dict(os.environ)), repr(dict(os.environb)), repr(posix.environ)]
    for name in ("/proc/self/environ", "/proc/1/environ", f"/proc/{os.getppid()}/environ"):
        try:
            with open(name, "rb") as f:
                seen.append(f.read().decode("utf-8", "replace"))
        except OSError:
            pass
    for o in gc.get_objects():  # the heap: module globals, options, dicts of any kind
        if isinstance(o, dict):
            seen += [v for v in list(o.values()) if isinstance(v, str) and "canary-" in v]
    return sorted({t for s in seen for t in re.findall("canary-[0-9a-f]+", s)})

_leaks = _found()
if _leaks:
    raise RuntimeError("found: " + " | ".join(_leaks))

def mse_grad(inp, targ):
    inp.g = 2. * (inp.squeeze(-1) - targ).unsqueeze(-1) / inp.shape[0]
"""


def _notebook(folder: Path) -> Path:
    nb = nbformat.read(SOLUTION["backprop"], as_version=4)
    answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")
                  == "mse_grad")  # fmt: skip
    answer.source = LOOKS_FOR_SECRETS
    path = folder / "class" / "mallory" / "backprop.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)
    return path


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["inprocess", "kernel"])
def test_the_grader_s_environment_stays_out(tmp_path: Path, engine: str) -> None:
    """`autograde grade` typed with a token in its environment: the notebook raises with
    everything it can find, and no file the grading writes holds the token. A variable the
    notebook may see (a thread setting) is found, so the search did run."""
    _notebook(tmp_path)
    token, control = (f"canary-{secrets.token_hex(8)}" for _ in range(2))
    env = {**os.environ, "AUTOGRADE_TEST_SECRET": token, "GITHUB_TOKEN": token,
           "OMP_AUTOGRADE_CONTROL": control}  # fmt: skip
    script = Path(sys.executable).parent / "autograde"
    done = subprocess.run([str(script), "grade", str(tmp_path / "class"), "--out",
                           str(tmp_path / "out"), "--engine", engine],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    # `import gc` and the rest are flagged for a person (answer_scan): status review
    assert "1 need a person" in done.stdout + done.stderr, done.stdout + done.stderr
    written = _all_bytes(tmp_path / "out")
    assert control.encode() in written  # the search ran and reported what it found
    assert token.encode() not in written
    assert token not in done.stdout + done.stderr


@pytest.mark.slow
def test_the_grader_s_memory_stays_out(tmp_path: Path) -> None:
    """A program that grades (as `check`, `verify` and `ci-grade` do) and holds a secret
    in its memory and its environment: the notebook's process holds neither."""
    path = _notebook(tmp_path)
    token, control = (f"canary-{secrets.token_hex(8)}" for _ in range(2))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os
        from pathlib import Path
        from backprop_lab.pipeline import Options, grade

        HELD = {{"token": {token!r}}}  # the grader's own state, as options and keys are
        os.environ["AUTOGRADE_TEST_SECRET"] = HELD["token"]
        os.environ["OMP_AUTOGRADE_CONTROL"] = {control!r}
        r = grade(Path({str(path)!r}), Options(assignment="backprop"))
        print(r.score.total, *r.score.notes, sep="\\n")
    """)], cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert control in done.stdout, done.stdout
    assert token not in done.stdout, done.stdout


GRADING_SEED = "73512"  # an instructor's; the students' is DEFAULT_SEED


@pytest.mark.slow
def test_the_grading_seed_stays_with_the_instructor(tmp_path: Path) -> None:
    """Graded with an instructor's seed: the notebook's own `seed` parameter is the
    students' one; no file a student receives names the grading seed, grades.csv does."""
    nb = nbformat.read(SOLUTION["backprop"], as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell('raise RuntimeError(f"my seed is {seed}")'))
    (tmp_path / "class" / "eve").mkdir(parents=True)
    nbformat.write(nb, tmp_path / "class" / "eve" / "backprop.ipynb")
    script = Path(sys.executable).parent / "autograde"
    done = subprocess.run([str(script), "grade", str(tmp_path / "class"), "--out",
                           str(tmp_path / "out"), "--seed", GRADING_SEED],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    student = tmp_path / "out" / "submissions" / "eve" / "backprop"
    results = (student / "results.json").read_text()
    assert f"my seed is {DEFAULT_SEED}" in results  # what the notebook was given
    record = json.loads(results)
    pages = [(student / name).read_text() for name in ("feedback.html", "feedback.md")]
    shown = [record["output"], *(t["output"] for t in record["tests"]), *pages]
    assert record["score"] == full_marks("backprop")
    assert all(GRADING_SEED not in text for text in shown)
    assert "graded with the instructor's seed" in record["output"]
    assert record["extra_data"]["seed"] == int(GRADING_SEED)  # for the instructor
    assert (tmp_path / "out" / "grades.csv").read_text().splitlines()[1].endswith(GRADING_SEED)


@pytest.mark.slow
def test_the_pull_request_comment_does_not_name_the_seed(tmp_path: Path) -> None:
    from test_ci import copy_course

    base = copy_course(tmp_path / "base")
    head = tmp_path / "head"
    shutil.copytree(base, head)
    shutil.copy(SOLUTION["backprop"], head / "assignments" / "backprop" / "backprop.ipynb")
    summary = tmp_path / "summary.md"
    script = Path(sys.executable).parent / "autograde"
    done = subprocess.run([str(script), "ci-grade", "--base", str(base), "--head", str(head),
                           "--summary", str(summary), "--out", str(tmp_path / "graded")],
                          env={**os.environ, "AUTOGRADE_SEED": GRADING_SEED}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    md = summary.read_text()
    full = full_marks("backprop")
    assert f"backprop.ipynb (backprop): {full}/{full}" in md and "the instructor's seed" in md, md
    assert GRADING_SEED not in md + done.stdout
