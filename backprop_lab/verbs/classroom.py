"""GitHub Classroom's side of a student's repository: `autograde check`'s results in the
format of Classroom's autograding reporter (`classroom-resources/autograding-grading-
reporter`), so that the points reach the Classroom dashboard, and one annotation per
failed check on the line of the student's code it is about.

    python -m backprop_lab.verbs.classroom NOTEBOOK=RESULTS.json...

RESULTS.json is what `autograde check NOTEBOOK --json RESULTS.json` wrote. Prints the
annotations (workflow commands), and writes `results=<base64 JSON>` to $GITHUB_OUTPUT
for the reporter, which reads it from `<RUNNER>_RESULTS` (see the release's workflow).

The reporter's format, as its source reads it (src/main.js, src/notify-classroom.js):
`{"version": 1, "status": "pass" | "fail" | "error", "max_score": N, "tests": [{"name",
"status": "pass" | "fail" | "error", "score", "max_score", "message"}]}`; the dashboard
gets the sum of the tests' scores over the sum of `max_score`.

These points are the self-check's (the student's repository is theirs, and can hold no
secret: no grading seed, no hidden test), shown to the student and the instructor as
feedback. The grade of record is the instructor's batch with the secret seed, or
Gradescope's (README, "Which grade counts").
"""

# No `from __future__ import annotations`: `annotations` below, a function, would take the
# name of that import (the annotations here all evaluate on Python 3.11).
import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..report.annotations import annotation, exercise_line

__all__ = ["classroom_results", "main"]


def classroom_results(graded: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The reporter's JSON for (notebook, Gradescope-style results) pairs: one test per
    check of every notebook; a notebook that could not be graded is one test in error,
    worth the points it would have had."""
    tests: list[dict[str, Any]] = []
    for notebook, results in graded:
        if not results.get("tests"):
            tests.append({
                "name": f"{notebook}: could not be graded", "status": "error", "score": 0,
                "max_score": results.get("extra_data", {}).get("max_score", 0),
                "message": str(results.get("output", ""))[:2000],
            })  # fmt: skip
            continue
        for test in results["tests"]:
            passed = test.get("score", 0) >= test.get("max_score", 0)
            tests.append({
                "name": f"{notebook}: {test['name']}",
                "status": "pass" if passed else "fail",
                "score": test.get("score", 0), "max_score": test.get("max_score", 0),
                "message": str(test.get("output", ""))[:2000],
            })  # fmt: skip
    statuses = {t["status"] for t in tests}
    status = "error" if "error" in statuses else "fail" if "fail" in statuses else "pass"
    return {"version": 1, "status": status, "max_score": sum(t["max_score"] for t in tests),
            "tests": tests}  # fmt: skip


def annotations(notebook: str, results: dict[str, Any]) -> list[str]:
    """One `::error` per failed check, on the line of the notebook file that holds the
    exercise's code (its `def`), titled with the check, the message the student reads."""
    out = []
    for test in results.get("tests", []):
        if test.get("score", 0) >= test.get("max_score", 0):
            continue
        exercise = (test.get("tags") or [None])[0]
        line = exercise_line(Path(notebook), exercise) if exercise else 1
        out.append(annotation("error", notebook, line, str(test["name"]),
                              str(test.get("output", ""))))  # fmt: skip
    return out


def main(argv: list[str]) -> int:
    if not argv or not all("=" in a for a in argv):
        print(
            "usage: python -m backprop_lab.verbs.classroom NOTEBOOK=RESULTS.json...",
            file=sys.stderr,
        )
        return 2
    graded = []
    for pair in argv:
        notebook, _, path = pair.partition("=")
        try:
            results = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            results = {"output": f"no results from autograde check ({exc})", "tests": []}
        graded.append((notebook, results))
        for line in annotations(notebook, results):
            print(line)
    encoded = base64.b64encode(json.dumps(classroom_results(graded)).encode()).decode()
    if os.environ.get("GITHUB_OUTPUT"):
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as f:
            f.write(f"results={encoded}\n")
    else:
        print(encoded)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
