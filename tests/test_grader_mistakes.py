"""The grader on notebooks with the lesson's classic mistakes (tests/mistake_cases.py),
built here from the solutions: each loses exactly the points of the checks its bug breaks
(and no others) and gets the catalogue's hint. And the other direction: the course's own
code, pasted into the student notebooks, and unusual but correct answers
(tests/right_answers.py) get full marks.

The notebooks are graded once per session, as one class, by `autograde grade`
(tests/course_class.py: only those the selected tests read, so `-k one-case` grades one
notebook); the tests then read the records.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import nbformat
import pytest
from course_class import GradedClass
from grading_tools import full_marks, points
from mistake_cases import FIT_ACCURACY_ON_THE_TRAINING_SET, MATMUL_F64, MISTAKES, MistakeCase
from notebook_tools import SOLUTION, STUB, Edit, edited, matmul
from right_answers import (
    DEBUGGERS,
    MODEL_ORDER,
    MODULE_STYLE,
    UNUSUAL_BACKPROP,
    UNUSUAL_BACKPROP_2,
    UNUSUAL_MATMUL,
    course_notebook,
)

from backprop_lab.course import exercises_for
from backprop_lab.pipeline import Options, grade

pytestmark = pytest.mark.slow
# the tests that read the class: on the worker that grades it (tests/course_class.py)
CLASS = pytest.mark.xdist_group("course")


def submissions() -> dict[str, tuple[str, nbformat.NotebookNode]]:
    """student -> (assignment, notebook), for the session's class (tests/course_class.py)"""
    subs = {
        _folder(m.name): (m.assignment, edited(SOLUTION[m.assignment], [m.edit])) for m in MISTAKES
    }
    subs["course-matmul"] = ("matmul", course_notebook("matmul"))
    subs["course-backprop"] = ("backprop", course_notebook("backprop"))
    subs["course-training"] = ("training", course_notebook("training"))
    subs["accuracy-on-the-training-set"] = (
        "training",
        edited(SOLUTION["training"], [Edit("fit", FIT_ACCURACY_ON_THE_TRAINING_SET)]),
    )
    subs["unusual-backprop"] = ("backprop", edited(SOLUTION["backprop"], UNUSUAL_BACKPROP))
    subs["unusual-matmul"] = ("matmul", edited(SOLUTION["matmul"], UNUSUAL_MATMUL))
    subs["debuggers"] = ("backprop", edited(SOLUTION["backprop"], DEBUGGERS))
    subs["unusual-backprop-2"] = ("backprop", edited(SOLUTION["backprop"], UNUSUAL_BACKPROP_2))
    subs["module-style"] = ("backprop", edited(SOLUTION["backprop"], MODULE_STYLE))
    subs["model-order"] = ("backprop", edited(SOLUTION["backprop"], MODEL_ORDER))
    return subs


def students_read(item: pytest.Item) -> set[str]:
    """The students of the class a selected test reads: its `case` or `student`, else
    those its `reads` marker names."""
    params = getattr(item, "callspec", None)
    params = params.params if params else {}
    if "case" in params:
        return {_folder(params["case"].name)}
    if "student" in params:
        return {params["student"]}
    return {s for mark in item.iter_markers("reads") for s in mark.args}


def _folder(student: str) -> str:
    return student.replace("/", "-")


@pytest.fixture(scope="module")
def graded(course_class: GradedClass) -> dict[str, dict[str, dict]]:
    """student -> {check name -> Gradescope test}, with the record under key '' and the
    feedback report under FEEDBACK."""
    out = {}
    for student, rec in course_class.records.items():
        tests = {f"{t['number']}: {t['name'].split(': ', 1)[1]}": t for t in rec["tests"]}
        feedback = {"html": course_class.feedback_html(student)}
        out[student] = {"": rec, FEEDBACK: feedback, **tests}
    return out


FEEDBACK = "<feedback>"  # the key of a student's feedback report in `graded`


def test_there_are_enough_mistakes() -> None:
    assert len(MISTAKES) >= 12
    assert len({m.mistake for m in MISTAKES}) >= 12


