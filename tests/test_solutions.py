"""The instructor's notebooks: well formed for nbgrader and papermill, and they run,
offline, on the bundled data."""

from __future__ import annotations

import ast
import gzip
import pickle
import re

import nbformat
import numpy as np
import pytest
import torch
from notebook_tools import (
    OFFLINE_STARTUP,
    SOLUTIONS,
    errors,
    execute,
    graded_cells,
)

from backprop_lab.course import ASSIGNMENTS

GRADE_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def test_there_is_one_solution_notebook_per_lesson_part():
    assert [p.parent.name for p in SOLUTIONS] == sorted(ASSIGNMENTS)


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.parent.name)
def test_solution_notebook_is_valid_nbgrader_source(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"  # papermill needs a kernel to start
    assert nb.metadata.language_info.name == "python"

    ids = [c.metadata.nbgrader.grade_id for c in nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)), f"duplicate grade_ids: {ids}"
    assert all(GRADE_ID.match(i) for i in ids), ids
    graded = graded_cells(nb)
    assert graded, "no graded test cells"
    for cell in graded:
        meta = cell.metadata.nbgrader
        assert meta.schema_version == 3
        assert meta.points > 0 and meta.locked and not meta.solution, meta
    assert any("### BEGIN HIDDEN TESTS" in c.source for c in graded), "no hidden tests"
    solutions = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert solutions and all("### BEGIN SOLUTION" in c.source for c in solutions)


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.parent.name)
def test_parameters_cell_declares_seed_device_data_path(path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "papermill needs exactly one cell tagged 'parameters'"
    assigned = {
        t.id: ast.literal_eval(node.value)
        for node in ast.parse(cells[0].source).body
        if isinstance(node, ast.Assign)
        for t in node.targets
    }
    assert assigned == {"seed": 42, "device": "cpu", "data_path": None}


@pytest.mark.slow
@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.parent.name)
def test_solution_notebook_runs_offline_with_default_parameters(path, tmp_path, offline_kernel):
    nb, seconds = execute(path, tmp_path / path.name)
    print(f"{path.relative_to(path.parents[2])}: executed in {seconds:.1f} s")
    for cell in nb.cells:
        assert not errors(cell), cell.source
    for cell in graded_cells(nb):
        # nbgrader gives a test cell zero when it writes to stderr (a warning, say).
        stderr = [o for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]
        assert not stderr, f"{cell.metadata.nbgrader.grade_id} wrote to stderr: {stderr}"


@pytest.mark.slow
def test_offline_guard_blocks_downloads(tmp_path, offline_kernel):
    # The guard above would prove nothing if it let connections through.
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "import urllib.request\nurllib.request.urlopen('http://93.184.216.34', timeout=5)"
            )
        ],
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "P"}},
    )
    nbformat.write(nb, tmp_path / "download.ipynb")
    out, _ = execute(tmp_path / "download.ipynb", tmp_path / "out.ipynb", allow_errors=True)
    # papermill puts an error banner above the notebook; the code cell follows it.
    (cell,) = [c for c in out.cells if c.cell_type == "code"]
    (error,) = errors(cell)
    assert "blocked: notebooks must run offline" in error.evalue
    assert "offline" in OFFLINE_STARTUP


@pytest.mark.slow
def test_injected_parameters_reach_the_notebook(tmp_path, offline_kernel):
    path = next(p for p in SOLUTIONS if p.parent.name == "backprop")
    nb, _ = execute(path, tmp_path / "seeded.ipynb", seed=7)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "seed = 7" in injected[0].source
    assert not any(errors(c) for c in nb.cells)


def _tiny_mnist(path):
    """A file in the course's MNIST pickle format: 28x28 = 784 pixels in [0, 1]."""
    rng = np.random.default_rng(0)

    def split(n):
        return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)

    with gzip.open(path, "wb") as f:
        pickle.dump((split(300), split(50), split(50)), f)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.parent.name)
def test_solution_notebook_reads_the_course_mnist_pickle(path, tmp_path, offline_kernel):
    data = _tiny_mnist(tmp_path / "mnist.pkl.gz")
    nb, _ = execute(path, tmp_path / path.name, data_path=str(data))
    assert not any(errors(c) for c in nb.cells)
    text = "".join(
        o.get("text", "") + str(o.get("data", "")) for c in nb.cells for o in c.get("outputs", [])
    )
    assert "784" in text, "the notebook did not use the 784-pixel data it was given"


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_without_cuda_is_a_clear_error(tmp_path, offline_kernel):
    path = next(p for p in SOLUTIONS if p.parent.name == "backprop")
    nb, _ = execute(path, tmp_path / path.name, allow_errors=True, device="cuda")
    first_error = next(e for c in nb.cells for e in errors(c))
    assert first_error.ename == "RuntimeError"
    assert "torch sees no CUDA device" in first_error.evalue


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.parent.name)
def test_solution_notebook_runs_on_cuda(path, tmp_path, offline_kernel):
    nb, seconds = execute(path, tmp_path / path.name, device="cuda")
    print(f"{path.parent.name} on CUDA: {seconds:.1f} s")
    assert not any(errors(c) for c in nb.cells)
