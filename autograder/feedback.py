"""The feedback report a student (or a TA) reads: the score, each failed check with what
was expected and what came back, the hint, and pictures where a picture says more than
a number: a heat map of `yours - expected` for every wrong gradient (a transposed or
unsummed gradient is visible at a glance), and for matmul the speed ladder. Also whether
the code is ready for a GPU (tensors made without the inputs' device, found on the CPU).

Two renderings of one content: a self-contained HTML page (pictures inlined) and
Markdown for CI summaries (pictures as PNG files beside it). Pure functions of a
GradeResult, except `write_feedback`, which writes the files.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path

from .markdown import markdown_text
from .pipeline import GradeResult
from .report import MARKS, shown_checks
from .score import CheckResult
from .speed import NOISY, TORCH, LadderRow, ladder, ratio_text

__all__ = ["Picture", "feedback_html", "feedback_markdown", "pictures", "write_feedback"]


@dataclass(frozen=True)
class Picture:
    key: str  # a file-name-safe name, unique within a report
    alt: str
    png: bytes
    check: CheckResult | None = None  # the failed check it illustrates, if any


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "picture"


def _human(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def _ladder(result: GradeResult) -> tuple[LadderRow, ...]:
    if result.speed is None:
        return ()
    # The lesson's rungs are timed on the grader's CPU: reference points for CPU runs only.
    return ladder(result.speed, with_lesson=result.device == "cpu")


def pictures(result: GradeResult) -> tuple[Picture, ...]:
    """The report's pictures: one heat map per failed check whose first wrong value is a
    gradient with both tensors at hand, then the speed ladder."""
    from .pictures import heatmap_png, ladder_png

    out: list[Picture] = []
    for c in result.score.checks:
        v = c.verdict
        if c.passed or v is None or v.want is None or not v.value.endswith(".g"):
            continue
        if _drawn_before(result, c) is not None:
            continue  # one picture per recognised mistake: the others point to it
        got = v.got.numpy() if v.got is not None else None
        caption = c.message.split(": ", 1)[0]
        png = heatmap_png(v.value, v.want.numpy(), got, caption=caption)
        key = _slug(f"{c.exercise}-{c.name}-{v.value}")
        out.append(Picture(key, f"heat map of {v.value}: yours against expected", png, c))
    rows = _ladder(result)
    if rows:
        ar, ac, bc = result.speed.shape  # type: ignore[union-attr]
        png = ladder_png(
            [(r.label, r.seconds, r.student, r.at_least) for r in rows],
            title=f"matmul of ({ar}, {ac}) @ ({ac}, {bc}), seconds per call (log scale)",
        )
        out.append(Picture("matmul-speed", "the matmul speed ladder, log scale", png))
    return tuple(out)


def _speed_sentence(rows: tuple[LadderRow, ...]) -> str:
    mine = [r for r in rows if r.student and r.times_torch is not None]
    if not mine:
        return ""
    fastest = min(mine, key=lambda r: r.seconds)
    torch_row = next(r for r in rows if r.label == TORCH)
    return (
        f"Your fastest matmul ({fastest.label.removeprefix('your ')}) takes "
        f"{fastest.over}{_human(fastest.seconds)} per call, "
        f"{fastest.over}{ratio_text(fastest.times_torch)} the time of "
        f"torch.matmul ({_human(torch_row.seconds)}): each rung of the lesson moves a loop "
        "out of Python and into torch's compiled code."
    )


def _details(c: CheckResult) -> list[tuple[str, str]]:
    """(label, text) lines for a failed check: what came back against what was expected."""
    lines = [("What went wrong", c.message)]
    v = c.verdict
    if v is not None and v.want_shape is not None and v.got_shape != v.want_shape:
        lines.append(("Shape", f"yours {v.got_shape}, expected {v.want_shape}"))
    if v is not None and v.rel_error is not None:
        lines.append(
            (
                "Error",
                f"norm-relative {v.rel_error:.2e}, largest absolute {v.max_abs_error:.3g}"
                + (
                    f"; worst element {v.worst}: yours {v.got_worst:.6g}, expected "
                    f"{v.want_worst:.6g}"
                    if v.worst is not None and v.got_worst is not None
                    else ""
                ),
            )
        )
    if c.hint and c.hint != c.message:
        lines.append(("Hint", c.hint))
    return lines


def _to_fix(checks: tuple[CheckResult, ...]) -> list[CheckResult]:
    """The failed checks that cost points."""
    return [c for c in checks if not c.passed and not c.advisory]


def _advice(checks: tuple[CheckResult, ...]) -> list[tuple[str, str]]:
    """Advice (failed 0-point checks) as (where, text), once per distinct text: the same
    float64 note on three matmul rungs is one entry naming the three."""
    groups: dict[str, list[str]] = {}
    for c in checks:
        if c.advisory and not c.passed:
            text = c.message + (f" Hint: {c.hint}" if c.hint and c.hint != c.message else "")
            groups.setdefault(text, []).append(f"{c.exercise_title}: {c.name}")
    return [("; ".join(where), text) for text, where in groups.items()]


def _drawn_before(result: GradeResult, c: CheckResult) -> CheckResult | None:
    """An earlier failed check whose picture shows the same recognised mistake."""
    if not c.mistake:
        return None
    for other in result.score.checks:
        if other is c:
            return None
        v = other.verdict
        if (
            not other.passed
            and other.mistake == c.mistake
            and v is not None
            and v.want is not None
            and v.value.endswith(".g")
        ):
            return other
    return None


def _same_as(result: GradeResult, c: CheckResult) -> str | None:
    first = _drawn_before(result, c)
    if first is None or c.verdict is None or c.verdict.want is None:
        return None
    return f"The same mistake as in “{first.exercise_title}: {first.name}”: see its picture above."


def _legend(c: CheckResult) -> str:
    v = c.verdict
    if v is not None and v.got is not None and v.got_shape == v.want_shape:
        return (
            "Left: the expected gradient; middle: yours, on the same colour scale; right: "
            "how far each element of yours is from its expected value, relative to that "
            "value (red where yours is larger, blue where it is smaller, white where it is "
            "right, full colour where it is 100% off or more)."
        )
    return "The expected gradient and yours, side by side: their shapes differ."


def _device_lines(result: GradeResult) -> list[str]:
    if not result.device_findings:
        return [
            "No tensor was made without the inputs' device and none was moved to the CPU "
            "during the grader's calls: as far as the grader can see on "
            f"{result.device}, your functions are ready for a GPU."
        ]
    return [n.removeprefix("Device readiness: ") for n in result.score.notes
            if n.startswith("Device readiness: ")]  # fmt: skip


def _other_notes(result: GradeResult) -> list[str]:
    return [n for n in result.score.notes if not n.startswith("Device readiness: ")]


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
        f'<p class="muted">Graded with seed {result.seed} on {_e(result.device)}, '
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
    failed = _to_fix(score.checks)
    if failed:
        out.append("<h2>What to fix</h2>")
    for c in failed:
        out.append(f'<div class="check"><h3>{_e(c.exercise_title)}: {_e(c.name)}</h3><dl>')
        for label, text in _details(c):
            out.append(f"<dt>{_e(label)}</dt>\n<dd>{_inline_code(text)}</dd>")
        out.append("</dl>")
        if id(c) in by_check:
            out.append(f"<p>{_img(by_check[id(c)])}</p><p class='muted'>{_e(_legend(c))}</p>")
        elif same := _same_as(result, c):
            out.append(f"<p class='muted'>{_e(same)}</p>")
        out.append("</div>")
    advice = _advice(score.checks)
    if advice:
        out.append("<h2>Advice (0 points: worth doing, not graded)</h2>")
    for where, text in advice:
        out.append(f'<div class="advice-box"><h3>{_e(where)}</h3><p>{_inline_code(text)}</p></div>')
    out.append("<h2>Ready for a GPU?</h2>")
    out += [f"<p>{_inline_code(line)}</p>" for line in _device_lines(result)]
    rows = _ladder(result)
    if result.speed is not None and result.speed.noisy:
        out.append(f"<h2>How fast is your matmul?</h2><p>{_e(NOISY)}</p>")
    if rows:
        out.append("<h2>How fast is your matmul?</h2>")
        sentence = _speed_sentence(rows)
        if sentence:
            out.append(f"<p>{_e(sentence)}</p>")
        speed_pic = next((p for p in pics if p.key == "matmul-speed"), None)
        if speed_pic is not None:
            out.append(f"<p>{_img(speed_pic)}</p>")
        out.append("<table><tr><th>matmul</th><th>time per call</th><th>vs torch.matmul</th></tr>")
        for r in rows:
            ratio = r.over + ratio_text(r.times_torch) if r.times_torch is not None else ""
            cls = ' class="failed"' if r.student else ""
            out.append(f"<tr><td{cls}>{_e(r.label)}</td><td>{r.over}{_human(r.seconds)}</td>"
                       f"<td>{ratio}</td></tr>")  # fmt: skip
        out.append("</table>")
    notes = _other_notes(result)
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
        f"# Feedback on {result.notebook.name} ({result.assignment}): "
        f"{score.total}/{score.max_total}",
        "",
        f"Graded with seed {result.seed} on {result.device}, grader {result.grader_version}.",
        "",
        "| exercise | check | points | status |",
        "|---|---|---:|---|",
    ]
    for c, status in shown_checks(score.checks):
        lines.append(
            f"| {markdown_text(c.exercise_title, table=True)} | "
            f"{markdown_text(c.name, table=True)} | {c.score}/{c.max_score} | {MARKS[status]} |"
        )
    failed = _to_fix(score.checks)
    if failed:
        lines += ["", "## What to fix"]
    for c in failed:
        lines += ["", f"### {c.exercise_title}: {c.name}", ""]
        lines += [f"- **{label}**: {markdown_text(text)}" for label, text in _details(c)]
        if id(c) in by_check:
            p = by_check[id(c)]
            lines += ["", f"![{p.alt}]({paths[p.key]})", "", f"*{_legend(c)}*"]
        elif same := _same_as(result, c):
            lines += ["", f"*{same}*"]
    advice = _advice(score.checks)
    if advice:
        lines += ["", "## Advice (0 points: worth doing, not graded)", ""]
        lines += [f"- **{markdown_text(where)}**: {markdown_text(text)}" for where, text in advice]
    lines += ["", "## Ready for a GPU?", ""]
    lines += [f"- {markdown_text(x)}" for x in _device_lines(result)]
    rows = _ladder(result)
    if result.speed is not None and result.speed.noisy:
        lines += ["", "## How fast is your matmul?", "", NOISY]
    if rows:
        lines += ["", "## How fast is your matmul?", ""]
        sentence = _speed_sentence(rows)
        if sentence:
            lines += [sentence, ""]
        if "matmul-speed" in paths:
            lines += [f"![the matmul speed ladder]({paths['matmul-speed']})", ""]
        lines += ["| matmul | time per call | vs torch.matmul |", "|---|---:|---:|"]
        for r in rows:
            ratio = r.over + ratio_text(r.times_torch) if r.times_torch is not None else ""
            name = markdown_text(r.label, table=True)
            name = f"**{name}**" if r.student else name
            lines.append(f"| {name} | {r.over}{_human(r.seconds)} | {ratio} |")
    notes = _other_notes(result)
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
