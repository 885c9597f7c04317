"""Every renderer shows a message exactly as written: the terminal table, the Markdown
report and CI summary, the HTML report, the class summary, CI annotations and
Gradescope's results. Messages quote code full of brackets, stars, pipes and angle
brackets; none of it may be read as markup."""

from __future__ import annotations

import html.parser
import json
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest
from markdown_it import MarkdownIt  # rich's own Markdown parser
from notebook_tools import SOLUTION
from rich.console import Console

from backprop_lab.gradebook.grades import summary_markdown, unscored_results
from backprop_lab.judge.score import CheckResult, Score
from backprop_lab.pipeline import GradeResult
from backprop_lab.plan.notebook import read_notebook, replace_function
from backprop_lab.report.annotations import annotation
from backprop_lab.report.feedback import feedback_html, feedback_markdown
from backprop_lab.report.formats import gradescope_results, markdown_report, print_table
from backprop_lab.report.markdown import markdown_text

# What students' messages hold: code in backticks with brackets and pipes inside, and
# outside them brackets, stars, underscores, pipes, angle brackets, ampersands, tildes
# and a stray backslash.
CODE = "`c[i] = (a[i, None] * b).sum(dim=0) | x`"
MESSAGES = (
    f"{CODE} gives a[i, None] of shape [1, 5]: needs the column a[i, :, None]",
    "2*x_1 * y_2 <lambda> & <b>not bold</b> ~~kept~~ | a \\ b [link](http://x) ![img](y)",
    "line one\nline two: (N, 1) vs (1, N)",
)


def _shown(message: str) -> str:
    """The message as a reader sees it: code spans without their backticks."""
    return message.replace(CODE, CODE.strip("`"))


