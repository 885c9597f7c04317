"""Helpers for the notebook tests: where the notebooks are, student code edited into
them, and running them offline."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import nbformat
import papermill
from nbformat import NotebookNode

from backprop_lab.course import ASSIGNMENTS as COURSE_ASSIGNMENTS
from backprop_lab.plan.notebook import read_notebook, replace_function

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*/*.ipynb"))
ASSIGNMENTS = sorted((ROOT / "assignments").glob("*/*.ipynb"))
# assignment -> the instructor's notebook (every answer right) and the student's (stubs)
SOLUTION = {a: ROOT / "solutions" / a / f"{a}.ipynb" for a in COURSE_ASSIGNMENTS}
STUB = {a: ROOT / "assignments" / a / f"{a}.ipynb" for a in COURSE_ASSIGNMENTS}


class Edit(NamedTuple):
    """A student's version of one top-level `def` or `class`: `function` is replaced by
    `source`, in the cell with grade_id `cell` when given (else the last that defines it)."""

    function: str
    source: str
    cell: str | None = None


def edited(
    notebook: Path | NotebookNode, edits: Iterable[tuple[str, str, str | None]]
) -> NotebookNode:
    """A copy of `notebook` (a path or a notebook) with each edit applied in turn."""
    nb = read_notebook(notebook) if isinstance(notebook, Path) else notebook
    for function, source, cell in edits:
        nb = replace_function(nb, function, source, cell=cell)
    return nb


def fn(name: str, body: str, args: str) -> str:
    """`def name(args):` with `body` indented under it."""
    lines = body.strip("\n").splitlines()
    return f"def {name}({args}):\n" + "\n".join(f"    {line}" for line in lines) + "\n"


def mse_grad(body: str) -> Edit:
    return Edit("mse_grad", fn("mse_grad", body, "inp, targ"))


def relu_grad(body: str) -> Edit:
    return Edit("relu_grad", fn("relu_grad", body, "inp, out"))


def lin_grad(x: str, w: str, b: str) -> Edit:
    """lin_grad from its three lines: the one for inp.g, for w.g and for b.g."""
    return Edit("lin_grad", fn("lin_grad", f"{x}\n{w}\n{b}", "inp, out, w, b"))


def matmul(cell: str, body: str) -> Edit:
    """matmul as written in one rung's cell (each rung of the ladder defines its own)."""
    return Edit("matmul", fn("matmul", body, "a, b"), cell)


# Runs in the kernel before any cell (an IPython startup file): Python-level connections
# to anything but this machine fail, so a notebook that downloads data fails its test.
OFFLINE_STARTUP = """
import ipaddress, socket

_connect = socket.socket.connect


def _local_only(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = host == "localhost"
        if not local:
            raise OSError(f"network access to {host!r} is blocked: notebooks must run offline")
    return _connect(self, address)


socket.socket.connect = _local_only
"""


def execute(
    nb_path: Path, out_path: Path, allow_errors: bool = False, **parameters
) -> tuple[NotebookNode, float]:
    """Run a notebook with papermill the way a grader would; return it and the seconds taken.
    With allow_errors every cell runs and errors stay in their cells' outputs."""
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(nb_path),
            str(out_path),
            parameters=parameters,
            cwd=str(out_path.parent),
            kernel_name="python3",
            progress_bar=False,
            allow_errors=allow_errors,
        )
    except papermill.PapermillExecutionError:
        if not allow_errors:
            raise
    return nbformat.read(out_path, as_version=4), time.perf_counter() - start


def graded_cells(nb: NotebookNode) -> list[NotebookNode]:
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]


def errors(cell: NotebookNode) -> list[NotebookNode]:
    return [o for o in cell.get("outputs", []) if o.output_type == "error"]
