"""Review flags from the answer cells' code (backprop_lab/judge/answer_scan.py): every trick on a
grader is found with its line, and no honest notebook the project knows raises one."""

from __future__ import annotations

import nbformat
import pytest
from grading_tools import full_marks
from notebook_tools import SOLUTION, STUB, replace_function

from backprop_lab.gradebook.batch import grade_submissions
from backprop_lab.judge.answer_scan import scan_answers, scan_source
from backprop_lab.plan.cleanroom import clean_room

# (code in an answer cell, what the finding quotes)
TRICKS = [
    ("import gc", "import gc"),
    ("import ctypes", "import ctypes"),
    ("import inspect", "import inspect"),
    ("import importlib", "import importlib"),
    ("import builtins", "import builtins"),
    ("import threading", "import threading"),
    ("from concurrent.futures import ThreadPoolExecutor", "from concurrent.futures import ..."),
    ("import signal", "import signal"),
    ("import atexit", "import atexit"),
    ("from IPython import get_ipython", "from IPython import ..."),
    ("from torch._C import DisableTorchFunction", "from torch._C import ..."),
    ("import torch.overrides", "import torch.overrides"),
    (
        "from torch.utils._python_dispatch import TorchDispatchMode",
        "from torch.utils._python_dispatch import ...",
    ),
    ("from torch.autograd import grad", "from torch.autograd import ..."),
    ("g = torch.autograd.grad(y, x)", "torch.autograd.grad(...)"),
    ("f = torch.func.grad(h)", "torch.func.grad(...)"),
    ("with torch._C.DisableTorchFunction(): pass", "torch._C.DisableTorchFunction(...)"),
    ("f = sys._getframe(1)", "sys._getframe"),
    ("x = frame.f_back", "frame.f_back"),
    ("x = frame.f_globals", "frame.f_globals"),
    ("m = sys.modules['backprop_lab']", "sys.modules"),
    ("exec('x = 1')", "exec(...)"),
    ("eval('1')", "eval(...)"),
    ("c = compile('1', 'f', 'eval')", "compile(...)"),
    ("m = __import__('os')", "__import__(...)"),
    ("ip = get_ipython()", "get_ipython(...)"),
    ("p = ip.display_pub", "ip.display_pub"),
    ("torch.allclose = lambda *a, **k: True", "torch.allclose = ..."),
    ("setattr(torch, 'allclose', None)", "setattr(torch, ...)"),
    ("x = torch.ones(2, requires_grad=True)", "requires_grad=True"),
    ("x.requires_grad_()", "x.requires_grad_"),
    ("y.retain_grad()", "y.retain_grad"),
    ("class T(torch.Tensor):\n    __torch_function__ = None", None),
    ("sys.settrace(None)", "sys.settrace"),
]


@pytest.mark.parametrize(("code", "quoted"), TRICKS, ids=[c for c, _ in TRICKS])
def test_each_trick_is_found_on_its_line(code: str, quoted: str | None) -> None:
    source = f"def relu_grad(inp, out):\n    inp.g = (inp > 0).float() * out.g\n{code}\n"
    found = scan_source(source)
    assert found, code
    assert min(line for line, _, _ in found) >= 3  # the two lines of the answer are clean
    if quoted is not None:
        assert quoted in {q for _, q, _ in found}, found


def test_magics_and_code_that_does_not_parse() -> None:
    assert scan_source("%timeit matmul(a, b)\nimport gc") == [
        (2, "import gc", "the garbage collector reaches every object of the process, "
                         "the grader's too")]  # fmt: skip
    assert scan_source("def f(:\n    import gc") == []  # the run reports the syntax error


def _honest_notebooks() -> dict[str, nbformat.NotebookNode]:
    from test_grader_mistakes import submissions

    nbs = {name: nb for name, (_, nb) in submissions().items()}
    for a in ("matmul", "backprop"):
        nbs[f"solution-{a}"] = nbformat.read(SOLUTION[a], as_version=4)
        nbs[f"stub-{a}"] = nbformat.read(STUB[a], as_version=4)
    return nbs


def test_no_honest_notebook_is_flagged() -> None:
    """The solutions, the stubs, the lesson's own 2019 and 2022 code, right but unusual
    code, left-over debuggers and every mistake of the catalogue."""
    nbs = _honest_notebooks()
    assert len(nbs) > 20
    for name, nb in nbs.items():
        assert scan_answers(nb) == (), name


@pytest.mark.slow
def test_a_flagged_answer_keeps_its_points_and_goes_to_review(tmp_path) -> None:
    source = (
        "def mse_grad(inp, targ):\n"
        "    import sys\n"
        "    caller = sys._getframe(1)\n"
        "    inp.g = 2. * (inp.squeeze(-1) - targ).unsqueeze(-1) / inp.shape[0]\n"
    )
    nb = replace_function(nbformat.read(SOLUTION["backprop"], as_version=4), "mse_grad", source)
    assert [f.sentence() for f in scan_answers(clean_room(nb, "backprop").notebook)] == [
        "cell 11 (mse_grad's cell), line 3: `sys._getframe`: it reads the call stack; no "
        "answer to this lesson needs it"
    ]
    (tmp_path / "class" / "mallory").mkdir(parents=True)
    nbformat.write(nb, tmp_path / "class" / "mallory" / "backprop.ipynb")
    summary = grade_submissions([tmp_path / "class"], tmp_path / "out", progress=False,
                                feedback=False)  # fmt: skip
    [record] = summary.records
    assert record["score"] == full_marks("backprop") and record["extra_data"]["status"] == "review"
    assert "Integrity: cell 11 (mse_grad's cell), line 3: `sys._getframe`" in record["output"]
    assert "the score stands until a person has read it" in record["output"]
