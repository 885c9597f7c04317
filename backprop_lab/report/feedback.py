"""The feedback report a student (or a TA) reads: the score, each failed check with what
was expected and what came back, the hint, and pictures where a picture says more than
a number: a heat map of `yours ÷ expected` for every wrong gradient (a factor missing is
one flat colour, a transposed or unsummed gradient a patchwork or another shape), and for
matmul the speed ladder. Also whether the code is ready for a GPU (tensors made without
the inputs' device, found on the CPU).

Two renderings of one content (feedback_content.py): a self-contained HTML page
(pictures inlined) and Markdown for CI summaries (pictures as PNG files beside it). Pure
functions of a GradeResult, except `write_feedback`, which writes the files.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from ..judge.speed import NOISY, ratio_text
from ..options import seed_words
from ..pipeline import GradeResult
from .feedback_content import (
    Picture,
    advice_entries,
    checks_to_fix,
    curve_sentence,
    detail_lines,
    device_lines,
    human_time,
    ladder_rows,
    other_notes,
    picture_legend,
    pictures,
    same_mistake,
    speed_sentence,
)
from .formats import MARKS, shown_checks
from .markdown import markdown_text

__all__ = ["Picture", "feedback_html", "feedback_markdown", "pictures", "write_feedback"]


# --- HTML ----------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222;
       padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; width: 100%; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.35em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.pts { text-align: right; white-space: nowrap; }
.passed { color: #176f2c; } .failed { color: #b3261e; font-weight: 600; }
.advice { color: #8a6100; } .score { font-size: 1.3em; font-weight: 700; }
.check { border-left: 4px solid #b3261e; padding: 0.2em 1em; margin: 1.2em 0; }
.advice-box { border-left: 4px solid #d9a400; padding: 0.2em 1em; margin: 1.2em 0; }
.check dt { font-weight: 600; } .check dd { margin: 0 0 0.4em 0; }
img { max-width: 100%; border: 1px solid #ddd; }
code { background: #f3f3f3; padding: 0 0.2em; } .muted { color: #666; }
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _inline_code(text: str) -> str:
    """Escape, then show `code` spans the way the messages write them."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(text))


def _img(p: Picture) -> str:
    data = base64.b64encode(p.png).decode("ascii")
    return f'<img alt="{_e(p.alt)}" src="data:image/png;base64,{data}">'


