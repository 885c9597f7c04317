"""Hostile and broken submissions: each gets a fair score and a message that says what
happened, within its time limits, and the batch records every one of them. Cheating is
reported for a person to judge, never silently zeroed, and cannot forge a grade.

The corpus is graded once, as one class with 25 honest classmates mixed in, with short
limits (10 s a cell, 3 s a call). The attacks that need the operating-system sandbox
(reading classmates' files, killing or stopping other processes, writing outside, leaving
processes behind) run with it; tests/test_sandbox.py attacks the sandbox directly."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
import torch
from grading_tools import full_marks
from notebook_tools import SOLUTION, STUB, edited, fn
from process_tools import processes_with
from right_answers import course_notebook

from backprop_lab.course import exercises_for
from backprop_lab.gradebook.batch import grade_submissions
from backprop_lab.gradebook.grades import read_grades_csv
from backprop_lab.judge.readback import HarvestError, read_harvest
from backprop_lab.kernel import RESULTS_MIME, SCHEMA
from backprop_lab.pipeline import Options, grade
from backprop_lab.plan.calls import AUTOGRADER_TAG
from backprop_lab.plan.edits import checksum

LIMITS = Options(seed=3, cell_timeout=10, call_timeout=3)


# What attackers aim at, outside any notebook's folder: an instructor's file, and the
# class's output folder (the fixture grades into it). Paths fixed when this module is
# imported, so the corpus can be built before the fixture runs, and this process's own
# (its pid in them): another test process, an xdist worker or another run beside this
# one, neither shares nor removes them. The fixture makes them and removes them.
TARGETS = Path(tempfile.gettempdir()) / f"autograde-hostile-{os.getuid()}-{os.getpid()}"
VICTIM = TARGETS / "instructor" / "grades.csv"
CLASS_OUT = TARGETS / "out"
# in the command line of processes an attacker leaves; this process's own, so that no
# other test process's attacker is counted (or missed) here
MARKER = f"autograde-left-behind-{os.getpid()}"
# the tests that read the class graded once: on one worker (tests/conftest.py)
HOSTILE_CLASS = pytest.mark.xdist_group("hostile-class")


@dataclass(frozen=True)
class Hostile:
    id: str
    make: object  # () -> NotebookNode | bytes
    score: int | None  # None: could not be graded
    phrases: tuple[str, ...]  # each must appear in the submission's output
    status: str = "graded"


def solution_with(*edits) -> nbformat.NotebookNode:
    return edited(SOLUTION["backprop"], edits)


def student_done() -> nbformat.NotebookNode:
    """A student notebook (with nbgrader's checksums) completed with the course's code."""
    return course_notebook("backprop")


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


def stub_with_cell(source: str) -> nbformat.NotebookNode:
    """The untouched student notebook with one cell of the attacker's at the end."""
    nb = nbformat.read(STUB["backprop"], as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(source))
    return nb


def without_kernelspec() -> nbformat.NotebookNode:
    nb = nbformat.read(SOLUTION["backprop"], as_version=4)
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

MSE_OK = fn("mse_grad", "inp.g = 2.0 * (inp[:, 0] - targ).unsqueeze(-1) / inp.shape[0]",
            "inp, targ")  # fmt: skip

# Answers forged from the grader's own cell: its source carries the plan and the inputs.
# The forger computes mse_grad's right answers and sends a results message of its own.
FORGE = """
import ast, base64, io, json, torch
from IPython.display import publish_display_data

def forge(raw_cell):
    tree = ast.parse(raw_cell)
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and len(n.args) == 2
                and all(isinstance(a, ast.Constant) for a in n.args))
    plan, inputs = (ast.literal_eval(a) for a in call.args)
    inputs = torch.load(io.BytesIO(base64.b64decode(inputs)), weights_only=True)
    calls, tensors = {}, {}
    for c in json.loads(plan)["calls"]:
        if c["protocol"] != "mse_grad":
            continue
        inp, targ = inputs[c["key"]]["inp"], inputs[c["key"]]["targ"]
        tensors[c["key"] + "|inp.g"] = 2. * (inp[:, 0] - targ).unsqueeze(-1) / inp.shape[0]
        calls[c["key"]] = {"picked": "cell", "seconds": 0.0, "values": {
            "return": {"kind": "none"},
            "inp.g": {"kind": "tensor", "dtype": str(inp.dtype)[6:], "device": "cpu",
                      "shape": list(inp.shape)}}}
    buf = io.BytesIO()
    torch.save(tensors, buf)
    publish_display_data({"@MIME@": {"results": {"calls": calls, "defined": ["mse_grad"]},
                                 "tensors": base64.b64encode(buf.getvalue()).decode()}})
""".replace("@MIME@", RESULTS_MIME)
FORGE_AFTER = (
    FORGE
    + """
get_ipython().events.register("post_run_cell", lambda result: forge(result.info.raw_cell))
"""
)
FORGE_BEFORE = (
    FORGE
    + """
get_ipython().events.register("pre_run_cell", lambda info: forge(info.raw_cell))
"""
)
FORGE_FROM_A_THREAD = (
    FORGE
    + """
import threading, time
from IPython import get_ipython

def keep_forging():
    forged = False
    while True:
        raw = get_ipython().user_ns.get("_ih", [""])[-1]
        if "__autograde_" "harvest__" in raw and not forged:  # the grader's cell
            forge(raw)
            forged = True
        time.sleep(0.001)

threading.Thread(target=keep_forging, daemon=True).start()
"""
)

# the grader's plan, inputs and results are nowhere the notebook can look
LOOKS_AROUND = (
    """
import glob, os
assert not glob.glob("../grader*") and not glob.glob("/tmp/autograde-*/grader")
assert [p for p in os.listdir("/proc") if p.isdigit()] == ["1"] or os.name != "posix"
"""
    + MSE_OK
)

OUTSIDE = Path.home() / "autograde-was-here.txt"
WRITE_HOME = f"open({str(OUTSIDE)!r}, 'w').write('hello')\n\n" + MSE_OK
PRINT_FLOOD = "for _ in range(200_000):\n    print('x' * 100)\n\n" + MSE_OK
# catches the kernel's own alarm and carries on: only the executor's backstop stops it
SWALLOW = """
while True:
    try:
        while True:
            pass
    except BaseException:
        pass
"""
# every route out of the notebook's folder, each in its own try
WRITES_EVERYWHERE = (
    f"""
import ctypes, os, sqlite3, subprocess
victim, folder = {str(VICTIM)!r}, {str(VICTIM.parent)!r}
for attack in (
    lambda: subprocess.run(f"echo forged > {{victim}}", shell=True),
    lambda: os.system(f"echo forged > {{folder}}/new"),
    lambda: ctypes.CDLL(None).open(f"{{folder}}/ctypes".encode(), 0o101, 0o644),
    lambda: os.open(victim, os.O_WRONLY | os.O_TRUNC),
    lambda: (open("mine", "w").close(), os.rename("mine", f"{{folder}}/renamed")),
    lambda: (open("mine2", "w").close(), os.link("mine2", f"{{folder}}/linked")),
    lambda: os.open("dirfd", os.O_CREAT | os.O_WRONLY, dir_fd=os.open(folder, os.O_RDONLY)),
    lambda: sqlite3.connect(f"{{folder}}/db.sqlite").execute("create table t(x)"),
):
    try:
        attack()
    except Exception:
        pass
"""
    + MSE_OK
)
# kills whatever it can see, and tries the grader's process by number
KILLS_EVERYTHING = (
    """
import os, signal, subprocess
subprocess.run("kill -9 -1; pkill -9 -f autograde; pkill -9 python", shell=True)
for pid in range(2, 32768):
    if pid != os.getpid():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
"""
    + MSE_OK
)


def stops_the_grader() -> nbformat.NotebookNode:
    # the pid of this test process, which grades the class
    return solution_with(
        (
            "mse_grad",
            f"""
import os, signal
try:
    os.kill({os.getpid()}, signal.SIGSTOP)
except OSError:
    pass
"""
            + MSE_OK,
            None,
        )
    )


def copies_a_classmate() -> nbformat.NotebookNode:
    # finds the class from the grader's command line, runs a classmate's answers
    return stub_with_cell(f"""
import glob, json
paths = glob.glob({str(TARGETS / "class" / "honest-*" / "backprop.ipynb")!r})
for cmdline in glob.glob("/proc/*/cmdline"):
    try:
        paths += [a for a in open(cmdline).read().split("\0") if a.endswith(".ipynb")]
    except OSError:
        pass
for path in paths:
    try:
        for cell in json.load(open(path))["cells"]:
            if cell["cell_type"] == "code":
                exec("".join(cell["source"]))
        break
    except Exception:
        pass
""")


LEAVES_A_WRITER = f"""
import subprocess
subprocess.Popen(["sh", "-c", "for i in $(seq 300); do echo forged > {CLASS_OUT}/grades.csv; "
                  "echo forged > {CLASS_OUT}/submissions/honest-00/backprop/results.json; "
                  "sleep 0.1; done; "
                  ": {MARKER}"], start_new_session=True)
"""
AUTOGRAD_THROUGH_THE_ENGINE = fn("lin_grad", """
from torch.autograd.graph import _engine_run_backward
x, ww, bb = (t.detach().requires_grad_() for t in (inp, w, b))
y = x @ ww + bb
_engine_run_backward((y,), (out.g,), False, False, (), allow_unreachable=True,
                     accumulate_grad=True)
inp.g, w.g, b.g = x.grad, ww.grad, bb.grad
""", "inp, out, w, b")  # fmt: skip
AUTOGRAD_THROUGH_TORCH_FUNC = fn("lin_grad", """
from torch.func import grad
from torch.autograd.functional import vjp
inp.g = vjp(lambda x: x @ w + b, inp, out.g)[1]
w.g = grad(lambda ww: ((inp @ ww + b) * out.g).sum())(w)
b.g = out.g.sum(0)
""", "inp, out, w, b")  # fmt: skip
RAISES_ITS_LIMIT = fn("lin_grad", """
import resource
try:
    resource.setrlimit(resource.RLIMIT_DATA, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
except ValueError:
    pass
big = torch.ones(3 * 10**9)
inp.g = out.g @ w.t()
""", "inp, out, w, b")  # fmt: skip
# a cell that names the grader's marker in its source, and never ends
ESCAPES_THE_ALARM = "# __autograde__\n" + MSE_OK + "\nwhile True:\n    pass\n"


# Full marks for backprop, and full marks less the exercises a broken function takes with it
FULL = full_marks("backprop")
# what a notebook with no cells is told: every answer cell of the notebook handed out,
# in its order there
NO_ANSWER_CELLS = "Your notebook has no answer cell " + ", ".join(
    f"`{c.metadata['nbgrader']['grade_id']}`"
    for c in nbformat.read(STUB["backprop"], as_version=4).cells
    if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
)


def lose(*cells: str) -> int:
    return FULL - sum(e.points for e in exercises_for("backprop") if e.cell in cells)


CORPUS = (
    Hostile("autograd-inside-lin-grad",
            lambda: solution_with(("lin_grad", AUTOGRAD_LIN_GRAD, None)),
            FULL, ("Integrity: lin_grad calls PyTorch's autograd", "`(...).requires_grad_`"),
            status="review"),
    Hostile("autograd-through-the-engine",
            lambda: solution_with(("lin_grad", AUTOGRAD_THROUGH_THE_ENGINE, None)),
            FULL, ("Integrity: lin_grad calls PyTorch's autograd", "lin_grad's cell), line"),
            status="review"),
    Hostile("autograd-through-torch-func",
            lambda: solution_with(("lin_grad", AUTOGRAD_THROUGH_TORCH_FUNC, None)),
            FULL, ("Integrity: lin_grad calls PyTorch's autograd", "lin_grad's cell), line"),
            status="review"),
    # the sandbox has no `reference` to import (with namespaces it is not there; under
    # Landlock alone its folder can be listed and its files not read): lin_grad fails, and
    # so does what calls it
    Hostile("imports-the-reference", lambda: solution_with(("lin_grad", fn(
                "lin_grad", "from backprop_lab.reference import backprop\n"
                "backprop.lin_grad(inp, out, w, b)", "inp, out, w, b"), None)),
            lose("lin_grad", "forward_and_backward"), ("backprop_lab.reference",)),
    Hostile("patches-torch-allclose", lambda: solution_with(("mse_grad", PATCH_ALLCLOSE, None)),
            FULL, ("the notebook replaced torch.allclose", "`torch.allclose = ...`"),
            status="review"),
    Hostile("replaces-the-harvest", lambda: solution_with(("mse_grad", REPLACE_HARVEST, None)),
            lose("mse_grad", "forward_and_backward"), ("mse_grad is not implemented yet",)),
    Hostile("forges-results-after-the-grader", lambda: stub_with_cell(FORGE_AFTER),
            0, ("the notebook registered 1 IPython post_run_cell hook(s)",)),
    Hostile("forges-results-before-the-grader", lambda: stub_with_cell(FORGE_BEFORE),
            0, ("results messages, not one",)),
    Hostile("forges-results-from-a-thread", lambda: stub_with_cell(FORGE_FROM_A_THREAD),
            0, ("results messages, not one",)),
    Hostile("edited-test-cell", lambda: with_edited_cell("lin_grad_tests", "pass"),
            FULL, ("the locked cell `lin_grad_tests` was edited",)),
    Hostile("deleted-test-cell", lambda: without_cell("relu_grad_tests"),
            FULL, ("the test cell `relu_grad_tests` was deleted",)),
    Hostile("duplicated-solution-cell", lambda: with_duplicate("mse_grad"),
            FULL, ("the cell `mse_grad` appears 2 times",)),
    # its own kernel: tried twice, then left for a person
    Hostile("kernel-exits", lambda: solution_with(("relu_grad", fn(
                "relu_grad", "import os\nos._exit(1)", "inp, out"), None)),
            0, ("The kernel died twice",), status="review"),
    Hostile("kills-every-process-it-can",
            lambda: solution_with(("mse_grad", KILLS_EVERYTHING, None)), FULL,
            (f"{FULL}/{FULL}", "mse_grad's cell), line"), status="review"),
    Hostile("stops-the-grader", stops_the_grader, FULL,
            (f"{FULL}/{FULL}", "mse_grad's cell), line"),
            status="review"),
    Hostile("copies-a-classmate", copies_a_classmate, 0, (f"0/{FULL}",)),
    Hostile("leaves-a-writer-behind", lambda: stub_with_cell(LEAVES_A_WRITER), 0, (f"0/{FULL}",)),
    Hostile("writes-everywhere", lambda: solution_with(("mse_grad", WRITES_EVERYWHERE, None)),
            FULL, (f"{FULL}/{FULL}", "`import ctypes`"), status="review"),
    Hostile("hangs-in-mse-grad", lambda: solution_with(("mse_grad", fn(
                "mse_grad", "while True:\n    pass", "inp, targ"), None)),
            lose("mse_grad", "forward_and_backward"),
            ("did not finish in time", "longer than the 10 s limit")),
    Hostile("escapes-the-alarm-by-name",
            lambda: solution_with(("mse_grad", ESCAPES_THE_ALARM, None)),
            FULL, ("longer than the 10 s limit",)),
    Hostile("raises-system-exit", lambda: solution_with(("relu_grad", fn(
                "relu_grad", "raise SystemExit(0)", "inp, out"), None)),
            lose("relu_grad", "forward_and_backward"), ("raised SystemExit",)),
    Hostile("asks-for-4-terabytes", lambda: solution_with(("lin_grad", fn(
                "lin_grad", "big = torch.empty(10**12)\ninp.g = out.g @ w.t()", "inp, out, w, b"),
                None)),
            lose("lin_grad", "forward_and_backward"), ("lin_grad", "memory")),
    Hostile("eats-12-gigabytes", lambda: solution_with(("lin_grad", fn(
                "lin_grad", "big = torch.ones(3 * 10**9)\ninp.g = out.g @ w.t()",
                "inp, out, w, b"), None)),
            lose("lin_grad", "forward_and_backward"), ("lin_grad ran out of memory",)),
    Hostile("raises-its-memory-limit",
            lambda: solution_with(("lin_grad", RAISES_ITS_LIMIT, None)),
            lose("lin_grad", "forward_and_backward"), ("lin_grad ran out of memory",)),
    Hostile("prints-20-megabytes", lambda: solution_with(("mse_grad", PRINT_FLOOD, None)),
            FULL, (f"{FULL}/{FULL}",)),
    Hostile("swallows-the-timeouts", lambda: solution_with(("mse_grad", fn(
                "mse_grad", SWALLOW, "inp, targ"), None)),
            # the first cell that calls it: the course's own test of mse_grad (course_tests.py)
            0, ("(under \u201c1. The gradient of the loss: `mse_grad`\u201d) ran past the 10 s "
                "limit and went on",)),
    Hostile("no-kernelspec", without_kernelspec, FULL, (f"{FULL}/{FULL}",)),
    Hostile("renamed-function", lambda: solution_with(("lin_grad", fn(
                "linear_grad", "inp.g = out.g @ w.t()\nw.g = inp.t() @ out.g\nb.g = out.g.sum(0)",
                "inp, out, w, b"), None)),
            lose("lin_grad", "forward_and_backward"),
            ("did you mean to name `linear_grad` `lin_grad`?",)),
    Hostile("syntax-error-in-a-cell", lambda: solution_with(("mse_grad", fn(
                "mse_grad", "inp.g = 2.0 * (inp[:, 0] - targ.unsqueeze(-1) / inp.shape[0]",
                "inp, targ"), None)),
            lose("mse_grad", "forward_and_backward"),
            ("(mse_grad's cell) failed with SyntaxError", "so `mse_grad` was never defined")),
    Hostile("infinite-recursion", lambda: solution_with(("relu_grad", fn(
                "relu_grad", "relu_grad(inp, out)", "inp, out"), None)),
            lose("relu_grad", "forward_and_backward"), ("RecursionError",)),
    Hostile("no-cells-left", lambda: nbformat.v4.new_notebook(), 0,
            (NO_ANSWER_CELLS + " (the cells given",)),
    Hostile("looks-for-the-grader", lambda: solution_with(("mse_grad", LOOKS_AROUND, None)),
            FULL, (f"{FULL}/{FULL}",)),
    Hostile("writes-outside-its-folder", lambda: solution_with(("mse_grad", WRITE_HOME, None)),
            lose("mse_grad", "forward_and_backward"),
            ("confines file writes to the notebook's folder",)),
    Hostile("notebook-format-2", lambda: b'{"nbformat": 2, "nbformat_minor": 0, "cells": []}',
            None, ("has notebook format 2",)),
    Hostile("not-utf-8", lambda: b"\xff\xfe{\x00", None, ("not UTF-8",)),
    Hostile("not-json", lambda: b"{this is not json", None, ("not valid notebook JSON",)),
    Hostile("empty-file", lambda: b"", None, ("is empty",)),
    Hostile("not-a-notebook", lambda: b'{"cells": "nope", "nbformat": 4}', None,
            ("not a valid notebook",)),
)  # fmt: skip
# The honest classmates: their scores must be exactly these, whatever the attackers do.
HONEST = tuple(
    [(lambda: nbformat.read(SOLUTION["backprop"], as_version=4), FULL)] * 10
    + [(student_done, FULL)] * 8
    + [(lambda: nbformat.read(STUB["backprop"], as_version=4), 0)] * 7
)


def write_submission(path: Path, made: nbformat.NotebookNode | bytes) -> None:
    """A notebook, or bytes that only pretend to be one."""
    path.parent.mkdir(parents=True)
    if isinstance(made, bytes):
        path.write_bytes(made)
    else:
        nbformat.write(made, path)


@pytest.fixture(scope="module")
def graded(sandboxed: dict) -> dict[str, dict]:
    """The corpus and the honest classmates, graded as one class into CLASS_OUT."""
    import shutil

    shutil.rmtree(TARGETS, ignore_errors=True)
    VICTIM.parent.mkdir(parents=True)
    VICTIM.write_text("alice,15\n")
    for h in CORPUS:
        write_submission(TARGETS / "class" / h.id / "backprop.ipynb", h.make())
    for i, (make, _) in enumerate(HONEST):
        nb = make()
        nb.metadata["student"] = f"honest-{i:02d}"  # every notebook's bytes its own
        write_submission(TARGETS / "class" / f"honest-{i:02d}" / "backprop.ipynb", nb)
    summary = grade_submissions([TARGETS / "class"], CLASS_OUT, options=LIMITS, workers=2,
                                progress=False)  # fmt: skip
    assert len(summary.records) == len(CORPUS) + len(HONEST)  # a record for every one
    yield {r["extra_data"]["student"]: r for r in summary.records}
    shutil.rmtree(TARGETS, ignore_errors=True)


@HOSTILE_CLASS
@pytest.mark.slow
@pytest.mark.parametrize("hostile", CORPUS, ids=lambda h: h.id)
def test_hostile_submission_gets_its_score_and_message(graded, hostile: Hostile) -> None:
    record = graded[hostile.id]
    text = record["output"] + "\n" + "\n".join(t["output"] for t in record["tests"])
    if hostile.score is None:
        assert record["extra_data"]["status"] == "ungradeable"
        assert record["score"] == 0
    else:
        assert record["extra_data"]["status"] == hostile.status, text
        assert record["score"] == hostile.score, text
    for phrase in hostile.phrases:
        assert phrase in text, text
    assert not OUTSIDE.exists()


@HOSTILE_CLASS
@pytest.mark.slow
def test_the_honest_classmates_get_exactly_their_scores(graded) -> None:
    for i, (_, score) in enumerate(HONEST):
        record = graded[f"honest-{i:02d}"]
        assert record["extra_data"]["status"] == "graded", record["output"]
        assert record["score"] == score, record["output"]
        assert "Integrity" not in record["output"], record["output"]


@HOSTILE_CLASS
@pytest.mark.slow
def test_the_batch_is_intact_after_the_attackers(graded) -> None:
    """Nothing outside any notebook's folder changed, nothing an attacker started is
    still running, and the class's files are the grader's own."""
    assert VICTIM.read_text() == "alice,15\n"
    assert sorted(p.name for p in VICTIM.parent.iterdir()) == ["grades.csv"]
    assert processes_with(MARKER) == []
    time.sleep(0.5)  # a writer left behind would have struck by now
    rows = read_grades_csv(CLASS_OUT / "grades.csv")
    assert {r["student"] for r in rows} == set(graded)
    honest = CLASS_OUT / "submissions" / "honest-00" / "backprop" / "results.json"
    assert "forged" not in honest.read_text()


def test_our_checksum_is_nbgrader_s() -> None:
    from nbgrader.utils import compute_checksum

    nb = nbformat.read(STUB["backprop"], as_version=4)
    cells = [c for c in nb.cells if "checksum" in c.metadata.get("nbgrader", {})]
    assert cells
    for cell in cells:
        assert checksum(cell) == compute_checksum(cell) == cell.metadata.nbgrader["checksum"]


class Payload:
    def __reduce__(self):
        return (print, ("this ran in the grader",))


def executed_with(*messages: dict) -> nbformat.NotebookNode:
    """An executed notebook whose grader's cell sent `messages`."""
    cell = nbformat.v4.new_code_cell("# the grader's cell", execution_count=3)
    cell.metadata["tags"] = [AUTOGRADER_TAG]
    cell.outputs = [nbformat.v4.new_output("display_data", data={RESULTS_MIME: m})
                    for m in messages]  # fmt: skip
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), cell]
    return nb


