"""CI: the workflows parse and pass zizmor; `autograde ci-grade` grades a pull request's
notebooks with the base branch's grader, flags edits to the grader, and writes the step
summary and annotations GitHub shows."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from grading_tools import full_marks, points
from mistake_cases import MISTAKES
from notebook_tools import ROOT

from backprop_lab.plan.notebook import read_notebook, replace_function
from backprop_lab.report.annotations import annotation, exercise_line
from backprop_lab.verbs.ci import changed_files
from backprop_lab.verbs.cli import main

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
# The one composite action that lets the sandbox make user namespaces, for every job.
ACTION = ROOT / ".github" / "actions" / "allow-user-namespaces" / "action.yml"
# A grading command (it runs student code in the sandbox), however the grader is called.
GRADES = re.compile(r"(?:\bautograde|-m\s+autograder(?:\.cli)?)\s+(?:grade|ci-grade|verify)\b")
# A step that runs the sandbox's tests or grades.
SANDBOXES = re.compile(rf"{GRADES.pattern}|\bpytest\b|\.ci/run\b")
NOTEBOOK = "assignments/backprop/backprop.ipynb"

TRANSPOSED = next(m for m in MISTAKES if m.name == "transposed")


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


def _commands(script: str) -> list[str]:
    """The shell commands of a `run:` script: its lines (continuations joined), split at
    `&&`, `||`, `;` and `|`."""
    return [c.strip() for c in re.split(r"&&|\|\||;|\||\n", script.replace("\\\n", " "))]


def test_every_job_that_sandboxes_first_lets_user_namespaces_be_made() -> None:
    """Ubuntu 24.04 refuses unprivileged user namespaces, which the sandbox needs: every job
    that grades or runs the sandbox's tests uses the one shared action that allows (and
    proves) them, after the checkout it comes from and before the first step that needs
    it; grade-pr.yml uses the base branch's copy, never the pull request's."""
    found = set()
    for path in WORKFLOWS:
        flow = yaml.safe_load(path.read_text())
        # grade-pr.yml: the base branch is checked out at base/, the pull request at head/
        checkout_path = "base" if path.name == "grade-pr.yml" else None
        where = f"./{checkout_path}/" if checkout_path else "./"
        expected = f"{where}.github/actions/allow-user-namespaces"
        for name, job in flow["jobs"].items():
            steps = job.get("steps", [])
            uses = [s.get("uses", "") for s in steps]
            assert not [u for u in uses if u.startswith(("./head", "head/"))], (path.name, name)
            allow = [
                i for i, u in enumerate(uses) if u.rstrip("/").endswith("allow-user-namespaces")
            ]
            assert all(uses[i] == expected for i in allow), (path.name, name, uses)
            needs = [i for i, s in enumerate(steps) if SANDBOXES.search(s.get("run", ""))]
            if not needs:
                continue
            found.add((path.name, name))
            assert allow and allow[0] < needs[0], f"{path.name}: job {name} needs {expected} first"
            checkouts = [i for i, s in enumerate(steps[: allow[0]])
                         if s.get("uses", "").startswith("actions/checkout@")
                         and s.get("with", {}).get("path") == checkout_path]  # fmt: skip
            assert checkouts, f"{path.name}: job {name} uses {expected} before checking it out"
    assert found == {("ci.yml", "test"), ("ci.yml", "gpu"), ("grade-class.yml", "grade"),
                     ("grade-pr.yml", "grade")}  # fmt: skip


def test_every_grading_command_requires_the_sandbox() -> None:
    """No workflow grades student code unisolated: `autograde grade`, `ci-grade` and
    `verify` refuse (exit 2) where the sandbox cannot be made."""
    graded = []
    for path in WORKFLOWS:
        for name, job in yaml.safe_load(path.read_text())["jobs"].items():
            for step in job.get("steps", []):
                for command in _commands(step.get("run", "")):
                    if GRADES.search(command):
                        graded.append(command)
                        assert "--require-sandbox" in command.split(), (path.name, name, command)
    assert len(graded) >= 4, graded  # ci.yml twice, grade-class.yml, grade-pr.yml


def test_the_shared_action_lifts_apparmor_s_restriction_and_proves_namespaces() -> None:
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite" and action["name"] and action["description"]
    steps = action["runs"]["steps"]
    assert all(s.get("shell") == "bash" and s.get("run") for s in steps), steps
    assert not any("continue-on-error" in s or "if" in s for s in steps), steps
    runs = [s["run"] for s in steps]
    # commands, not words in a message: a line that runs the sysctl, one that runs unshare
    key = r"kernel\.apparmor_restrict_unprivileged_userns"
    sysctl = re.compile(rf"^\s*(\$sudo\s+)?sysctl -w {key}=0", re.M)
    unshare = re.compile(r"(^\s*|\$\()unshare --user --map-root-user true\b", re.M)
    lift = [i for i, r in enumerate(runs) if sysctl.search(r)]
    prove = [i for i, r in enumerate(runs) if unshare.search(r)]
    assert lift and prove and lift[0] < prove[0], runs
    # the key may not exist (older kernels): checked for, not an error
    assert "[ ! -e /proc/sys/kernel/apparmor_restrict_unprivileged_userns ]" in runs[lift[0]]
    assert "::error" in runs[prove[0]] and "exit 1" in runs[prove[0]]


@pytest.mark.parametrize(
    ("unshare", "python", "rc", "says"),
    [
        ("exit 0", "exit 0", 0, "user namespaces: available"),
        ("echo 'write failed /proc/self/uid_map' >&2; exit 1", "exit 0", 1,
         "::error title=No user namespaces::This runner cannot make user namespaces"),
        ("exit 0", "echo 'PermissionError: uid_map' >&2; exit 1", 1,
         "::error title=No user namespaces::This runner's Python"),
    ],
)  # fmt: skip
def test_the_proof_fails_the_job_saying_what_to_do(
    tmp_path: Path, unshare: str, python: str, rc: int, says: str
) -> None:
    """The action's proof step, run by bash as a runner would, with an `unshare` and a
    Python that succeed or refuse as on a runner with or without user namespaces."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    steps = yaml.safe_load(ACTION.read_text())["runs"]["steps"]
    script = next(s["run"] for s in steps if "unshare --user" in s["run"])
    for name, body in (("unshare", unshare), ("python3", python)):
        (tmp_path / name).write_text(f"#!/bin/sh\n{body}\n")
        (tmp_path / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([bash, "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == rc, done.stdout + done.stderr
    assert says in done.stdout
    if rc:
        assert "apparmor_restrict_unprivileged_userns=0" in done.stdout  # what to do


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
         str(ROOT / ".github")],  # the workflows and the composite action
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
    for name in ("backprop_lab", "assignments", "solutions"):
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
    (head / "backprop_lab" / "judge" / "score.py").write_text("# edited\n")
    (head / "assignments" / "new.ipynb").write_text("{}")
    (base / "solutions" / "backprop" / "backprop.ipynb").unlink()
    assert changed_files(base, head) == [
        "assignments/new.ipynb",
        "backprop_lab/judge/score.py",
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
    score_py = head / "backprop_lab" / "judge" / "score.py"
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
    # the base grader's verdict: the transposed w.g loses its check and the two it feeds
    full = full_marks("backprop")
    left = full - points("backprop", TRANSPOSED.lost)
    assert record["score"] == left
    # the student's report travels in the artifact, with the transposed w.g drawn
    report = (out / "assignments/backprop/backprop/feedback.md").read_text()
    assert f"# Feedback on backprop.ipynb (backprop): {left}/{full}" in report
    assert "![heat map of w.g: yours against expected](feedback_files/" in report
    md = summary.read_text()
    assert "[!WARNING]" in md and "`backprop_lab/judge/score.py`" in md
    assert "`.github/workflows/grade-pr.yml`" in md and "`.github/workflows/ci.yml`" in md
    assert f"backprop.ipynb (backprop): {left}/{full}" in md and "❌ failed" in md
    assert "transposed" in md and "forged" not in md
    # what the base branch's comment job posts, and where
    [comment] = post_comment(out.parent, 31)
    assert comment["issue_number"] == 31
    assert comment["body"] == (out / "summary.md").read_text() == md

    warnings = [p for p in printed if p.startswith("::warning ")]
    errors = [p for p in printed if p.startswith("::error ")]
    assert len(warnings) == 1  # one warning naming every file that was not used
    assert "3 file(s)" in warnings[0] and "backprop_lab/judge/score.py" in warnings[0]
    assert 1 <= len(errors) <= 9
    assert all(f"file={NOTEBOOK}" in e for e in errors)
    lin_grad = next(e for e in errors if "lin_grad sets w.g" in e)
    line = int(lin_grad.split(",line=")[1].split(",")[0])
    # the line of the student's `def lin_grad`, not the cell's metadata above it
    assert '"def lin_grad(' in (head / NOTEBOOK).read_text().splitlines()[line - 1]


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ["backprop", "training"])
def test_a_passing_pr_gets_a_clean_summary(
    base_and_head, tmp_path: Path, capsys: pytest.CaptureFixture, assignment: str
) -> None:
    base, head = base_and_head
    nb = read_notebook(ROOT / "solutions" / assignment / f"{assignment}.ipynb")
    import nbformat

    nbformat.write(nb, head / "assignments" / assignment / f"{assignment}.ipynb")
    summary = tmp_path / "summary.md"
    argv = ["ci-grade", "--base", str(base), "--head", str(head), "--summary", str(summary)]
    assert main(argv) == 0
    assert not [p for p in capsys.readouterr().out.splitlines() if p.startswith("::")]
    md = summary.read_text()
    full = full_marks(assignment)
    assert f"{assignment}.ipynb ({assignment}): {full}/{full}" in md and "WARNING" not in md


def test_refuses_to_run_a_grader_that_is_not_the_base_branch(
    base_and_head, capsys: pytest.CaptureFixture
) -> None:
    base, head = base_and_head
    (base / "backprop_lab" / "judge" / "compare.py").write_text("# the base branch moved on\n")
    assert main(["ci-grade", "--base", str(base), "--head", str(head)]) == 2
    err = capsys.readouterr().err
    assert "not the base branch's" in err and "backprop_lab/judge/compare.py" in err


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
    assert '"def mse_grad(inp, targ):' in lines[exercise_line(path, "mse_grad") - 1]
    assert '"x = 1"' in lines[exercise_line(path, "one_liner") - 1]
    assert exercise_line(path, "no_such_cell") == 1
