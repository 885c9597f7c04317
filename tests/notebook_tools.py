"""Helpers for the notebook tests: where the notebooks are, and running them offline."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import papermill
from nbformat import NotebookNode

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*/*.ipynb"))
ASSIGNMENTS = sorted((ROOT / "assignments").glob("*/*.ipynb"))

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
