"""The clean room (backprop_lab/plan/cleanroom.py): points come from the course's own notebook
with only the student's answer cells in it, so cells a student adds cannot change a
verdict; the notebook as the student ran it feeds the feedback, and where it scores more,
a person looks and the student is told what to move where."""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest
from grading_tools import exercise, full_marks
from nbformat import NotebookNode
from notebook_tools import ROOT, SOLUTION, STUB

from backprop_lab.course import exercises_for
from backprop_lab.gradebook.batch import grade_submissions
from backprop_lab.plan.cleanroom import UNMATCHED, clean_room, dependencies, room_review
from backprop_lab.plan.notebook import replace_function
from backprop_lab.verbs.assignments import shipped_problems

RESULTS_MIME = "application/vnd.autograde.results+json"


def nb_of(path: Path) -> NotebookNode:
    return nbformat.read(path, as_version=4)


def code(source: str) -> NotebookNode:
    return nbformat.v4.new_code_cell(source)


def cell(nb: NotebookNode, grade_id: str) -> NotebookNode:
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def where(nb: NotebookNode, c: NotebookNode) -> str:
    """`c` as the student finds it in `nb`: its position (from 1) and the heading above."""
    at = next(i for i, x in enumerate(nb.cells) if x is c)
    titles = [ln.lstrip("#").strip() for m in nb.cells[:at] if m.cell_type == "markdown"
              for ln in m.source.splitlines() if ln.startswith("#")]  # fmt: skip
    return f"cell {at + 1} (under \u201c{titles[-1]}\u201d)"


def timing_cell(nb: NotebookNode) -> NotebookNode:
    """The notebook's own code (no nbgrader cell) that times forward_and_backward: it runs
    in a full run, as the student ran it."""
    [found] = [c for c in nb.cells if c.cell_type == "code" and not c.metadata.get("nbgrader")
               and "forward_and_backward(" in c.source]  # fmt: skip
    return found


RELU_WITH_HELPER = "def relu_grad(inp, out):\n    inp.g = _mask(inp) * out.g\n"
HELPER = "def _mask(x):\n    return (x > 0).float()"
# The solution with HELPER added at its end: where the student sees it, and the timing
# cell above it (which calls relu_grad before `_mask` is defined, in a full run)
_WITH_HELPER = nb_of(SOLUTION["backprop"])
_WITH_HELPER.cells.append(code(HELPER))
HELPER_CELL = where(_WITH_HELPER, _WITH_HELPER.cells[-1])
TIMING_CELL = where(_WITH_HELPER, timing_cell(_WITH_HELPER))
FULL = full_marks("backprop")
MSE, RELU, FAB = (exercise(e).points for e in ("mse_grad", "relu_grad", "forward_and_backward"))


def answer_sources(nb: NotebookNode) -> dict[str, str]:
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")}  # fmt: skip


# -- the clean room, built (no notebook runs) -----------------------------------------------


@pytest.mark.parametrize("assignment", ["matmul", "backprop"])
@pytest.mark.parametrize("which", [SOLUTION, STUB], ids=["solution", "assignment"])
def test_the_course_s_notebooks_need_one_run(assignment: str, which: dict) -> None:
    student = nb_of(which[assignment])
    room = clean_room(student, assignment)
    assert not room.needs_full_run and room.extra == () and room.missing == ()
    # the released notebook, with the student's answers in their places
    released = nb_of(STUB[assignment])
    assert len(room.notebook.cells) == len(released.cells)
    answers = answer_sources(student)
    for mine, given in zip(room.notebook.cells, released.cells, strict=True):
        gid = given.metadata.get("nbgrader", {}).get("grade_id")
        assert mine.source == answers.get(gid, given.source)


def test_added_and_changed_cells_stay_out_and_ask_for_a_full_run() -> None:
    student = nb_of(SOLUTION["backprop"])
    student.cells.append(code(HELPER))
    given = next(
        c for c in student.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "init"
    )
    given.source += "\nw1 = w1 * 0  # sabotage the given weights"
    room = clean_room(student, "backprop")
    assert room.needs_full_run
    appended = student.cells[-1]
    assert [w for w, _ in room.extra] == [where(student, given), where(student, appended)]
    sources = [c.source for c in room.notebook.cells]
    assert "def _mask(x):\n    return (x > 0).float()" not in sources
    assert not any("sabotage" in s for s in sources)
    assert dependencies(room, "def relu_grad(inp, out):\n    inp.g = _mask(inp) * out.g") == [
        ("_mask", where(student, appended))
    ]


def test_comments_whitespace_and_outputs_are_not_changes() -> None:
    student = nb_of(STUB["backprop"])
    for c in student.cells:
        if c.cell_type == "code" and not c.metadata.get("nbgrader", {}).get("solution"):
            c.source = "# my notes\n" + c.source.replace("\n", "   \n") + "  # the end\n\n"
            c.outputs = [nbformat.v4.new_output("stream", text="hi\n")]
    assert not clean_room(student, "backprop").needs_full_run
    cell(student, "init").source += "\nprint('#', w1.shape)"  # a `#` in a string is code
    assert clean_room(student, "backprop").needs_full_run


