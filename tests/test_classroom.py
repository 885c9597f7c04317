"""GitHub Classroom's side of a student's repository (backprop_lab/verbs/classroom.py): the points
in the reporter's format, as its source reads them, and annotations on the student's code."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

from notebook_tools import STUB


def _results(*tests: tuple[str, str, int, int]) -> dict:
    """A results.json as `autograde check --json` writes it."""
    return {
        "score": sum(t[2] for t in tests),
        "output": "…",
        "tests": [{"name": f"{ex}: {name}", "score": score, "max_score": most, "tags": [ex],
                   "output": f"{name} is wrong"} for ex, name, score, most in tests],
        "extra_data": {"max_score": sum(t[3] for t in tests)},
    }  # fmt: skip


def test_the_reporter_gets_every_check_and_the_dashboard_the_points(tmp_path: Path) -> None:
    from backprop_lab.verbs.classroom import classroom_results

    nb = "assignments/backprop/backprop.ipynb"
    got = classroom_results([(nb, _results(("mse_grad", "batch > 1", 0, 1),
                                           ("relu_grad", "sets inp.g", 2, 2)))])  # fmt: skip
    assert got["version"] == 1 and got["status"] == "fail" and got["max_score"] == 3
    assert [(t["status"], t["score"], t["max_score"]) for t in got["tests"]] == [
        ("fail", 0, 1), ("pass", 2, 2)]  # fmt: skip
    # what notify-classroom.js sends the dashboard: the tests' scores over max_score
    assert (sum(t["score"] for t in got["tests"]), got["max_score"]) == (2, 3)
    passing = classroom_results([(nb, _results(("relu_grad", "sets inp.g", 2, 2)))])
    assert passing["status"] == "pass"
    broken = classroom_results([(nb, {"output": "not valid notebook JSON", "tests": [],
                                      "extra_data": {"max_score": 15}})])  # fmt: skip
    assert broken["status"] == "error" and broken["max_score"] == 15
    assert "not valid notebook JSON" in broken["tests"][0]["message"]


def test_the_workflow_step_writes_the_output_and_annotates_the_code(tmp_path: Path) -> None:
    results = tmp_path / "backprop.json"
    results.write_text(json.dumps(_results(("mse_grad", "batch > 1", 0, 1),
                                           ("relu_grad", "sets inp.g", 2, 2))))  # fmt: skip
    output = tmp_path / "github_output"
    done = subprocess.run(
        [sys.executable, "-m", "backprop_lab.verbs.classroom", f"{STUB['backprop']}={results}"],
        capture_output=True, text=True, check=True,
        env={"GITHUB_OUTPUT": str(output), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    [line] = [ln for ln in done.stdout.splitlines() if ln.startswith("::error")]
    # on the line of the notebook file that holds `def mse_grad`, not on its metadata
    at = int(line.split(",line=")[1].split(",")[0])
    assert '"def mse_grad(' in STUB["backprop"].read_text().splitlines()[at - 1]
    assert "relu_grad" not in line  # a passing check is no annotation
    key, _, value = output.read_text().strip().partition("=")
    assert key == "results"
    assert json.loads(base64.b64decode(value))["max_score"] == 3