@CLASS
@pytest.mark.parametrize("case", MISTAKES, ids=lambda m: m.name)
def test_mistake_loses_exactly_its_points_with_the_hint(graded, case: MistakeCase) -> None:
    tests = dict(graded[_folder(case.name)])
    record = tests.pop("")
    tests.pop(FEEDBACK)
    assert record["extra_data"]["status"] == "graded", record["output"]
    failed = {name for name, t in tests.items() if t["status"] == "failed" and t["max_score"]}
    assert failed == case.lost, f"{case.name}: failed {sorted(failed)}"
    assert record["score"] == full_marks(case.assignment) - points(case.assignment, failed)
    flagged = tests[case.flagged]
    assert case.mistake in flagged["tags"], (flagged["tags"], flagged["output"])
    # the hint: on the flagged check, or, when a check above it in the same exercise gave
    # the very same hint, there (the flagged one then says "the same as above")
    names = [n for n in tests if n.split(": ")[0] == case.flagged.split(": ")[0]]
    above = [tests[n]["output"] for n in names[: names.index(case.flagged)]]
    assert case.hint in flagged["output"] or (
        "Hint: the same as above" in flagged["output"]
        and any(case.hint in output for output in above)
    ), flagged["output"]
    for name in failed:  # every lost point comes with a reason
        assert tests[name]["output"] and tests[name]["output"] != "Passed."


def _text(page: str) -> str:
    """What a reader sees of an HTML page: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


# The value a failed check's message is about, when the report can draw it.
_DRAWN = re.compile(r": (\w+\.g) (?:has shape|is wrong|at an input exactly 0)")


@CLASS
@pytest.mark.parametrize("case", MISTAKES, ids=lambda m: m.name)
def test_feedback_report_names_the_mistake_and_shows_it(graded, case: MistakeCase) -> None:
    page = graded[_folder(case.name)][FEEDBACK]["html"]
    assert page, f"{case.name}: no feedback.html"
    text = _text(page)
    flagged = graded[_folder(case.name)][case.flagged]
    assert case.hint.replace("`", "") in text.replace("`", "")
    assert "Recognised mistake" not in text  # the hint says it in words, not an internal id
    drawn = _DRAWN.search(flagged["output"])
    if drawn:  # a gradient the report can draw: its heat map is there, as a PNG
        assert f'alt="heat map of {drawn.group(1)}: yours against expected"' in page
        assert 'src="data:image/png;base64,' in page
    if case.assignment == "matmul":
        assert 'alt="the matmul speed ladder, log scale"' in page


@CLASS
@pytest.mark.reads(*(_folder(m.name) for m in MISTAKES))
def test_most_mistake_reports_have_a_heat_map(graded) -> None:
    # the parametrized test checks each picture; this keeps it from passing vacuously
    drawn = [
        m.name for m in MISTAKES if 'alt="heat map of' in graded[_folder(m.name)][FEEDBACK]["html"]
    ]
    assert len(drawn) >= 15, drawn


@CLASS
@pytest.mark.parametrize(
    "student",
    [
        "course-matmul",
        "course-backprop",
        "course-training",
        "unusual-backprop",
        "unusual-backprop-2",
        "unusual-matmul",
        "module-style",
        "model-order",
        "debuggers",
    ],
)
def test_right_answers_get_full_marks(graded, student: str) -> None:
    tests = dict(graded[student])
    record = tests.pop("")
    tests.pop(FEEDBACK)
    assert record["score"] == record["extra_data"]["max_score"], [
        t["output"] for t in tests.values() if t["status"] == "failed"
    ]


@CLASS
@pytest.mark.reads("course-training", _folder("fit-rebinds-its-parameters"))
def test_the_report_draws_fit_s_loss_curve_beside_the_reference_s(graded) -> None:
    """fit on the digits, epoch by epoch: the right answer's curve is the reference's; a
    fit that returns its history but never updates the parameters has a flat one."""
    page = _text(graded["course-training"][FEEDBACK]["html"])
    assert "How does your fit train?" in page
    assert (
        'alt="fit&#x27;s loss and accuracy per epoch' in graded["course-training"][FEEDBACK]["html"]
    )
    said = re.search(r"training loss of ([0-9.]+) and ([0-9.]+)% validation accuracy; the "
                     r"reference's: ([0-9.]+) and ([0-9.]+)%", page)  # fmt: skip
    assert said and said.group(1) == said.group(3) and said.group(2) == said.group(4), page
    # the rebinding fit returns no history: the report says what it returned instead
    rebinds = _text(graded[_folder("fit-rebinds-its-parameters")][FEEDBACK]["html"])
    assert "No loss curve of yours: fit returned nothing." in rebinds
    assert "is the accuracy on the training set" not in page


@CLASS
@pytest.mark.reads("accuracy-on-the-training-set")
def test_accuracy_measured_on_the_training_set_is_said_and_costs_nothing(graded) -> None:
    """The mistake the lesson warns of: a fit that reports the accuracy of the examples it
    trains on as its validation accuracy. Its parameters are right (full marks); the
    report says which set its number is, and the validation set's."""
    record = graded["accuracy-on-the-training-set"][""]
    assert record["score"] == record["extra_data"]["max_score"]
    page = _text(graded["accuracy-on-the-training-set"][FEEDBACK]["html"])
    said = re.search(r"Your ([0-9.]+)% is the accuracy on the training set, which the model "
                     r"has learnt; on the validation set it is ([0-9.]+)%", page)  # fmt: skip
    assert said and said.group(1) != said.group(2), page