def test_a_second_copy_of_an_answer_cell_runs_only_in_the_full_run() -> None:
    student = nb_of(SOLUTION["backprop"])
    first = cell(student, "mse_grad")
    second = copy.deepcopy(first)
    second.source = "def mse_grad(inp, targ):\n    inp.g = inp * 0"
    student.cells.append(second)
    room = clean_room(student, "backprop")
    assert room.needs_full_run and len(room.extra) == 1
    assert answer_sources(room.notebook)["mse_grad"] == first.source


def test_an_answer_without_its_cell_is_missing_and_a_notebook_without_metadata_unmatched() -> None:
    student = nb_of(SOLUTION["backprop"])
    del cell(student, "mse_grad").metadata["nbgrader"]  # retyped into a new cell
    room = clean_room(student, "backprop")
    assert room.missing == ("mse_grad",) and room.needs_full_run
    assert "raise NotImplementedError" in answer_sources(room.notebook)["mse_grad"]
    for c in student.cells:
        c.metadata.pop("nbgrader", None)
    room = clean_room(student, "backprop")
    assert room.unmatched and room.notebook is student


def test_review_says_what_to_move_where() -> None:
    exercises = exercises_for("backprop")
    student = nb_of(SOLUTION["backprop"])
    student = replace_function(student, "relu_grad", RELU_WITH_HELPER)
    student.cells.append(code(HELPER))
    room = clean_room(student, "backprop")
    full = {e.cell: (sum(c.points for c in e.checks),) * 2 for e in exercises}
    clean = {**full, "relu_grad": (0, RELU), "forward_and_backward": (0, FAB)}
    reasons = room_review(room, exercises, clean, full)
    assert reasons == (
        f"relu_grad scores {RELU}/{RELU} in your notebook as you ran it but 0/{RELU} with only "
        "your answer cells in the course's notebook, which is what counts: it uses `_mask`, "
        f"defined in {HELPER_CELL}, a cell that is not an answer cell: move it into "
        "relu_grad's cell.",
        f"forward_and_backward scores {FAB}/{FAB} in your notebook as you ran it but 0/{FAB} "
        "with only your answer cells in the course's notebook, which is what counts: caused "
        "by relu_grad, above.",
    )
    assert room_review(room, exercises, full, full) == ()  # no better as run: nothing to say
    assert room_review(room, exercises, clean, {}) == ()  # not run as it is: nothing to say
    for c in student.cells:
        c.metadata.pop("nbgrader", None)
    assert room_review(clean_room(student, "backprop"), exercises, full, {}) == (UNMATCHED,)


def test_the_shipped_notebooks_are_the_released_ones(tmp_path: Path) -> None:
    assert shipped_problems(ROOT) == []
    course = tmp_path / "course"
    for rel in (
        "assignments/backprop/backprop.ipynb",
        "assignments/matmul/matmul.ipynb",
        "backprop_lab/released/backprop.ipynb",
        "backprop_lab/released/matmul.ipynb",
    ):
        (course / rel).parent.mkdir(parents=True, exist_ok=True)
        (course / rel).write_bytes((ROOT / rel).read_bytes())  # fmt: skip
    (course / "assignments/matmul/matmul.ipynb").write_text("{}")
    assert shipped_problems(course) == [
        "backprop_lab/released/matmul.ipynb differs from assignments/matmul/matmul.ipynb, "
        "which the clean room must run: cp assignments/matmul/matmul.ipynb "
        "backprop_lab/released/matmul.ipynb"
    ]


# -- graded as a class --------------------------------------------------------------------

AUTOGRAD_MSE_GRAD = """\
def mse_grad(inp, targ):
    x = inp.detach().clone().requires_grad_()
    ((x[:, 0] - targ) ** 2).mean().backward()
    inp.g = x.grad
"""
# An added cell that rewrites the grader's one results message as it leaves: every
# `autograd` fact and integrity finding removed (the attack of issue 25).
STRIPS_THE_RESULTS = f"""\
ip = get_ipython()
pub = ip.display_pub
original = pub.publish

def _clean(x):
    if isinstance(x, dict):
        return {{k: ([] if k == "integrity" else _clean(v)) for k, v in x.items()
                if k != "autograd"}}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x

def publish(data, metadata=None, **kw):
    if {RESULTS_MIME!r} in data:
        data = {{**data, {RESULTS_MIME!r}: _clean(data[{RESULTS_MIME!r}])}}
    return original(data, metadata=metadata, **kw)

publish._autograde_original = publish
pub.publish = publish
"""


def _helper_later() -> NotebookNode:
    nb = replace_function(nb_of(SOLUTION["backprop"]), "relu_grad", RELU_WITH_HELPER)
    nb.cells.append(code(HELPER))
    return nb


