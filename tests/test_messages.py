"""Every renderer shows a message exactly as written: the terminal table, the Markdown
report and CI summary, the HTML report, the class summary, CI annotations and
Gradescope's results. Messages quote code full of brackets, stars, pipes and angle
brackets; none of it may be read as markup."""

from __future__ import annotations

import html.parser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt  # rich's own Markdown parser
from rich.console import Console

from autograder.ci import annotation
from autograder.feedback import feedback_html, feedback_markdown
from autograder.gradebook import summary_markdown, unscored_results
from autograder.markdown import markdown_text
from autograder.pipeline import GradeResult
from autograder.report import gradescope_results, markdown_report, print_table
from autograder.score import CheckResult, Score

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
