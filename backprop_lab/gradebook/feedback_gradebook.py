"""What the course's files did to a student's grade, in the student's own feedback pages:
the grade, the autograded score it came from, each override with its reason, when the
notebook was handed in (and how that is known) and what lateness cost.

The feedback pages are drawn when the notebook is graded; overrides and a late policy
come later and may change on any re-run, so this part is a block between two markers
(HTML comments, in both formats) that `with_gradebook_block` replaces, or removes when
nothing applies, without drawing the report again. Pure functions of a record and text.
"""

from __future__ import annotations

import html
import re

from ..report.markdown import markdown_text
from ..report.records import Record
from .latepolicy import describe

__all__ = ["gradebook_lines", "with_gradebook_block"]

BEGIN, END = "<!-- autograde:gradebook -->", "<!-- /autograde:gradebook -->"
_BLOCK = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.DOTALL)
# in Markdown the block brings the blank line before it, and takes it away again
_MD_BLOCK = re.compile(r"\n?" + _BLOCK.pattern, re.DOTALL)


def gradebook_lines(record: Record) -> list[str]:
    """Plain sentences, one per fact; [] when the course's files changed nothing and no
    due date applies."""
    lines = []
    for a in record.adjustments:
        if a.kind == "override":
            what = "your total" if a.exercise == "total" else f"exercise {a.exercise}"
            lines.append(f"Changed by your instructor: {what} from {a.before:g} to "
                         f"{a.after:g} points. Reason: {a.reason}")  # fmt: skip
    if record.late is not None:
        when = f"Handed in {record.submitted_at}"
        if record.time_source:
            when += f" (from the {record.time_source})"
        lines.append(f"{when}: {describe(record.late)}.")
        for a in record.adjustments:
            if a.kind == "late":
                lines.append(f"Late penalty: {a.before:g} to {a.after:g} points.")
    if lines:
        of = f"/{record.max_score}" if record.max_score is not None else ""
        lines.insert(0, f"Your grade: {record.score:g}{of} (the grader's checks gave "
                        f"{record.autograded().score:g}{of}).")  # fmt: skip
    return lines


def _markdown(lines: list[str]) -> str:
    body = "\n".join(f"- {markdown_text(x)}" for x in lines[1:])
    return f"\n{BEGIN}\n\n**{markdown_text(lines[0])}**\n\n{body}\n\n{END}\n"


def _html(lines: list[str]) -> str:
    items = "".join(f"<li>{html.escape(x)}</li>" for x in lines[1:])
    return f'{BEGIN}\n<p class="score">{html.escape(lines[0])}</p><ul>{items}</ul>\n{END}\n'


def with_gradebook_block(text: str, record: Record, *, as_html: bool) -> str:
    """`text` (a feedback page) with its gradebook block for `record`: after the title
    (the first `</h1>`, or the first line in Markdown); none when nothing applies."""
    text = (_BLOCK if as_html else _MD_BLOCK).sub("", text)
    lines = gradebook_lines(record)
    if not lines:
        return text
    if as_html:
        at = text.find("</h1>")
        at = at + len("</h1>\n") if at >= 0 else 0
        return text[:at] + _html(lines) + text[at:]
    first, _, rest = text.partition("\n")
    return f"{first}\n{_markdown(lines)}{rest}"