def _scratch_redefines() -> NotebookNode:
    nb = nb_of(SOLUTION["backprop"])
    nb.cells.append(code("def relu_grad(inp, out):  # scratch\n    inp.g = out.g"))
    return nb


def _answers_in_an_added_cell() -> NotebookNode:
    nb = nb_of(STUB["backprop"])
    nb.cells.append(code("\n\n".join(answer_sources(nb_of(SOLUTION["backprop"])).values())))
    return nb


def _swaps_the_recorded_definitions() -> NotebookNode:
    """The untouched notebook and one added cell: the answers, swapped into the grader's
    own record of the answer cells' definitions (reached through its globals)."""
    nb = nb_of(STUB["backprop"])
    answers = "\n\n".join(answer_sources(nb_of(SOLUTION["backprop"])).values())
    nb.cells.append(
        code(
            answers
            + """

_state = globals()["__autograde__"]["_State"]
for _name, _versions in _state.versions.items():
    _state.versions[_name] = [(sha, globals()[_name], at) for sha, _, at in _versions]
"""
        )
    )
    return nb


def _strips_the_results() -> NotebookNode:
    nb = replace_function(nb_of(SOLUTION["backprop"]), "mse_grad", AUTOGRAD_MSE_GRAD)
    nb.cells.insert(nb.cells.index(cell(nb, "setup")), code(STRIPS_THE_RESULTS))  # early
    return nb


def _no_metadata() -> NotebookNode:
    nb = nb_of(SOLUTION["backprop"])
    for c in nb.cells:
        c.metadata.pop("nbgrader", None)
    return nb


def _answer_retyped_elsewhere() -> NotebookNode:
    nb = nb_of(SOLUTION["backprop"])
    del cell(nb, "mse_grad").metadata["nbgrader"]
    return nb


# student -> (notebook, score, status, phrases in the record's output); a score is full
# marks less the points of what the clean room's answers fail (an answer and what calls it)
CLASS = {
    "correct": (lambda: nb_of(SOLUTION["backprop"]), FULL, "graded", ()),
    "helper-later": (_helper_later, FULL - RELU - FAB, "review", (
        f"it uses `_mask`, defined in {HELPER_CELL}", "move it into relu_grad's cell",
        f"forward_and_backward scores {FAB}/{FAB} in your notebook as you ran it but 0/{FAB}",
        f"{TIMING_CELL[0].upper()}{TIMING_CELL[1:]} failed with NameError")),
    "scratch-redefines": (_scratch_redefines, FULL, "graded", ()),
    # the grader calls each answer cell's own definition, in either run: stubs score 0
    "answers-in-an-added-cell": (_answers_in_an_added_cell, 0, "graded", ()),
    # the stripping cell changes nothing; the autograd answer is reported, run and read
    # the measured attack: full marks before the clean room
    "swaps-the-recorded-definitions": (_swaps_the_recorded_definitions, 0, "review", (
        f"mse_grad scores {MSE}/{MSE} in your notebook as you ran it but 0/{MSE}",
        "it depends on a cell you added or changed")),
    "strips-the-results": (_strips_the_results, FULL, "review", (
        "Integrity: mse_grad calls PyTorch's autograd",
        "line 2: `(...).requires_grad_`: it asks PyTorch's autograd to track the tensor")),
    "no-metadata": (_no_metadata, FULL, "review", (UNMATCHED,)),
    "answer-retyped-elsewhere": (_answer_retyped_elsewhere, FULL - MSE - FAB, "review", (
        "its answer is not in the cell given for it (the cell `mse_grad` is gone)",)),
}  # fmt: skip


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("cleanroom")
    for student, (make, *_) in CLASS.items():
        (tmp / "class" / student).mkdir(parents=True)
        nbformat.write(make(), tmp / "class" / student / "backprop.ipynb")
    summary = grade_submissions([tmp / "class"], tmp / "out", workers=2, progress=False,
                                feedback=False)  # fmt: skip
    return {r["extra_data"]["student"]: r for r in summary.records}


@pytest.mark.slow
@pytest.mark.xdist_group("cleanroom-class")  # the class is graded once, on one worker
@pytest.mark.parametrize("student", list(CLASS))
def test_the_clean_room_decides_the_points(graded: dict[str, dict], student: str) -> None:
    _, score, status, phrases = CLASS[student]
    record = graded[student]
    text = record["output"]
    assert (record["score"], record["extra_data"]["status"]) == (score, status), text
    for phrase in phrases:
        assert phrase in text, text
    if student in ("correct", "scratch-redefines", "strips-the-results"):
        assert "as you ran it" not in text, text


def test_an_empty_notebook_runs_the_stubs_once() -> None:
    room = clean_room(nbformat.v4.new_notebook(), "backprop")
    assert not room.unmatched and not room.needs_full_run
    assert set(room.missing) == {e.cell for e in exercises_for("backprop")}