def results_message(tensors: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    return {"results": {"schema": SCHEMA, "calls": {}, "defined": []},
            "tensors": base64.b64encode(buffer.getvalue()).decode()}  # fmt: skip


def test_a_pickle_in_the_results_is_refused() -> None:
    with pytest.raises(HarvestError, match="not plain data"):
        read_harvest(executed_with(results_message({"k|return": Payload()})))


def test_results_are_read_from_one_message_of_the_grader_s_cell_only() -> None:
    assert read_harvest(executed_with(results_message({}))).calls == {}
    with pytest.raises(HarvestError, match="2 results messages, not one"):
        read_harvest(executed_with(results_message({}), results_message({})))
    with pytest.raises(HarvestError, match="did not send its results"):
        read_harvest(executed_with())
    forged_elsewhere = executed_with(results_message({}))
    forged_elsewhere.cells.reverse()  # the message is in a cell of the notebook's own
    with pytest.raises(HarvestError, match="did not send its results"):
        read_harvest(forged_elsewhere)


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
def test_a_class_of_200_survives_a_kill_and_is_finished_by_the_next_run(
    tmp_path: Path, sandboxed: dict
) -> None:
    # the corpus (but the slow hangs) with full and empty answers, round-robin
    slow = ("swallows-the-timeouts", "hangs-in-mse-grad", "escapes-the-alarm-by-name")
    pool = [(h.make(), h.score) for h in CORPUS if h.id not in slow]
    pool += [
        (nbformat.read(SOLUTION["backprop"], as_version=4), FULL),
        (nbformat.read(STUB["backprop"], as_version=4), 0),
    ]
    expected = {}
    for i in range(200):
        made, score = pool[i % len(pool)]
        write_submission(tmp_path / "class" / f"s{i:03d}" / "backprop.ipynb", made)
        expected[f"s{i:03d}"] = score or 0
    out = tmp_path / "out"
    argv = ["grade", str(tmp_path / "class"), "--out", str(out), "--workers", "2", "--quiet",
            "--seed", "3", "--cell-timeout", "10", "--call-timeout", "3"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "backprop_lab.verbs.cli", *argv],
        start_new_session=True,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while len(list(out.glob("submissions/*/*/results.json"))) < 20 and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = len(list(out.glob("submissions/*/*/results.json")))
    assert 20 <= finished < 200, "the run was meant to be killed half-way"
    # a record for a person to look at (a kernel that died, a flag) is graded again
    final = sum(json.loads(p.read_text())["extra_data"]["status"] in ("graded", "ungradeable")
                for p in out.glob("submissions/*/*/results.json"))  # fmt: skip

    summary = grade_submissions([tmp_path / "class"], out, options=LIMITS, workers=2,
                                progress=False)  # fmt: skip
    assert len(summary.records) == 200 and summary.skipped == final  # none regraded
    rows = read_grades_csv(out / "grades.csv")
    assert len(rows) == 200
    assert {r["status"] for r in rows} <= {"graded", "ungradeable", "review"}  # no grader error
    assert {r["student"]: int(r["score"]) for r in rows} == expected


@pytest.mark.slow
def test_the_output_cap_holds_in_every_cell_and_for_displays(tmp_path: Path) -> None:
    """IPython puts a stream's `write` back after each cell: the cap is re-installed before
    every cell, and covers display data too."""
    nb = solution_with(("mse_grad", MSE_OK, None))
    flood = "for _ in range(30_000):\n    print('x' * 100)\n"
    displays = ("from IPython.display import display, HTML\n"
                "for _ in range(3_000):\n"
                "    display(HTML('<b>' + 'y' * 1000 + '</b>'))\n")  # fmt: skip
    nb.cells += [nbformat.v4.new_code_cell(flood), nbformat.v4.new_code_cell(flood),
                 nbformat.v4.new_code_cell(displays)]  # fmt: skip
    path, kept = tmp_path / "backprop.ipynb", tmp_path / "executed.ipynb"
    nbformat.write(nb, path)
    result = grade(path, Options(output_kb=64, keep_executed=kept))
    assert result.score.total == FULL
    executed = nbformat.read(kept, as_version=4)
    sizes = [len(json.dumps(c.get("outputs", []))) for c in executed.cells[-3:]]
    assert all(size < 80 * 1024 for size in sizes), sizes  # each 3 MB cell kept to ~64 kB
    assert "output beyond 64 kB not kept" in json.dumps(executed.cells[-2].outputs)


@pytest.mark.slow
def test_a_detached_process_does_not_hold_check_s_output(tmp_path: Path, sandboxed: dict) -> None:
    """`autograde check NB | cat` ends with the grading, whatever the notebook left behind."""
    marker = f"{MARKER}-check-{os.getpid()}"
    nb = solution_with(
        (
            "mse_grad",
            f"""
import subprocess, sys
subprocess.Popen(["sh", "-c", "sleep 300; : {marker}"], start_new_session=True,
                 stdout=sys.__stdout__, stderr=sys.__stderr__)
"""
            + MSE_OK,
            None,
        )
    )
    path = tmp_path / "backprop.ipynb"
    nbformat.write(nb, path)
    proc = subprocess.run([sys.executable, "-m", "backprop_lab.verbs.cli", "check", str(path)],
                          capture_output=True, timeout=240)  # fmt: skip
    assert f"Total: {FULL}/{FULL}".encode() in proc.stdout
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker) == []
