"""`autograde grade`: finding submissions in the layouts courses use, one record per
submission whatever happened, grades.csv that round-trips, re-runs that skip what is
graded, and a run killed half-way that the next run finishes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from grading_tools import full_marks, validate_gradescope
from notebook_tools import SOLUTION, STUB

from backprop_lab import pipeline
from backprop_lab.course import exercises_for
from backprop_lab.gradebook.batch import grade_submissions, merge
from backprop_lab.gradebook.grades import grades_rows, read_grades_csv
from backprop_lab.gradebook.merge import in_shard
from backprop_lab.gradebook.submissions import find_submissions
from backprop_lab.pipeline import Options
from backprop_lab.verbs.cli import main


def put(path: Path, source: Path | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, bytes):
        path.write_bytes(source)
    else:
        shutil.copy(source, path)
    return path


def records(out: Path) -> dict[str, dict]:
    """key (student/leaf) -> results.json, read from disk."""
    return {
        str(p.parent.relative_to(out / "submissions")): json.loads(p.read_text())
        for p in sorted(out.glob("submissions/*/*/results.json"))
    }


# -- finding submissions (no grading: fast) -----------------------------------------------


def test_finds_nbgrader_layout_from_course_root_and_from_submitted(tmp_path: Path) -> None:
    put(tmp_path / "submitted/alice/backprop/backprop.ipynb", SOLUTION["backprop"])
    put(tmp_path / "submitted/alice/matmul/matmul.ipynb", SOLUTION["matmul"])
    put(tmp_path / "submitted/bob/backprop/.ipynb_checkpoints/backprop-checkpoint.ipynb", b"{}")
    (tmp_path / "submitted/carol").mkdir()
    for where in (tmp_path, tmp_path / "submitted"):
        found = find_submissions([where])
        assert [(s.student, s.assignment, s.key) for s in found] == [
            ("alice", "backprop", "alice/backprop"),
            ("alice", "matmul", "alice/matmul"),
            ("bob", "backprop", "bob/backprop"),  # only a checkpoint: nothing submitted
            ("carol", None, "carol/no-notebook"),
        ]
        assert found[2].notebook is None and "nothing was submitted" in found[2].problem


def test_finds_student_folders_flat_notebooks_and_single_files(tmp_path: Path) -> None:
    put(tmp_path / "class/alice/work/backprop.ipynb", SOLUTION["backprop"])
    put(tmp_path / "class/alice/backprop.ipynb", STUB["backprop"])  # same stem: both kept
    put(tmp_path / "class/bob.ipynb", STUB["matmul"])
    put(tmp_path / "class/__MACOSX/alice/._backprop.ipynb", b"junk")
    found = find_submissions([tmp_path / "class", tmp_path / "class/bob.ipynb"])
    assert [(s.student, s.key) for s in found] == [
        ("bob", "bob/bob"),  # results under <student>/<notebook stem>
        ("alice", "alice/backprop"),
        ("alice", "alice/backprop__backprop"),
    ]
    single = find_submissions([tmp_path / "class/alice/work/backprop.ipynb"])
    assert [(s.student, s.key) for s in single] == [("work", "work/backprop")]


def test_nothing_to_grade_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["grade", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no notebooks found" in capsys.readouterr().err
    assert main(["grade", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_a_grader_error_is_recorded_and_the_batch_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(tmp_path / "class/alice/backprop.ipynb", STUB["backprop"])
    put(tmp_path / "class/bob/backprop.ipynb", STUB["backprop"])

    def grade_that_breaks_on_alice(path, options, **kwargs):
        if "alice" in str(path):
            raise RuntimeError("boom")
        return real_grade(path, options, **kwargs)

    real_grade = pipeline.grade
    monkeypatch.setattr(pipeline, "grade", grade_that_breaks_on_alice)
    summary = grade_submissions([tmp_path / "class"], tmp_path / "out", workers=1, progress=False)
    assert summary.exit_code == 1
    recs = records(tmp_path / "out")
    assert recs["alice/backprop"]["extra_data"]["status"] == "error"
    assert "RuntimeError: boom" in recs["alice/backprop"]["output"]
    assert "not the student's doing" in recs["alice/backprop"]["output"]
    assert recs["bob/backprop"]["extra_data"]["status"] == "graded"
    # a grader error is tried again on the next run; a graded notebook is not
    monkeypatch.setattr(pipeline, "grade", real_grade)
    again = grade_submissions([tmp_path / "class"], tmp_path / "out", workers=1, progress=False)
    assert again.skipped == 1 and again.exit_code == 0


# -- grading a class ----------------------------------------------------------------------


@pytest.mark.slow
def test_grade_a_class_in_nbgrader_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    course = tmp_path / "course"
    put(course / "submitted/alice/backprop/backprop.ipynb", SOLUTION["backprop"])
    put(course / "submitted/bob/backprop/backprop.ipynb", STUB["backprop"])
    put(course / "submitted/carol/backprop/backprop.ipynb", b"{not json")
    put(course / "submitted/erin/matmul/matmul.ipynb", SOLUTION["matmul"])
    (course / "submitted/dave").mkdir()
    out = tmp_path / "out"
    argv = ["grade", str(course), "--out", str(out), "--workers", "2", "--quiet"]
    assert main(argv) == 1  # two submissions could not be graded
    err = capsys.readouterr().err
    assert "carol (ungradeable)" in err and "dave (ungradeable)" in err

    recs = records(out)
    assert sorted(recs) == [
        "alice/backprop",
        "bob/backprop",
        "carol/backprop",
        "dave/no-notebook",
        "erin/matmul",
    ]
    for key, rec in recs.items():
        validate_gradescope(rec, tests_required=key in ("alice/backprop", "bob/backprop"))
    full = {a: sum(e.points for e in exercises_for(a)) for a in ("backprop", "matmul")}
    assert recs["alice/backprop"]["score"] == full["backprop"]
    assert recs["erin/matmul"]["score"] == full["matmul"]
    assert recs["bob/backprop"]["score"] == 0
    assert all("not implemented yet" in t["output"] for t in recs["bob/backprop"]["tests"])
    assert "not valid notebook JSON" in recs["carol/backprop"]["output"]
    assert "nothing was submitted" in recs["dave/no-notebook"]["output"]

    # grades.csv: one row per submission, per-exercise points, and it round-trips
    rows = read_grades_csv(out / "grades.csv")
    header, expected = grades_rows(recs.values())
    assert list(rows[0]) == header and rows == expected
    by_student = {r["student"]: r for r in rows}
    assert by_student["alice"]["score"] == by_student["alice"]["max"] == str(full["backprop"])
    for e in exercises_for("backprop"):
        assert by_student["alice"][e.cell] == str(e.points)
        assert by_student["bob"][e.cell] == "0"
        assert by_student["erin"][e.cell] == ""  # not erin's assignment
    assert by_student["carol"]["status"] == "ungradeable"
    assert by_student["carol"]["score"] == "0"
    assert by_student["carol"]["max"] == str(full["backprop"])

    summary = (out / "summary.md").read_text()
    assert "5 submissions: 3 graded, 2 could not be graded" in summary
    assert "## Needs a person" in summary and "| carol | ungradeable |" in summary
    assert "not-implemented (1)" in summary  # bob's mistakes are counted per check


@pytest.mark.slow
def test_rerun_skips_unchanged_and_regrades_changed(tmp_path: Path) -> None:
    alice = put(tmp_path / "class/alice/backprop.ipynb", SOLUTION["backprop"])
    bob = put(tmp_path / "class/bob/backprop.ipynb", STUB["backprop"])
    out = tmp_path / "out"
    first = grade_submissions([tmp_path / "class"], out, workers=1, progress=False)
    assert first.skipped == 0 and first.exit_code == 0
    stamp = (out / "submissions/alice/backprop/results.json").stat().st_mtime_ns

    again = grade_submissions([tmp_path / "class"], out, workers=1, progress=False)
    assert again.skipped == 2 and again.records == first.records
    assert (out / "submissions/alice/backprop/results.json").stat().st_mtime_ns == stamp

    shutil.copy(SOLUTION["backprop"], bob)  # bob resubmits a full answer
    third = grade_submissions([tmp_path / "class"], out, workers=1, progress=False)
    assert third.skipped == 1
    assert [r["score"] for r in third.records] == [full_marks("backprop")] * 2
    # another seed is another grading: nothing is reused
    fourth = grade_submissions(
        [tmp_path / "class"], out, options=Options(seed=7), workers=1, progress=False
    )
    assert fourth.skipped == 0 and {r["extra_data"]["seed"] for r in fourth.records} == {7}
    assert alice.exists()


@pytest.mark.slow
def test_a_rerun_trusts_only_records_the_grader_signed(tmp_path: Path) -> None:
    """A record planted or edited by anything but the grader (a process a notebook left
    behind, a student with access to the folder) is graded again, not reused."""
    put(tmp_path / "class/alice/backprop.ipynb", STUB["backprop"])
    put(tmp_path / "class/bob/backprop.ipynb", SOLUTION["backprop"])
    out = tmp_path / "out"
    first = grade_submissions([tmp_path / "class"], out, workers=1, progress=False)
    assert [r["score"] for r in first.records] == [0, full_marks("backprop")]
    key = out / ".autograde-key"
    assert key.stat().st_mode & 0o077 == 0  # the signing key is the grader's alone
    forged = out / "submissions/alice/backprop/results.json"
    record = json.loads(forged.read_text())
    record["score"] = 15
    forged.write_text(json.dumps(record))
    again = grade_submissions([tmp_path / "class"], out, workers=1, progress=False)
    assert again.skipped == 1  # bob's untouched record; alice's forged one is regraded
    assert [r["score"] for r in again.records] == [0, full_marks("backprop")]
    assert json.loads(forged.read_text())["score"] == 0


@pytest.mark.slow
def test_a_run_killed_half_way_is_finished_by_the_next(tmp_path: Path) -> None:
    for student in ("ann", "ben", "cat"):  # three different files, each graded
        nb = nbformat.read(SOLUTION["matmul"], as_version=4)
        nb.cells.append(nbformat.v4.new_markdown_cell(f"Submitted by {student}."))
        (tmp_path / f"class/{student}").mkdir(parents=True)
        nbformat.write(nb, tmp_path / f"class/{student}/matmul.ipynb")
    out = tmp_path / "out"
    argv = ["grade", str(tmp_path / "class"), "--out", str(out), "--workers", "1", "--quiet"]
    cmd = [sys.executable, "-m", "backprop_lab.verbs.cli", *argv]
    # its own session, so the kill takes its kernels too, like a closed terminal would
    proc = subprocess.Popen(cmd, start_new_session=True, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.glob("submissions/*/*/results.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = list(out.glob("submissions/*/*/results.json"))
    assert 1 <= len(finished) < 3, "the run was meant to be killed half-way"
    assert not (out / "grades.csv").exists()
    for p in finished:  # written atomically: never half a file
        assert json.loads(p.read_text())["extra_data"]["status"] == "graded"

    summary = grade_submissions([tmp_path / "class"], out, workers=1, progress=False)
    assert summary.exit_code == 0
    assert summary.skipped == len(finished)
    assert [r["score"] for r in summary.records] == [full_marks("matmul")] * 3
    assert len(read_grades_csv(out / "grades.csv")) == 3


def test_identical_notebooks_are_graded_once_and_recorded_for_each(tmp_path: Path) -> None:
    for student in ("ann", "ben"):
        put(tmp_path / f"class/{student}/backprop.ipynb", STUB["backprop"])
    summary = grade_submissions([tmp_path / "class"], tmp_path / "out", workers=1, progress=False)
    recs = records(tmp_path / "out")
    assert summary.exit_code == 0 and set(recs) == {"ann/backprop", "ben/backprop"}
    assert recs["ben/backprop"]["extra_data"]["identical_to"] == "ann"
    assert recs["ben/backprop"]["extra_data"]["student"] == "ben"
    assert recs["ben/backprop"]["tests"] == recs["ann/backprop"]["tests"]


def test_shards_are_stable_and_cover_the_class_once() -> None:
    keys = [f"student{i}/backprop" for i in range(300)]
    parts = [[k for k in keys if in_shard(k, i, 3)] for i in (1, 2, 3)]
    assert sorted(k for p in parts for k in p) == sorted(keys)  # each key in exactly one part
    assert all(60 < len(p) < 140 for p in parts)  # and the parts are not lopsided
    assert [k for k in keys[:50] if in_shard(k, 2, 3)] == [k for k in parts[1] if k in keys[:50]]
    with pytest.raises(ValueError):
        in_shard("x", 4, 3)


def test_merge_refuses_a_part_in_the_old_layout(tmp_path: Path) -> None:
    """Results straight under the part's folder (before submissions/): graded by an older
    grader, so refused with what to do, not merged into an empty class."""
    old = tmp_path / "part-1" / "alice" / "backprop" / "results.json"
    old.parent.mkdir(parents=True)
    old.write_text("{}")
    with pytest.raises(ValueError, match="older grader"):
        merge([tmp_path / "part-1"], tmp_path / "merged")


@pytest.mark.slow
def test_three_shards_merged_equal_one_unsharded_run(tmp_path: Path) -> None:
    sources = [SOLUTION["backprop"], STUB["backprop"], b"{not json"]
    for i in range(9):
        put(tmp_path / f"class/s{i}/backprop.ipynb", sources[i % 3])
    whole = grade_submissions([tmp_path / "class"], tmp_path / "whole", workers=2, progress=False)
    shard_dirs = []
    for k in (1, 2, 3):
        argv = ["grade", str(tmp_path / "class"), "--out", str(tmp_path / f"shard{k}"),
                "--shard", f"{k}/3", "--quiet", "--workers", "1"]  # fmt: skip
        main(argv)
        shard_dirs.append(str(tmp_path / f"shard{k}"))
    assert main(["merge", *shard_dirs, "--out", str(tmp_path / "merged")]) == 1  # 3 ungradeable
    merged = read_grades_csv(tmp_path / "merged" / "grades.csv")
    assert merged == read_grades_csv(tmp_path / "whole" / "grades.csv")
    assert len(merged) == 9 and len(whole.records) == 9
    # the students' reports are gathered too, where the merged summary links them
    reports = sorted(p.relative_to(tmp_path / "merged").as_posix()
                     for p in (tmp_path / "merged").rglob("feedback.html"))  # fmt: skip
    assert reports == [f"submissions/s{i}/backprop/feedback.html" for i in range(9) if i % 3 != 2]
    summary = (tmp_path / "merged" / "summary.md").read_text()
    assert all(f"[report]({r})" in summary for r in reports)


@pytest.mark.slow
@pytest.mark.parametrize("fork_kernels", [True, False], ids=["forked-kernels", "fresh-kernels"])
def test_no_state_leaks_from_one_submission_to_the_next(tmp_path: Path, fork_kernels: bool) -> None:
    # ann's notebook leaves marks in the kernel (a global, a builtin, an environment
    # variable, a module, torch's default dtype); ben's, graded next in the same worker,
    # must see none, whether kernels are forked from a fork server or started afresh
    nb = nbformat.read(SOLUTION["matmul"], as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "import builtins, os, sys\nLEAK = 1\nbuiltins.LEAK = 1\nos.environ['LEAK'] = '1'\n"
        "sys.modules['LEAK'] = sys\ntorch.set_default_dtype(torch.float64)"))  # fmt: skip
    (tmp_path / "class/ann").mkdir(parents=True)
    nbformat.write(nb, tmp_path / "class/ann/matmul.ipynb")
    nb = nbformat.read(SOLUTION["matmul"], as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(
        "import builtins, os, torch\nassert 'LEAK' not in globals()\n"
        "assert not hasattr(builtins, 'LEAK') and 'LEAK' not in os.environ\n"
        "import sys\nassert 'LEAK' not in sys.modules\n"
        "assert torch.get_default_dtype() == torch.float32"))  # fmt: skip
    (tmp_path / "class/ben").mkdir(parents=True)
    nbformat.write(nb, tmp_path / "class/ben/matmul.ipynb")
    options = Options(fork_kernels=fork_kernels)
    summary = grade_submissions(
        [tmp_path / "class"], tmp_path / "out", options=options, workers=1, progress=False
    )
    ben = next(r for r in summary.records if r["extra_data"]["student"] == "ben")
    assert ben["score"] == full_marks("matmul") and "AssertionError" not in ben["output"], ben[
        "output"
    ]
