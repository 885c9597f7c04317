"""The `autograde` verbs a student and an instructor type: check and verify (as typed, in
a fresh process: test_commands_as_typed.py). Exit codes 0 / 1 / 2 and Gradescope's
results.json. (The pytest form and its JUnit points are tested with the other grading
paths in test_one_verdict.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import torch
from grading_tools import full_marks, validate_gradescope
from notebook_tools import ROOT

from backprop_lab.course import exercises_for
from backprop_lab.plan.notebook import replace_function
from backprop_lab.verbs.cli import main
from backprop_lab.verbs.verify import points_problems

pytestmark = pytest.mark.slow

SOLUTIONS, ASSIGNMENTS = ROOT / "solutions", ROOT / "assignments"


def test_check_solution_full_marks_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "results.json"
    code = main(["check", str(SOLUTIONS / "backprop" / "backprop.ipynb"), "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"Total: {full_marks('backprop')}/{full_marks('backprop')}" in printed
    assert "grading uses other inputs" in printed
    data = json.loads(out.read_text())
    validate_gradescope(data)
    assert data["score"] == full_marks("backprop")
    assert len(data["tests"]) == sum(len(e.checks) for e in exercises_for("backprop"))


def test_check_untouched_assignment_zero_exit_1_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "results.json"
    code = main(["check", str(ASSIGNMENTS / "matmul" / "matmul.ipynb"), "--json", str(out)])
    printed = capsys.readouterr()
    assert code == 1
    assert f"Total: 0/{full_marks('matmul')}" in printed.out
    assert "Traceback" not in printed.out + printed.err
    data = json.loads(out.read_text())
    validate_gradescope(data)
    failed = [t for t in data["tests"] if t["max_score"] > 0]
    assert failed and all("not implemented yet" in t["output"] for t in failed)


def test_check_one_broken_exercise_costs_only_its_points(tmp_path: Path) -> None:
    nb = nbformat.read(SOLUTIONS / "backprop" / "backprop.ipynb", as_version=4)
    nb = replace_function(
        nb,
        "Mse",
        """class Mse:
    def __call__(self, inp, targ):
        self.inp, self.targ = inp, targ
        self.out = mse(inp, targ)
        return self.out

    def backward(self):
        self.inp.g = (self.inp[:, 0] - self.targ).unsqueeze(-1) / self.targ.shape[0]""",
    )
    path = tmp_path / "backprop.ipynb"
    nbformat.write(nb, path)
    out = tmp_path / "r.json"
    assert main(["check", str(path), "--json", str(out)]) == 1
    tests = {t["name"]: t for t in json.loads(out.read_text())["tests"]}
    lost = {n: t["max_score"] - t["score"] for n, t in tests.items() if t["score"] < t["max_score"]}
    # Mse's own check, and Model's gradients (Model uses the student's Mse); not its loss.
    assert lost == {
        "the Relu, Lin and Mse classes: Mse().backward() sets inp.g": 1,
        "the Model class: model.backward() sets every .g": 1,
    }
    assert (
        "mse-missing-2"
        in tests["the Relu, Lin and Mse classes: Mse().backward() sets inp.g"]["tags"]
    )


def bad_file(folder: Path, kind: str) -> Path:
    """A file (or not) that is no gradeable notebook."""
    path = folder / f"{kind}.ipynb"
    contents = {"empty": b"", "not-json": b"{not json", "not-utf8": b"\xff\xfe\x00bad",
                "not-a-notebook": b'{"hello": 1}'}  # fmt: skip
    if kind == "folder":
        return folder
    if kind in contents:
        path.write_bytes(contents[kind])
    return path


@pytest.mark.parametrize(
    ("kind", "phrase"),
    [
        ("missing", "no such file"),
        ("folder", "is a folder"),
        ("empty", "is empty"),
        ("not-json", "not valid notebook JSON"),
        ("not-utf8", "not UTF-8"),
        ("not-a-notebook", "not a Jupyter notebook"),
    ],
)
def test_check_ungradeable_file_exit_2_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, kind: str, phrase: str
) -> None:
    out = tmp_path / "out" / "results.json"
    assert main(["check", str(bad_file(tmp_path, kind)), "--json", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert phrase in err and len(err.splitlines()) == 1
    # whatever reads --json (Gradescope, a script) gets zero points and the same reason
    data = json.loads(out.read_text())
    validate_gradescope(data, tests_required=False)
    assert data["score"] == 0 and phrase in data["output"]
    assert data["extra_data"]["status"] == "ungradeable"


def test_check_cuda_without_cuda_is_exit_2(capsys: pytest.CaptureFixture) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code = main(["check", str(SOLUTIONS / "matmul" / "matmul.ipynb"), "--device", "cuda"])
    assert code == 2
    assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["matmul", "backprop"])
def test_check_solution_on_cuda_full_marks(name: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["check", str(SOLUTIONS / name / f"{name}.ipynb"), "--device", "cuda"]) == 0
    assert "device cuda" in capsys.readouterr().out


def test_points_in_notebooks_match_the_table(tmp_path: Path) -> None:
    for name in ("matmul", "backprop"):
        assert points_problems(SOLUTIONS / name / f"{name}.ipynb", name) == []
    nb = nbformat.read(SOLUTIONS / "backprop" / "backprop.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "lin_grad_tests":
            cell.metadata["nbgrader"]["points"] = 4
    nbformat.write(nb, tmp_path / "backprop.ipynb")
    (problem,) = points_problems(tmp_path / "backprop.ipynb", "backprop")
    assert "lin_grad_tests is worth 4 in the notebook but 3" in problem
