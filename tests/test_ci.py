"""CI: the workflows parse and pass zizmor; `autograde ci-grade` grades a pull request's
notebooks with the base branch's grader, flags edits to the grader, and writes the step
summary and annotations GitHub shows."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from notebook_tools import ROOT

from autograder.ci import _cell_line, annotation, changed_files
from autograder.cli import main
from autograder.notebook import read_notebook, replace_function

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
NOTEBOOK = "assignments/backprop/backprop.ipynb"


def test_workflows_parse_and_are_least_privilege() -> None:
    assert {w.name for w in WORKFLOWS} >= {"ci.yml", "grade-pr.yml", "pr-comment.yml",
                                           "grade-class.yml"}  # fmt: skip
    for path in WORKFLOWS:
        text = path.read_text()
        flow = yaml.safe_load(text)
        assert flow["jobs"], path
        assert "pull_request_target" not in text, path
        for job in flow["jobs"].values():
            assert job.get("timeout-minutes"), f"{path.name}: a job without a time limit"
    grade = yaml.safe_load((ROOT / ".github/workflows/grade-pr.yml").read_text())
    assert grade["permissions"] == {"contents": "read"}
    steps = grade["jobs"]["grade"]["steps"]
    installs = [s["run"] for s in steps if "pip install" in s.get("run", "")]
    assert installs == ["python -m pip install -c base/constraints.txt -e ./base"]
    assert any("autograde ci-grade --base base --head head" in s.get("run", "") for s in steps)
    sharded = yaml.safe_load((ROOT / ".github/workflows/grade-class.yml").read_text())
    shards = sharded["jobs"]["grade"]["strategy"]["matrix"]["shard"]
    run = json.dumps(sharded["jobs"]["grade"]["steps"])
    assert shards == list(range(1, len(shards) + 1)) and f"$SHARD/{len(shards)}" in run
    assert "autograde merge graded-*" in json.dumps(sharded["jobs"]["merge"]["steps"])
    ci = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    assert ci["jobs"]["gpu"]["if"] == "vars.GPU_RUNNER == 'true'"
    assert ".ci/run" in json.dumps(ci["jobs"]["test"]["steps"])


def test_zizmor_finds_nothing_of_medium_or_higher_severity() -> None:
    zizmor = shutil.which("zizmor") or str(Path(sys.executable).parent / "zizmor")
    done = subprocess.run(
        [zizmor, "--offline", "--format", "json", "--min-severity", "medium",
         str(ROOT / ".github" / "workflows")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    findings = json.loads(done.stdout or "[]")
    assert findings == [], [f.get("ident") for f in findings]


def test_annotation_escapes_what_the_runner_would_misread() -> None:
    line = annotation("error", "a,b:c.ipynb", 7, "lin_grad: w.g (0/1)", "50% off\nnext")
    assert line == (
        "::error file=a%2Cb%3Ac.ipynb,line=7,title=lin_grad%3A w.g (0/1)::50%25 off%0Anext"
    )


def copy_course(dest: Path) -> Path:
    """What a checkout holds: the grader, the reference and the course."""
    for name in ("autograder", "reference", "assignments", "solutions", "coursedata"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "constraints.txt", "README.md"):
        shutil.copy(ROOT / name, dest / name)
    return dest


@pytest.fixture
def base_and_head(tmp_path: Path) -> tuple[Path, Path]:
    base = copy_course(tmp_path / "base")
    head = tmp_path / "head"
    shutil.copytree(base, head)
    return base, head


def write_notebook(head: Path, source_nb: Path, edits=()) -> None:
    nb = read_notebook(source_nb)
    for name, source in edits:
        nb = replace_function(nb, name, source)
    import nbformat

    nbformat.write(nb, head / NOTEBOOK)


def test_changed_files_compares_the_trees(base_and_head) -> None:
    base, head = base_and_head
    (head / "autograder" / "score.py").write_text("# edited\n")
    (head / "assignments" / "new.ipynb").write_text("{}")
    (base / "solutions" / "backprop" / "backprop.ipynb").unlink()
    assert changed_files(base, head) == [
        "assignments/new.ipynb",
        "autograder/score.py",
        "solutions/backprop/backprop.ipynb",
    ]


@pytest.mark.slow
def test_pr_editing_the_grader_is_graded_by_the_base_grader_and_flagged(
    base_and_head, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base, head = base_and_head
    # the student's notebook: the solution with a transposed w.g (costs exactly 3 points) ...
    write_notebook(head, ROOT / "solutions/backprop/backprop.ipynb", [(
        "lin_grad",
        "def lin_grad(inp, out, w, b):\n    inp.g = out.g @ w.t()\n"
        "    w.g = out.g.t() @ inp\n    b.g = out.g.sum(0)\n",
    )])  # fmt: skip
    # ... and an edit that would give full marks if the PR's grader were used
    score_py = head / "autograder" / "score.py"
    score_py.write_text(score_py.read_text() + "\n\ndef score(*a, **k):\n    raise SystemExit\n")
    summary = tmp_path / "summary.md"
    out = tmp_path / "graded"
    argv = ["ci-grade", "--base", str(base), "--head", str(head), "--out", str(out),
            "--summary", str(summary)]  # fmt: skip
    assert main(argv) == 1  # a check failed
    printed = capsys.readouterr().out.splitlines()

    record = json.loads((out / "assignments/backprop/backprop/results.json").read_text())
    assert record["score"] == 12  # the base grader's verdict: 15 - 3
    # the student's report travels in the artifact, with the transposed w.g drawn
    report = (out / "assignments/backprop/backprop/feedback.md").read_text()
    assert "# Feedback on backprop.ipynb (backprop): 12/15" in report
    assert "![heat map of w.g: yours against expected](feedback_files/" in report
    md = summary.read_text()
    assert "[!WARNING]" in md and "`autograder/score.py`" in md
    assert "backprop.ipynb (backprop): 12/15" in md and "❌ failed" in md
    assert "transposed" in md

    warnings = [p for p in printed if p.startswith("::warning ")]
    errors = [p for p in printed if p.startswith("::error ")]
    assert len(warnings) == 1 and "file=autograder/score.py" in warnings[0]
    assert 1 <= len(errors) <= 9
    assert all(f"file={NOTEBOOK}" in e for e in errors)
    lin_grad = next(e for e in errors if "lin_grad sets w.g" in e)
    line = int(lin_grad.split(",line=")[1].split(",")[0])
    # the line of the student's `def lin_grad`, not the cell's metadata above it
    assert '"def lin_grad(' in (head / NOTEBOOK).read_text().splitlines()[line - 1]


@pytest.mark.slow
def test_a_passing_pr_gets_a_clean_summary(
    base_and_head, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base, head = base_and_head
    write_notebook(head, ROOT / "solutions/backprop/backprop.ipynb")
    summary = tmp_path / "summary.md"
    argv = ["ci-grade", "--base", str(base), "--head", str(head), "--summary", str(summary)]
    assert main(argv) == 0
    assert not [p for p in capsys.readouterr().out.splitlines() if p.startswith("::")]
    md = summary.read_text()
    assert "backprop.ipynb (backprop): 15/15" in md and "WARNING" not in md


def test_refuses_to_run_a_grader_that_is_not_the_base_branch(
    base_and_head, capsys: pytest.CaptureFixture
) -> None:
    base, head = base_and_head
    (base / "autograder" / "compare.py").write_text("# the base branch moved on\n")
    assert main(["ci-grade", "--base", str(base), "--head", str(head)]) == 2
    err = capsys.readouterr().err
    assert "not the base branch's" in err and "autograder/compare.py" in err


def test_no_changed_notebook_is_nothing_to_grade(
    base_and_head, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base, head = base_and_head
    (head / "README.md").write_text("typo fixed\n")
    summary = tmp_path / "s.md"
    argv = ["ci-grade", "--base", str(base), "--head", str(head), "--summary", str(summary)]
    assert main(argv) == 0
    assert "nothing to grade" in summary.read_text()


def test_annotations_point_at_the_exercise_s_code(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"),
                nbformat.v4.new_code_cell("# your code here\n\ndef mse_grad(inp, targ):\n"
                                          "    inp.g = None\n"),
                nbformat.v4.new_code_cell("x = 1")]  # fmt: skip
    nb.cells[1].metadata["nbgrader"] = {"grade_id": "mse_grad", "solution": True}
    nb.cells[2].metadata["nbgrader"] = {"grade_id": "one_liner", "solution": True}
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    lines = path.read_text().splitlines()
    assert '"def mse_grad(inp, targ):' in lines[_cell_line(path, "mse_grad") - 1]
    assert '"x = 1"' in lines[_cell_line(path, "one_liner") - 1]
    assert _cell_line(path, "no_such_cell") == 1
