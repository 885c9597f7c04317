"""The one record of a graded submission: what is written is what is read back, in the
shape Gradescope reads, and the readers (gradebook, Gradescope) get typed fields."""

from __future__ import annotations

import json
from pathlib import Path

from grading_tools import validate_gradescope

from backprop_lab.gradebook.grades import grades_rows, summary_markdown
from backprop_lab.options import Options
from backprop_lab.report.records import (
    CheckRecord,
    Record,
    Submitted,
    reusable,
    save,
    unscored,
    unscored_results,
)

CHECKS = (
    CheckRecord("lin_grad", "lin_grad", "lin_grad sets w.g", 0, 3, False,
                "w.g is transposed\nHint: w.g has w's shape", "transposed-weight-grad"),
    CheckRecord("lin_grad", "lin_grad", "lin_grad sets b.g", 2, 2, True, ""),
    CheckRecord("matmul_loops", "matmul with three loops", "float64 inputs give a float64 "
                "result", 0, 0, False, "advice"),
)  # fmt: skip
GRADED = Record(
    score=2, output="2/5 on backprop", checks=CHECKS, execution_time=1.5,
    assignment="backprop", max_score=5, notebook_sha256="ab", grader_version="1",
    seed=3, device="cpu", submitted=Submitted("ann", "ann/backprop", "/c/ann/backprop.ipynb"),
    status="graded", message="", feedback="feedback.html", timings={"execute": 1.0},
)  # fmt: skip


def test_a_record_reads_back_as_written() -> None:
    lone = unscored("not JSON", status="ungradeable", grader_version="1")
    gone = unscored("gone", status="error", submitted=Submitted("bo", "bo/x", None))
    for record in (GRADED, lone, gone):
        data = json.loads(json.dumps(record.to_dict()))
        assert Record.from_dict(data) == record
        assert Record.from_dict(data).to_dict() == data
        validate_gradescope(data, tests_required=False)


def test_checks_are_gradescope_tests_with_exercise_and_mistake() -> None:
    test = GRADED.to_dict()["tests"][0]
    assert test["name"] == "lin_grad: lin_grad sets w.g" and test["number"] == "lin_grad"
    assert test["tags"] == ["lin_grad", "transposed-weight-grad"]
    assert GRADED.to_dict()["tests"][1]["output"] == "Passed."
    assert GRADED.per_exercise() == {"lin_grad": 2, "matmul_loops": 0}


def test_a_class_record_names_every_field_and_a_lone_one_only_what_it_knows() -> None:
    meta = GRADED.to_dict()["extra_data"]
    assert list(meta)[:11] == ["assignment", "max_score", "notebook_sha256", "grader_version",
                               "seed", "device", "student", "key", "notebook", "status",
                               "message"]  # fmt: skip
    lone = unscored_results("bad", {"status": "error", "grader_version": "1"})
    assert list(lone["extra_data"].items()) == [("status", "error"), ("grader_version", "1")]
    nobody = unscored("x", submitted=Submitted("bo", "bo/x", None), status="ungradeable")
    assert nobody.to_dict()["extra_data"]["notebook"] is None


def test_gradebook_reads_records_or_their_json() -> None:
    assert grades_rows([GRADED]) == grades_rows([GRADED.to_dict()])
    _, [row] = grades_rows([GRADED])
    assert row["lin_grad"] == "2" and row["student"] == "ann" and row["score"] == "2"
    summary = summary_markdown([GRADED])
    assert "transposed-weight-grad (1)" in summary
    assert "[report](submissions/ann/backprop/feedback.html)" in summary


def test_only_signed_records_of_the_same_grading_are_reused(tmp_path: Path) -> None:
    from backprop_lab import __version__

    record = Record(**{**GRADED.__dict__, "grader_version": __version__})
    saved = save(tmp_path, "ann/backprop", record)
    options = Options(seed=3, device="cpu")
    assert reusable(tmp_path, "ann/backprop", "ab", options) == saved
    assert reusable(tmp_path, "ann/backprop", "other bytes", options) is None
    assert reusable(tmp_path, "ann/backprop", "ab", Options(seed=4)) is None
    path = tmp_path / "submissions/ann/backprop/results.json"
    forged = json.loads(path.read_text())
    forged["score"] = 5
    path.write_text(json.dumps(forged))
    assert reusable(tmp_path, "ann/backprop", "ab", options) is None
