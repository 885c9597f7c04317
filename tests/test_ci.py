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
    assert {w.name for w in WORKFLOWS} == {"ci.yml", "grade-pr.yml", "grade-class.yml"}
    for path in WORKFLOWS:
        flow = yaml.safe_load(path.read_text())
        assert flow["jobs"], path
        for job in flow["jobs"].values():
            assert job.get("timeout-minutes"), f"{path.name}: a job without a time limit"
    sharded = yaml.safe_load((ROOT / ".github/workflows/grade-class.yml").read_text())
    shards = sharded["jobs"]["grade"]["strategy"]["matrix"]["shard"]
    run = json.dumps(sharded["jobs"]["grade"]["steps"])
    assert shards == list(range(1, len(shards) + 1)) and f"$SHARD/{len(shards)}" in run
    assert "autograde merge graded-*" in json.dumps(sharded["jobs"]["merge"]["steps"])
    ci = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    assert ci["jobs"]["gpu"]["if"] == "vars.GPU_RUNNER == 'true'"
    assert ".ci/run" in json.dumps(ci["jobs"]["test"]["steps"])


def _triggers(flow: dict) -> dict:
    return flow[True] if True in flow else flow["on"]  # YAML 1.1 reads `on:` as True


def test_only_the_base_branch_s_workflow_can_grade_or_post() -> None:
    """What a pull request can edit is what runs for `pull_request` (its own copy of the
    workflow); `pull_request_target` runs the base branch's. So: nothing triggered by
    `pull_request` may grade, post, or hold more than a read token; the grading job holds
    no token rights and no secrets, installs only the base checkout and touches the head
    checkout only as `--head head`; the comment job checks nothing out and runs nothing."""
    for path in WORKFLOWS:
        flow = yaml.safe_load(path.read_text())
        text = path.read_text()
        assert "workflow_run" not in _triggers(flow), path  # its artifact would be the PR's
        assert "secrets." not in text, path
        if "pull_request" in _triggers(flow):
            assert flow["permissions"] == {"contents": "read"}, path
            assert "autograde ci-grade" not in text and "createComment" not in text, path
    grade_pr = yaml.safe_load((ROOT / ".github/workflows/grade-pr.yml").read_text())
    assert set(_triggers(grade_pr)) == {"pull_request_target"}
    assert grade_pr["permissions"] == {}
    grade, comment = grade_pr["jobs"]["grade"], grade_pr["jobs"]["comment"]
    assert grade["permissions"] == {}
    checkouts = [s for s in grade["steps"] if s.get("uses", "").startswith("actions/checkout@")]
    assert [s["with"]["path"] for s in checkouts] == ["base", "head"]
    assert checkouts[0]["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    assert all(s["with"]["persist-credentials"] is False for s in checkouts)
    runs = [s["run"] for s in grade["steps"] if "run" in s]
    assert [r for r in runs if "pip install" in r] == [
        "python -m pip install -c base/constraints.txt -e ./base"
    ]
    assert [r for r in runs if "head" in r] == [
        "autograde ci-grade --base base --head head --out graded --require-sandbox"
    ]
    assert comment["needs"] == "grade" and comment["permissions"] == {"pull-requests": "write"}
    assert not any("run" in s or "checkout" in s.get("uses", "") for s in comment["steps"])
    script = comment["steps"][-1]["with"]["script"]
    assert "context.payload.pull_request.number" in script


def post_comment(artifact: Path, event_number: int) -> list[dict]:
    """Run the base branch's comment script, as actions/github-script would (an async
    function given github, context, core and require), in the downloaded artifact's folder;
    returns the calls it made."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed to run the workflow's github-script (apt install nodejs)")
    flow = yaml.safe_load((ROOT / ".github/workflows/grade-pr.yml").read_text())
    script = flow["jobs"]["comment"]["steps"][-1]["with"]["script"]
    harness = (
        "const calls = [];\n"
        "const github = {rest: {issues: {createComment: async (a) => { calls.push(a); }}}};\n"
        "const core = {setFailed: (m) => calls.push({failed: m})};\n"
        f"const context = {{payload: {{pull_request: {{number: {event_number}}}}},"
        " repo: {owner: 'course', repo: 'lab'}};\n"
        f"(async () => {{\n{script}\n}})().then(() => console.log(JSON.stringify(calls)));\n"
    )
    done = subprocess.run([node, "-e", harness], cwd=artifact, capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    return json.loads(done.stdout)


def test_the_comment_goes_to_the_pull_request_of_the_event(tmp_path: Path) -> None:
    (tmp_path / "graded").mkdir()
    (tmp_path / "graded" / "summary.md").write_text("backprop.ipynb (backprop): 12/15\n")
    (tmp_path / "pr-number.txt").write_text("999\n")  # what an old artifact named: ignored
    assert post_comment(tmp_path, 42) == [
        {"owner": "course", "repo": "lab", "issue_number": 42,
         "body": "backprop.ipynb (backprop): 12/15\n"}
    ]  # fmt: skip
    (tmp_path / "graded" / "summary.md").unlink()  # the grading job died: say so
    [call] = post_comment(tmp_path, 42)
    assert call["issue_number"] == 42 and "produced no summary" in call["body"]


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
    shutil.copytree(ROOT / ".github", dest / ".github")
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
def test_pr_editing_the_grader_or_workflows_is_graded_and_posted_by_the_base(
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
    # ... and workflows that would post full marks if the PR's copies ran
    forged = (
        "jobs:\n  grade:\n    steps:\n"
        "      - run: echo 'backprop: 15/15 forged' > graded/summary.md\n"
    )
    for name in ("grade-pr.yml", "ci.yml"):
        (head / ".github" / "workflows" / name).write_text(f"on: pull_request\n{forged}")
    summary = tmp_path / "summary.md"
    out = tmp_path / "artifact" / "graded"
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
    assert "`.github/workflows/grade-pr.yml`" in md and "`.github/workflows/ci.yml`" in md
    assert "backprop.ipynb (backprop): 12/15" in md and "❌ failed" in md
    assert "transposed" in md and "forged" not in md
    # what the base branch's comment job posts, and where
    [comment] = post_comment(out.parent, 31)
    assert comment["issue_number"] == 31
    assert comment["body"] == (out / "summary.md").read_text() == md

    warnings = [p for p in printed if p.startswith("::warning ")]
    errors = [p for p in printed if p.startswith("::error ")]
    assert len(warnings) == 1  # one warning naming every file that was not used
    assert "3 file(s)" in warnings[0] and "autograder/score.py" in warnings[0]
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