@CLASS
@pytest.mark.reads("course-matmul", "course-backprop", "unusual-matmul")
def test_course_matmul_is_not_ready_for_a_gpu_and_is_told_on_the_cpu(graded) -> None:
    # the 2019 lesson's `torch.zeros(ar, bc)` puts the result on the CPU whatever the
    # inputs' device: full marks on the CPU, and the report says it would fail on a GPU
    record = graded["course-matmul"][""]
    assert record["score"] == full_marks("matmul")
    assert "Device readiness: in matmul, `c = torch.zeros(ar, bc)`" in record["output"]
    page = _text(graded["course-matmul"][FEEDBACK]["html"])
    assert "makes a tensor with torch.zeros and no device=" in page.replace("`", "")
    for student in ("course-backprop", "unusual-matmul"):  # they take the inputs' device
        assert "Device readiness" not in graded[student][""]["output"]


@CLASS
@pytest.mark.reads("course-matmul")
def test_course_matmul_float32_zeros_is_advice_not_points(graded) -> None:
    # `torch.zeros(ar, bc)` is float32 whatever the inputs: said, worth nothing
    for name in MATMUL_F64.values():
        advice = graded["course-matmul"][name]
        assert advice["status"] == "failed" and advice["max_score"] == 0
        assert "dtype" in advice["tags"]


def test_untouched_backprop_stub_says_not_implemented_everywhere() -> None:
    result = grade(STUB["backprop"], Options(seed=5))
    assert result.score.total == 0
    for check in result.score.checks:
        assert check.mistake == "not-implemented", (check.name, check.message)
        assert "is not implemented yet" in check.message


def test_a_hanging_function_costs_only_its_exercise(tmp_path: Path) -> None:
    nb = edited(SOLUTION["matmul"], [matmul("matmul_elementwise", "while True:\n    pass")])
    path = tmp_path / "matmul.ipynb"
    nbformat.write(nb, path)
    result = grade(path, Options(cell_timeout=4, call_timeout=2))
    by_exercise = result.score.by_exercise()
    assert by_exercise == {e.cell: (0 if e.cell == "matmul_elementwise" else e.points, e.points)
                           for e in exercises_for("matmul")}  # fmt: skip
    hung = [c for c in result.score.checks if c.exercise == "matmul_elementwise"]
    assert all(c.mistake == "timeout" and "did not finish in time" in c.message for c in hung)
    assert any("longer than the 4 s limit" in note for note in result.score.notes)


@CLASS
@pytest.mark.reads("debuggers")
def test_left_over_debuggers_are_skipped_and_reported(graded) -> None:
    # Without the kernel's no-ops, pdb waits on a stdin no one answers (or raises) and
    # `import ipdb` fails: every function here would lose its points.
    record = graded["debuggers"][""]
    assert record["score"] == full_marks("backprop")
    assert "skipped" in record["output"] and "debugger call(s)" in record["output"]


@CLASS
@pytest.mark.reads("model-order")
def test_model_with_weights_in_another_order_is_told(graded) -> None:
    record = graded["model-order"][""]
    assert "(w1, w2, b1, b2), not the lesson's (w1, b1, w2, b2)" in record["output"]