def feedback_html(result: GradeResult, pics: tuple[Picture, ...] | None = None) -> str:
    pics = pictures(result) if pics is None else pics
    score = result.score
    by_check = {id(p.check): p for p in pics if p.check is not None}
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Feedback: {_e(result.notebook.name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Feedback on {_e(result.notebook.name)} ({_e(result.assignment)})</h1>",
        f'<p class="score">{score.total} / {score.max_total} points</p>',
        f'<p class="muted">Graded with {seed_words(result.seed)} on {_e(result.device)}, '
        f"grader {_e(result.grader_version)}.</p>",
        "<h2>Score</h2><table><tr><th>exercise</th><th>check</th><th>points</th>"
        "<th>status</th></tr>",
    ]
    for c, status in shown_checks(score.checks):
        out.append(
            f"<tr><td>{_e(c.exercise_title)}</td><td>{_e(c.name)}</td>"
            f'<td class="pts">{c.score}/{c.max_score}</td><td class="{status}">{status}</td></tr>'
        )
    out.append("</table>")
    failed = checks_to_fix(score.checks)
    if failed:
        out.append("<h2>What to fix</h2>")
    for c in failed:
        out.append(f'<div class="check"><h3>{_e(c.exercise_title)}: {_e(c.name)}</h3><dl>')
        for label, text in detail_lines(c):
            out.append(f"<dt>{_e(label)}</dt>\n<dd>{_inline_code(text)}</dd>")
        out.append("</dl>")
        if id(c) in by_check:
            out.append(
                f"<p>{_img(by_check[id(c)])}</p><p class='muted'>{_e(picture_legend(c))}</p>"
            )
        elif same := same_mistake(result, c):
            out.append(f"<p class='muted'>{_e(same)}</p>")
        out.append("</div>")
    advice = advice_entries(score.checks)
    if advice:
        out.append("<h2>Advice (0 points: worth doing, not graded)</h2>")
    for where, text in advice:
        out.append(f'<div class="advice-box"><h3>{_e(where)}</h3><p>{_inline_code(text)}</p></div>')
    out.append("<h2>Ready for a GPU?</h2>")
    out += [f"<p>{_inline_code(line)}</p>" for line in device_lines(result)]
    if result.curve is not None:
        out.append("<h2>How does your fit train?</h2>")
        out.append(f"<p>{_e(curve_sentence(result.curve))}</p>")
        curve_pic = next((p for p in pics if p.key == "fit-curve"), None)
        if curve_pic is not None:
            out.append(f"<p>{_img(curve_pic)}</p>")
    rows = ladder_rows(result)
    if result.speed is not None and result.speed.noisy:
        out.append(f"<h2>How fast is your matmul?</h2><p>{_e(NOISY)}</p>")
    if rows:
        out.append("<h2>How fast is your matmul?</h2>")
        sentence = speed_sentence(rows)
        if sentence:
            out.append(f"<p>{_e(sentence)}</p>")
        speed_pic = next((p for p in pics if p.key == "matmul-speed"), None)
        if speed_pic is not None:
            out.append(f"<p>{_img(speed_pic)}</p>")
        out.append("<table><tr><th>matmul</th><th>time per call</th><th>vs torch.matmul</th></tr>")
        for r in rows:
            ratio = ratio_text(r.times_torch) if r.times_torch is not None else r.why_unranked
            cls = ' class="failed"' if r.student else ""
            out.append(f"<tr><td{cls}>{_e(r.label)}</td><td>{r.over}{human_time(r.seconds)}</td>"
                       f"<td>{ratio}</td></tr>")  # fmt: skip
        out.append("</table>")
    notes = other_notes(result)
    if notes:
        out.append("<h2>Notes</h2><ul>")
        out += [f"<li>{_inline_code(n)}</li>" for n in notes]
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# --- Markdown ------------------------------------------------------------------------


def feedback_markdown(
    result: GradeResult, files: str, pics: tuple[Picture, ...] | None = None
) -> tuple[str, dict[str, bytes]]:
    """The Markdown report, and the pictures it links to as {relative path: PNG}, all
    under the folder `files` (relative to the Markdown file)."""
    pics = pictures(result) if pics is None else pics
    score = result.score
    paths = {p.key: f"{files}/{p.key}.png" for p in pics}
    by_check = {id(p.check): p for p in pics if p.check is not None}
    lines = [
        f"# Feedback on {markdown_text(result.notebook.name, one_line=True)} "
        f"({markdown_text(result.assignment, one_line=True)}): {score.total}/{score.max_total}",
        "",
        f"Graded with {seed_words(result.seed)} on {result.device}, "
        f"grader {result.grader_version}.",
        "",
        "| exercise | check | points | status |",
        "|---|---|---:|---|",
    ]
    for c, status in shown_checks(score.checks):
        lines.append(
            f"| {markdown_text(c.exercise_title, table=True)} | "
            f"{markdown_text(c.name, table=True)} | {c.score}/{c.max_score} | {MARKS[status]} |"
        )
    failed = checks_to_fix(score.checks)
    if failed:
        lines += ["", "## What to fix"]
    for c in failed:
        lines += ["", f"### {c.exercise_title}: {c.name}", ""]  # the grader's own words
        lines += [f"- **{label}**: {markdown_text(text)}" for label, text in detail_lines(c)]
        if id(c) in by_check:
            p = by_check[id(c)]
            alt, legend = markdown_text(p.alt, one_line=True), markdown_text(picture_legend(c))
            lines += ["", f"![{alt}]({paths[p.key]})", "", f"*{legend}*"]
        elif same := same_mistake(result, c):
            lines += ["", f"*{markdown_text(same)}*"]
    advice = advice_entries(score.checks)
    if advice:
        lines += ["", "## Advice (0 points: worth doing, not graded)", ""]
        lines += [f"- **{markdown_text(where)}**: {markdown_text(text)}" for where, text in advice]
    lines += ["", "## Ready for a GPU?", ""]
    lines += [f"- {markdown_text(x)}" for x in device_lines(result)]
    if result.curve is not None:
        lines += [
            "",
            "## How does your fit train?",
            "",
            markdown_text(curve_sentence(result.curve)),
        ]
        if "fit-curve" in paths:
            lines += ["", f"![fit's loss and accuracy per epoch]({paths['fit-curve']})"]
    rows = ladder_rows(result)
    if result.speed is not None and result.speed.noisy:
        lines += ["", "## How fast is your matmul?", "", NOISY]
    if rows:
        lines += ["", "## How fast is your matmul?", ""]
        sentence = speed_sentence(rows)
        if sentence:
            lines += [markdown_text(sentence), ""]
        if "matmul-speed" in paths:
            lines += [f"![the matmul speed ladder]({paths['matmul-speed']})", ""]
        lines += ["| matmul | time per call | vs torch.matmul |", "|---|---:|---:|"]
        for r in rows:
            ratio = ratio_text(r.times_torch) if r.times_torch is not None else r.why_unranked
            name = markdown_text(r.label, table=True)
            name = f"**{name}**" if r.student else name
            lines.append(f"| {name} | {r.over}{human_time(r.seconds)} | {ratio} |")
    notes = other_notes(result)
    if notes:
        lines += ["", "## Notes", ""] + [f"- {markdown_text(n)}" for n in notes]
    return "\n".join(lines) + "\n", {paths[p.key]: p.png for p in pics}


def write_feedback(result: GradeResult, *paths: Path) -> list[Path]:
    """Write the report to each path: HTML for `.html`/`.htm`, Markdown (and a
    `<stem>_files/` folder of pictures) for `.md`. Returns the files written."""
    bad = [p for p in paths if Path(p).suffix.lower() not in (".html", ".htm", ".md")]
    if bad:
        raise ValueError(f"{bad[0]}: a report is .html or .md")
    pics = pictures(result)  # drawn once for every rendering
    written: list[Path] = []
    for path in map(Path, paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() in (".html", ".htm"):
            path.write_text(feedback_html(result, pics), encoding="utf-8")
            written.append(path)
            continue
        text, files = feedback_markdown(result, f"{path.stem}_files", pics)
        path.write_text(text, encoding="utf-8")
        written.append(path)
        for rel, png in files.items():
            target = path.parent / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(png)
            written.append(target)
    return written
