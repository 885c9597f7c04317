"""Hostile and broken submissions: each gets a fair score and a message that says what
happened, within its time limits, and the batch records every one of them. Cheating is
reported for a person to judge, never silently zeroed, and cannot forge a grade.

The corpus is graded once, as a class, with short limits (10 s a cell, 3 s a call)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
import torch
from notebook_tools import ROOT
from test_grader_mistakes import COURSE_BACKPROP, edited, fn

from autograder.batch import grade_submissions
from autograder.gradebook import read_grades_csv
from autograder.harvest import HarvestError, read_harvest
from autograder.integrity import checksum
from autograder.pipeline import Options, grade

SOLUTION = ROOT / "solutions/backprop/backprop.ipynb"
STUB = ROOT / "assignments/backprop/backprop.ipynb"
LIMITS = Options(seed=3, cell_timeout=10, call_timeout=3)


@dataclass(frozen=True)
class Hostile:
    id: str
    make: object  # () -> NotebookNode | bytes
    score: int | None  # None: could not be graded
    phrases: tuple[str, ...]  # each must appear in the submission's output


def solution_with(*edits) -> nbformat.NotebookNode:
    return edited(SOLUTION, edits)


def student_done() -> nbformat.NotebookNode:
    """A student notebook (with nbgrader's checksums) completed with the course's code."""
    return edited(STUB, COURSE_BACKPROP)


def without_cell(grade_id: str) -> nbformat.NotebookNode:
    nb = student_done()
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != grade_id]
    return nb


def with_edited_cell(grade_id: str, source: str) -> nbformat.NotebookNode:
    nb = student_done()
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            c.source = source
    return nb


def with_duplicate(grade_id: str) -> nbformat.NotebookNode:
    nb = student_done()
    i = next(
        i for i, c in enumerate(nb.cells)
        if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id
    )  # fmt: skip
    nb.cells.insert(i + 1, nbformat.from_dict(nb.cells[i]))
    nb.cells[i + 1]["id"] = "duplicate-cell"
    return nb


def without_kernelspec() -> nbformat.NotebookNode:
    nb = nbformat.read(SOLUTION, as_version=4)
    nb.metadata.pop("kernelspec", None)
    return nb


AUTOGRAD_LIN_GRAD = fn("lin_grad", """
x, ww, bb = (t.detach().requires_grad_() for t in (inp, w, b))
(x @ ww + bb).backward(out.g)
inp.g, w.g, b.g = x.grad, ww.grad, bb.grad
""", "inp, out, w, b")  # fmt: skip

PATCH_ALLCLOSE = "torch.allclose = lambda *a, **k: True\n\n" + fn(
    "mse_grad", "inp.g = 2.0 * (inp[:, 0] - targ).unsqueeze(-1) / inp.shape[0]", "inp, targ"
)
REPLACE_HARVEST = (
    "__autograde__['harvest'] = lambda path: None\n\n"
    "def mse_grad(inp, targ):\n    raise NotImplementedError()\n"
)

PRINT_FLOOD = "for _ in range(200_000):\n    print('x' * 100)\n\n" + fn(
    "mse_grad", "inp.g = 2.0 * (inp[:, 0] - targ).unsqueeze(-1) / inp.shape[0]", "inp, targ"
)
# catches the kernel's own alarm and carries on: only the executor's backstop stops it
SWALLOW = """
while True:
    try:
        while True:
            pass
    except BaseException:
        pass
"""

# the plan, inputs and results are not in the notebook's working directory
READ_PLAN = """
import os
assert not [f for f in os.listdir('.') if f.startswith(('plan', 'inputs', 'results'))]
""" + fn("mse_grad", "inp.g = 2.0 * (inp[:, 0] - targ).unsqueeze(-1) / inp.shape[0]", "inp, targ")

OUTSIDE = Path.home() / "autograde-was-here.txt"
WRITE_HOME = f"open({str(OUTSIDE)!r}, 'w').write('hello')\n\n" + fn(
    "mse_grad", "inp.g = 2.0 * (inp[:, 0] - targ).unsqueeze(-1) / inp.shape[0]", "inp, targ"
)

MSE_OK = fn("mse_grad", "inp.g = 2.0 * (inp[:, 0] - targ).unsqueeze(-1) / inp.shape[0]",
            "inp, targ")  # fmt: skip
# results forged beside the notebook, then the grader's cell sabotaged so it never writes
PLANT_RESULTS = (
    """
import json, torch
json.dump({"calls": {}, "defined": []}, open("../grader/results.json", "w"))
torch.save({}, "../grader/results.pt")
__autograde__ = None
"""
    + MSE_OK
)
EDIT_PLAN = (
    """
with open("../grader/plan.json", "a") as f:
    f.write(" ")
"""
    + MSE_OK
)

CORPUS = (
    Hostile("autograd-inside-lin-grad",
            lambda: solution_with(("lin_grad", AUTOGRAD_LIN_GRAD, None)),
            15, ("Integrity: lin_grad calls PyTorch's autograd",)),
    Hostile("imports-the-reference", lambda: solution_with(("lin_grad", fn(
                "lin_grad", "from reference.backprop import lin_grad as r\nr(inp, out, w, b)",
                "inp, out, w, b"), None)),
            15, ("imported the grader's `reference` package",)),
    Hostile("patches-torch-allclose", lambda: solution_with(("mse_grad", PATCH_ALLCLOSE, None)),
            15, ("the notebook replaced torch.allclose",)),
    Hostile("replaces-the-harvest", lambda: solution_with(("mse_grad", REPLACE_HARVEST, None)),
            10, ("mse_grad is not implemented yet",)),
    Hostile("edited-test-cell", lambda: with_edited_cell("lin_grad_tests", "pass"),
            15, ("the locked cell `lin_grad_tests` was edited",)),
    Hostile("deleted-test-cell", lambda: without_cell("relu_grad_tests"),
            15, ("the test cell `relu_grad_tests` was deleted",)),
    Hostile("duplicated-solution-cell", lambda: with_duplicate("mse_grad"),
            15, ("the cell `mse_grad` appears 2 times",)),
    Hostile("kernel-exits", lambda: solution_with(("relu_grad", fn(
                "relu_grad", "import os\nos._exit(1)", "inp, out"), None)),
            0, ("the kernel died",)),
    Hostile("kills-the-grading-process", lambda: solution_with(("mse_grad", MSE_OK
                + "\nimport os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n", None)),
            15, ("send signals only to itself",)),
    Hostile("hangs-in-mse-grad", lambda: solution_with(("mse_grad", fn(
                "mse_grad", "while True:\n    pass", "inp, targ"), None)),
            10, ("did not finish in time", "longer than the 10 s limit")),
    Hostile("raises-system-exit", lambda: solution_with(("relu_grad", fn(
                "relu_grad", "raise SystemExit(0)", "inp, out"), None)),
            10, ("raised SystemExit",)),
    Hostile("asks-for-4-terabytes", lambda: solution_with(("lin_grad", fn(
                "lin_grad", "big = torch.empty(10**12)\ninp.g = out.g @ w.t()", "inp, out, w, b"),
                None)),
            9, ("lin_grad", "memory")),
    Hostile("eats-12-gigabytes", lambda: solution_with(("lin_grad", fn(
                "lin_grad", "big = torch.ones(3 * 10**9)\ninp.g = out.g @ w.t()",
                "inp, out, w, b"), None)),
            9, ("lin_grad ran out of memory",)),
    Hostile("prints-20-megabytes", lambda: solution_with(("mse_grad", PRINT_FLOOD, None)),
            15, ("15/15",)),
    Hostile("swallows-the-timeouts", lambda: solution_with(("mse_grad", fn(
                "mse_grad", SWALLOW, "inp, targ"), None)),
            0, ("a cell ran longer than the 40 s limit",)),
    Hostile("no-kernelspec", without_kernelspec, 15, ("15/15",)),
    Hostile("renamed-function", lambda: solution_with(("lin_grad", fn(
                "linear_grad", "inp.g = out.g @ w.t()\nw.g = inp.t() @ out.g\nb.g = out.g.sum(0)",
                "inp, out, w, b"), None)),
            9, ("did you mean to name `linear_grad` `lin_grad`?",)),
    Hostile("syntax-error-in-a-cell", lambda: solution_with(("mse_grad", fn(
                "mse_grad", "inp.g = 2.0 * (inp[:, 0] - targ.unsqueeze(-1) / inp.shape[0]",
                "inp, targ"), None)),
            10, ("SyntaxError", "the notebook defines no `mse_grad`")),
    Hostile("infinite-recursion", lambda: solution_with(("relu_grad", fn(
                "relu_grad", "relu_grad(inp, out)", "inp, out"), None)),
            10, ("RecursionError",)),
    Hostile("no-cells-left", lambda: nbformat.v4.new_notebook(), 0,
            ("the notebook defines no `mse_grad`",)),
    Hostile("reads-the-grader-s-files", lambda: solution_with(("mse_grad", READ_PLAN, None)),
            15, ("15/15",)),
    Hostile("writes-outside-its-folder", lambda: solution_with(("mse_grad", WRITE_HOME, None)),
            10, ("confines file writes to the notebook's folder",)),
    Hostile("plants-results-and-breaks-the-grader", lambda: solution_with(
                ("mse_grad", PLANT_RESULTS, None)),
            0, ("the grader's cell at the end of the notebook did not finish",)),
    Hostile("edits-the-grader-s-plan", lambda: solution_with(("mse_grad", EDIT_PLAN, None)),
            15, ("the notebook changed the grader's file plan.json",)),
    Hostile("notebook-format-2", lambda: b'{"nbformat": 2, "nbformat_minor": 0, "cells": []}',
            None, ("has notebook format 2",)),
    Hostile("not-utf-8", lambda: b"\xff\xfe{\x00", None, ("not UTF-8",)),
    Hostile("not-json", lambda: b"{this is not json", None, ("not valid notebook JSON",)),
    Hostile("empty-file", lambda: b"", None, ("is empty",)),
    Hostile("not-a-notebook", lambda: b'{"cells": "nope", "nbformat": 4}', None,
            ("not a valid notebook",)),
)  # fmt: skip


def write_submission(path: Path, made: nbformat.NotebookNode | bytes) -> None:
    """A notebook, or bytes that only pretend to be one."""
    path.parent.mkdir(parents=True)
    if isinstance(made, bytes):
        path.write_bytes(made)
    else:
        nbformat.write(made, path)


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("hostile")
    for h in CORPUS:
        write_submission(root / "class" / h.id / "backprop.ipynb", h.make())
    summary = grade_submissions([root / "class"], root / "out", options=LIMITS, workers=2,
                                progress=False)  # fmt: skip
    assert len(summary.records) == len(CORPUS)  # a record for every submission
    return {r["extra_data"]["student"]: r for r in summary.records}


@pytest.mark.slow
@pytest.mark.parametrize("hostile", CORPUS, ids=lambda h: h.id)
def test_hostile_submission_gets_its_score_and_message(graded, hostile: Hostile) -> None:
    record = graded[hostile.id]
    text = record["output"] + "\n" + "\n".join(t["output"] for t in record["tests"])
    if hostile.score is None:
        assert record["extra_data"]["status"] == "ungradeable"
        assert record["score"] == 0
    else:
        assert record["extra_data"]["status"] == "graded", text
        assert record["score"] == hostile.score, text
    for phrase in hostile.phrases:
        assert phrase in text, text
    assert not OUTSIDE.exists()


def test_our_checksum_is_nbgrader_s() -> None:
    from nbgrader.utils import compute_checksum

    nb = nbformat.read(STUB, as_version=4)
    cells = [c for c in nb.cells if "checksum" in c.metadata.get("nbgrader", {})]
    assert cells
    for cell in cells:
        assert checksum(cell) == compute_checksum(cell) == cell.metadata.nbgrader["checksum"]


class Payload:
    def __reduce__(self):
        return (print, ("this ran in the grader",))


def test_a_pickle_in_the_results_is_refused(tmp_path: Path) -> None:
    torch.save({"k|return": Payload()}, tmp_path / "results.pt")
    (tmp_path / "results.json").write_text(json.dumps({"calls": {}, "defined": []}))
    with pytest.raises(HarvestError, match="not plain data"):
        read_harvest(tmp_path)


@pytest.mark.slow
def test_the_whole_notebook_has_a_time_limit(tmp_path: Path) -> None:
    nb = solution_with(("mse_grad", fn("mse_grad", "while True:\n    pass", "inp, targ"), None))
    path = tmp_path / "backprop.ipynb"
    nbformat.write(nb, path)
    result = grade(path, Options(cell_timeout=5, notebook_timeout=8))
    assert result.score.total == 0
    assert any("past its total limit of 8 s" in n for n in result.score.notes)
    assert result.seconds < 40


@pytest.mark.slow
def test_a_class_of_200_survives_a_kill_and_is_finished_by_the_next_run(tmp_path: Path) -> None:
    # the corpus (but the two slow hangs) with full and empty answers, round-robin
    pool = [(h.make(), h.score) for h in CORPUS
            if h.id not in ("swallows-the-timeouts", "hangs-in-mse-grad")]  # fmt: skip
    pool += [(nbformat.read(SOLUTION, as_version=4), 15), (nbformat.read(STUB, as_version=4), 0)]
    expected = {}
    for i in range(200):
        made, score = pool[i % len(pool)]
        write_submission(tmp_path / "class" / f"s{i:03d}" / "backprop.ipynb", made)
        expected[f"s{i:03d}"] = score or 0
    out = tmp_path / "out"
    argv = ["grade", str(tmp_path / "class"), "--out", str(out), "--workers", "2", "--quiet",
            "--seed", "3", "--cell-timeout", "10", "--call-timeout", "3"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "autograder.cli", *argv],
        start_new_session=True,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while len(list(out.glob("*/*/results.json"))) < 20 and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = len(list(out.glob("*/*/results.json")))
    assert 20 <= finished < 200, "the run was meant to be killed half-way"

    summary = grade_submissions([tmp_path / "class"], out, options=LIMITS, workers=2,
                                progress=False)  # fmt: skip
    assert len(summary.records) == 200 and summary.skipped == finished  # none regraded
    rows = read_grades_csv(out / "grades.csv")
    assert len(rows) == 200
    assert {r["status"] for r in rows} <= {"graded", "ungradeable"}  # no grader error
    assert {r["student"]: int(r["score"]) for r in rows} == expected