class _Text(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "br":
            self.parts.append("\n")


def html_text(page: str) -> str:
    parser = _Text()
    parser.feed(page)
    return "".join(parser.parts)


def rendered_markdown(md: str) -> str:
    """The text GitHub shows for this Markdown (CommonMark with tables and strike-through)."""
    return html_text(MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(md))


def result_with(message: str, tmp_path: Path) -> GradeResult:
    check = CheckResult(
        exercise="matmul_broadcast", exercise_title="matmul_broadcast",
        name="matmul(a, b) equals a @ b", max_score=5, score=0, passed=False,
        message=message, hint=None, cases=3, cases_failed=3,
    )  # fmt: skip
    return GradeResult(
        notebook=tmp_path / "matmul.ipynb", assignment="matmul",
        score=Score("matmul", (check,), notes=(f"Note: {message}",)),
        seed=1, device="cpu", seconds=1.0, execution_seconds=1.0, digest="0" * 64,
    )  # fmt: skip


@pytest.mark.parametrize("message", MESSAGES, ids=["code", "markdown", "lines"])
def test_every_renderer_shows_the_message_as_written(message: str, tmp_path: Path) -> None:
    result = result_with(message, tmp_path)
    shown = _shown(message)

    console = Console(record=True, width=400, color_system=None)  # markup on: rich's default
    print_table(result, console)
    terminal = console.export_text()
    for line in message.splitlines():  # the table puts each line of a message on its own
        assert line in terminal, terminal

    assert shown in rendered_markdown(markdown_report(result))
    md, _ = feedback_markdown(result, "files", pics=())
    assert shown in rendered_markdown(md)
    assert shown in html_text(feedback_html(result, pics=()))

    record = unscored_results(message, {"student": "s[1]", "status": "ungradeable",
                                        "message": message, "notebook": "a|b.ipynb"})  # fmt: skip
    summary = rendered_markdown(summary_markdown([record]))
    assert shown in summary and "s[1]" in summary and "a|b.ipynb" in summary

    line = annotation("error", "matmul.ipynb", 3, "matmul_broadcast", message)
    data = line.split("::", 2)[2]
    assert data.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%") == message

    assert gradescope_results(result)["tests"][0]["output"] == message


def test_markdown_text_escapes_only_what_markdown_would_read() -> None:
    assert markdown_text("a[i] * b") == "a\\[i\\] \\* b"
    assert markdown_text("`a[i] | b`") == "`a[i] | b`"  # code stays code
    assert markdown_text("`a[i] | b`", table=True) == "`a[i] \\| b`"  # | would end the cell
    assert markdown_text("one\ntwo") == "one<br>two"
    assert markdown_text("shape (3, 1). Fine!") == "shape (3, 1). Fine!"


def _check(notebook: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> tuple[str, dict]:
    from backprop_lab.verbs.cli import main

    out = tmp_path / "results.json"
    assert main(["check", str(notebook), "--json", str(out)]) == 1
    return capsys.readouterr().out, json.loads(out.read_text())


@pytest.mark.slow
def test_cells_are_named_as_the_student_finds_them(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A syntax error is put down to its cell and to what it broke; a cell that prints
    more than the output cap is named, with what it cost (one notebook, one kernel)."""
    nb = read_notebook(SOLUTION["backprop"])
    nb = replace_function(nb, "relu_grad", "def relu_grad(inp, out):\n    # the gradient\n"
                          "    inp.g = (inp > 0).float() * out.g)\n")  # fmt: skip
    nb.cells.append(nbformat.v4.new_markdown_cell("## Looking at everything"))
    nb.cells.append(nbformat.v4.new_code_cell("for _ in range(3):\n    print('x' * 1_000_000)"))
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    position = ids.index("relu_grad") + 1  # in the student's file, Markdown cells included
    nbformat.write(nb, tmp_path / "backprop.ipynb")
    printed, results = _check(tmp_path / "backprop.ipynb", tmp_path, capsys)
    cause = f"Cell {position} (relu_grad's cell) failed with SyntaxError: unmatched ')' on line 3"
    assert cause in printed  # the note, where the student sees the cell
    assert (f"Cell {len(nb.cells)} (under \u201cLooking at everything\u201d) printed more than "
            "the output limit keeps: it ran for ") in results["output"]  # fmt: skip
    outputs = {t["name"]: t["output"] for t in results["tests"] if t["score"] < t["max_score"]}
    assert set(outputs) == {
        "relu_grad: relu_grad sets inp.g", "relu_grad: relu_grad at inputs exactly 0",
        "forward_and_backward: forward_and_backward sets w2.g and b2.g",
        "forward_and_backward: forward_and_backward sets w1.g and b1.g",
        "forward_and_backward: forward_and_backward sets inp.g",
    }  # fmt: skip
    for name, text in outputs.items():
        if name.startswith("relu_grad"):
            assert f"{cause}, so `relu_grad` was never defined" in text, name
        else:  # the network's checks put it down to relu_grad, and nothing else
            assert text.startswith("Caused by relu_grad (above), which this calls"), text
        assert "did you mean" not in text, name  # not a misnamed function


@pytest.mark.slow
def test_the_broadcast_row_mistake_shows_its_brackets(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    nb = replace_function(read_notebook(SOLUTION["matmul"]), "matmul", (
        "def matmul(a, b):\n    (ar, ac), (br, bc) = a.shape, b.shape\n"
        "    c = torch.zeros(ar, bc, dtype=a.dtype)\n    for i in range(ar):\n"
        "        c[i] = (a[i, None] * b).sum(dim=0)\n    return c\n"
    ), cell="matmul_broadcast")  # fmt: skip
    nbformat.write(nb, tmp_path / "matmul.ipynb")
    printed, results = _check(tmp_path / "matmul.ipynb", tmp_path, capsys)
    name = "matmul with broadcasting: matmul(a, b) equals a @ b"
    [test] = [t for t in results["tests"] if t["name"] == name]
    assert "`c[i] = (a[i, None] * b).sum(dim=0)`" in test["output"]
    assert "needs the column `a[i, :, None]`" in test["output"]
    flat = " ".join(line.strip("│ ") for line in printed.splitlines())
    assert "c[i] = (a[i, None] *" in flat and "a[i, :," in flat  # not eaten as markup


def test_advice_is_its_own_section_once_per_text_and_never_a_failure(tmp_path: Path) -> None:
    dtype = "float64 inputs give a float32 result"
    advice = [
        CheckResult(exercise=cell, exercise_title=title, name="float64 inputs give a float64 "
                    "result", max_score=0, score=0, passed=False, message=dtype,
                    hint="create c with `dtype=a.dtype`", advisory=True)
        for cell, title in [("matmul_loops", "three loops"), ("matmul_broadcast", "broadcast")]
    ]  # fmt: skip
    right = CheckResult(exercise="matmul_loops", exercise_title="three loops",
                        name="matmul(a, b) equals a @ b", max_score=3, score=3, passed=True,
                        message="")  # fmt: skip
    result = GradeResult(
        notebook=tmp_path / "matmul.ipynb", assignment="matmul",
        score=Score("matmul", (right, *advice)), seed=1, device="cpu", seconds=1.0,
        execution_seconds=1.0, digest="0" * 64,
    )  # fmt: skip
    md, _ = feedback_markdown(result, "files", pics=())
    assert "What to fix" not in md
    assert md.count("## Advice (0 points") == 1 and md.count(dtype) == 1
    assert "three loops: float64 inputs give a float64 result; broadcast:" in md
    page = feedback_html(result, pics=())
    assert 'class="check"' not in page and page.count('class="advice-box"') == 1


def test_a_cascade_is_put_down_to_its_cause_and_a_hint_is_given_once() -> None:
    from backprop_lab.course import exercises_for
    from backprop_lab.judge.score import _attributed

    def check(cell: str, name: str, passed: bool, message="", hint=None, mistake=None):
        return CheckResult(exercise=cell, exercise_title=cell, name=name, max_score=1,
                           score=int(passed), passed=passed, message=message, hint=hint,
                           mistake=mistake)  # fmt: skip

    reorder = "run the backward steps in reverse order of the forward pass"
    results = [
        check("mse_grad", "batch > 1", False, "inp.g is wrong", "needs the factor 2", "two"),
        check("mse_grad", "batch of 1", False, "inp.g is wrong", "needs the factor 2", "two"),
        check("lin_grad", "w.g", False, "w.g has shape (3, 4)", "transpose it", "transposed"),
        check("forward_and_backward", "w1.g", False, "w1.g is wrong", reorder, "backward-order"),
        check("forward_and_backward", "inp.g", False, "inp.g is wrong", "", "not-implemented"),
        check("model_class", "loss", True),
    ]
    out = _attributed(exercises_for("backprop"), results)
    assert [r.hint for r in out[:2]] == ["needs the factor 2", "the same as above"]
    assert out[2] == results[2]  # lin_grad's own failure is untouched
    fb = out[3]
    assert fb.message == ("Caused by mse_grad and lin_grad (above), which this calls: fix "
                          "those first. Here: w1.g is wrong")  # fmt: skip
    assert fb.hint is None and fb.mistake is None  # no advice to reorder what is in order
    assert out[4] == results[4]  # not implemented is its own failure, whatever it calls


def test_a_noisy_timing_gives_no_ratio_and_says_why(tmp_path: Path) -> None:
    from backprop_lab.judge.readback import Speed
    from backprop_lab.judge.speed import NOISY, ratio_text

    rows = (("your matmul_einsum", 3e-4, True, False), ("torch.matmul (@)", 2e-5, False, False))
    result = result_with("", tmp_path)
    for noisy in (False, True):
        speedy = replace(result, speed=Speed((5, 784, 10), rows, noisy))
        console = Console(record=True, width=200, color_system=None)
        print_table(speedy, console)
        md, _ = feedback_markdown(speedy, "files", pics=())
        shown = console.export_text() + md
        assert (NOISY in shown) == noisy and ("15x" in shown) != noisy
        assert ("| **your matmul\\_einsum** | 300.0 µs | 15x |" in md) != noisy
    ratios = [ratio_text(r) for r in (15000.0, 12.4, 2.5, 0.42)]
    assert ratios == ["15,000x", "12x", "2.5x", "0.42x"]  # never "0x"


def test_a_stopped_or_wrong_rung_is_shown_but_never_ranked(tmp_path: Path) -> None:
    """A triple loop stopped after 0.3 s is a bound, not a time: beside the lesson's
    measured loops it would look faster than they are. A rung with a wrong answer (a
    `return` inside the loop, fast because it stops early) is no rung of the ladder."""
    from backprop_lab.judge.readback import Speed
    from backprop_lab.judge.speed import ladder

    rows = (("your matmul_loops", 0.3, True, True),
            ("your matmul_elementwise", 0.077, True, False),
            ("your matmul_einsum", 3e-4, True, False),
            ("torch.matmul (@)", 2e-5, False, False))  # fmt: skip
    speed = Speed((5, 784, 10), rows, False)
    shown = ladder(speed, with_lesson=False, wrong=frozenset({"matmul_elementwise"}))
    assert [(r.label, r.ranked) for r in shown] == [
        ("your matmul_einsum", True), ("torch.matmul (@)", True),
        ("your matmul_loops", False), ("your matmul_elementwise", False),
    ]  # fmt: skip
    assert [r.times_torch for r in shown if not r.ranked] == [None, None]
    # result_with's failed check is on matmul_broadcast; this one fails matmul_elementwise
    result = replace(result_with("", tmp_path), speed=speed)
    failed = CheckResult("matmul_elementwise", "elementwise", "values", 2, 0, False, "wrong")
    result = replace(result, score=replace(result.score, checks=(*result.score.checks, failed)))
    console = Console(record=True, width=200, color_system=None)
    print_table(result, console)
    md, _ = feedback_markdown(result, "files", pics=())
    assert "| **your matmul\\_loops** | over 300.0 ms | stopped: a lower bound, not ranked |" in md
    assert ("| **your matmul\\_elementwise** | 77.0 ms | returned a wrong answer: not ranked |"
            in md)  # fmt: skip
    # the fastest of yours is the fastest measured and right, never a bound or a wrong one
    assert "Your fastest matmul (matmul\\_einsum) takes 300.0 µs per call, 15x" in md
    assert "your fastest matmul (matmul_einsum) takes 15x" in console.export_text()


def test_the_2019_shifted_relu_is_recognised() -> None:
    import torch

    from backprop_lab.course import Expected
    from backprop_lab.judge.mistakes import Observation, diagnose
    from backprop_lab.judge.readback import Value

    gen = torch.Generator().manual_seed(0)
    t = {k: torch.randn(*shape, generator=gen, dtype=torch.float64) for k, shape in
         [("inp", (6, 4)), ("targ", (6,)), ("w1", (4, 3)), ("b1", (3,)), ("w2", (3, 1)),
          ("b2", (1,))]}  # fmt: skip

    def grads(shift: float) -> dict[str, torch.Tensor]:
        leaves = {k: v.clone().requires_grad_(k != "targ") for k, v in t.items()}
        hidden = (leaves["inp"] @ leaves["w1"] + leaves["b1"]).clamp_min(0.0) - shift
        loss = ((hidden @ leaves["w2"] + leaves["b2"])[:, 0] - leaves["targ"]).pow(2).mean()
        loss.backward()
        return {f"{k}.g": v.grad for k, v in leaves.items() if k != "targ"}

    right, shifted = grads(0.0), grads(0.5)
    for got, found in [(shifted, "shifted-relu"), (right, None)]:
        obs = Observation(
            protocol="forward_and_backward", target="forward_and_backward", value="w2.g",
            verdict=None, error=None,
            got={k: Value("tensor", v) for k, v in got.items()},
            want={k: Expected(v) for k, v in right.items()}, inputs=t,
        )  # fmt: skip
        assert (diagnose(obs) or (None,))[0] == found
