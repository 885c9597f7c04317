"""Feedback reports: `autograde check --report` writes the HTML and Markdown a student
reads, with the heat map of a wrong gradient that a browser really shows; `autograde
grade` writes one per student; code that makes tensors on the CPU whatever the inputs'
device is told so on a machine without a GPU (and fails on one with a GPU)."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import nbformat
import pytest
import torch
from browser_tools import screenshot, strong_colours
from grading_tools import full_marks, points
from mistake_cases import MISTAKES
from notebook_tools import SOLUTION
from PIL import Image

from backprop_lab.gradebook.batch import grade_submissions
from backprop_lab.pipeline import Options, grade
from backprop_lab.verbs.cli import main

pytestmark = pytest.mark.slow

BY_NAME = {m.name: m for m in MISTAKES}


def with_edit(assignment: str, grade_id: str, old: str, new: str, to: Path) -> Path:
    nb = nbformat.read(SOLUTION[assignment], as_version=4)
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    assert old in cell.source, f"{old!r} is no longer in {grade_id}: update this test"
    cell.source = cell.source.replace(old, new)
    to.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, to)
    return to


def averaged_bias(to: Path) -> Path:
    """lin_grad with the bias gradient averaged over the batch instead of summed."""
    return with_edit("backprop", "lin_grad", "b.g = out.g.sum(0)", "b.g = out.g.mean(0)", to)


CPU_MATMUL = ("c = torch.zeros(ar, bc, dtype=a.dtype, device=a.device)",
              "c = torch.zeros(ar, bc, dtype=a.dtype)")  # fmt: skip


def _text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_check_report_html_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    nb = averaged_bias(tmp_path / "bug" / "backprop.ipynb")
    page, md = tmp_path / "r" / "feedback.html", tmp_path / "r" / "feedback.md"
    code = main(["check", str(nb), "--report", str(page), "--report", str(md)])
    assert code == 1  # something failed
    assert f"Feedback report: {page}" in capsys.readouterr().out
    text = _text(page.read_text(encoding="utf-8"))
    full = full_marks("backprop")
    left = full - points("backprop", BY_NAME["bias-averaged"].lost)
    assert f"{left} / {full} points" in text
    assert "b.g is averaged over the batch" in text  # the hint, in words ...
    assert "bias-averaged" not in text  # ... not the catalogue's id
    assert "yours (3,), expected (3,)" not in text  # shapes only when they differ
    # self-contained: the pictures are inside the page, nothing else is loaded
    assert 'alt="heat map of b.g: yours against expected" src="data:image/png;base64,' in (
        page.read_text(encoding="utf-8")
    )
    assert not re.search(r'(src|href)="(?!data:)', page.read_text(encoding="utf-8"))
    # Markdown: the same content, pictures as files beside it that exist
    body = md.read_text(encoding="utf-8")
    assert f"# Feedback on backprop.ipynb (backprop): {left}/{full}" in body
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", body)
    assert links and all((md.parent / link).is_file() for link in links), links
    assert all(Image.open(md.parent / link).format == "PNG" for link in links)


def test_a_report_must_be_html_or_markdown(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["check", str(SOLUTION["matmul"]), "--report", str(tmp_path / "r.pdf")]) == 2
    assert "a report is a .html or a .md file" in capsys.readouterr().err


def test_the_heat_map_shows_in_a_browser(tmp_path: Path, chromium: str) -> None:
    # The report as a student opens it: the averaged bias gradient's difference panel is
    # red where theirs is too large and blue where too small, and a browser shows both.
    page = tmp_path / "feedback.html"
    assert main(["check", str(averaged_bias(tmp_path / "nb" / "backprop.ipynb")),
                 "--report", str(page)]) == 1  # fmt: skip
    shot = screenshot(page, tmp_path / "feedback.png", width=1200, height=3000)
    shown = {k: int(v.sum()) for k, v in strong_colours(Image.open(shot)).items()}
    # The same page with the pictures taken out: what red and blue the page has of its
    # own (the red of "failed"); the heat maps must add plenty of both.
    bare = tmp_path / "bare.html"
    bare.write_text(re.sub(r"<img [^>]*>", "", page.read_text(encoding="utf-8")))
    shot = screenshot(bare, tmp_path / "bare.png", width=1200, height=3000)
    own = {k: int(v.sum()) for k, v in strong_colours(Image.open(shot)).items()}
    assert shown["red"] - own["red"] > 100 and shown["blue"] - own["blue"] > 100, (shown, own)


def test_a_matmul_that_allocates_on_the_cpu_is_flagged_on_the_cpu(tmp_path: Path) -> None:
    nb = with_edit("matmul", "matmul_loops", *CPU_MATMUL, tmp_path / "cpu" / "matmul.ipynb")
    result = grade(nb)
    assert result.score.total == result.score.max_total  # right on the CPU...
    assert result.device_findings == (("matmul", "torch.zeros", CPU_MATMUL[1]),)
    (note,) = [n for n in result.score.notes if n.startswith("Device readiness")]
    assert "with inputs on a GPU the tensor stays on the CPU" in note  # ...but told
    # the solution takes the device from its inputs: nothing to say
    assert grade(SOLUTION["matmul"]).device_findings == ()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_same_matmul_fails_with_the_device_hint(tmp_path: Path) -> None:
    nb = with_edit("matmul", "matmul_loops", *CPU_MATMUL, tmp_path / "cpu" / "matmul.ipynb")
    result = grade(nb, Options(device="cuda"))
    (check,) = [c for c in result.score.failed if c.exercise == "matmul_loops"]
    assert check.mistake == "device", check.message
    assert "device=" in (check.hint or "")


def test_matmul_report_has_the_speed_ladder(tmp_path: Path) -> None:
    result = grade(SOLUTION["matmul"])
    assert result.speed is not None and result.speed.shape == (5, 784, 10)
    labels = [label for label, seconds, *_ in result.speed.rows if seconds]
    assert labels == [
        "your matmul_loops",
        "your matmul_elementwise",
        "your matmul_broadcast",
        "einsum",
        "torch.matmul (@)",
    ]
    seconds = dict((label, s) for label, s, *_ in result.speed.rows)
    # the lesson's point, measured: each rung is faster than the one before
    assert seconds["your matmul_loops"] > seconds["your matmul_broadcast"]
    assert seconds["your matmul_broadcast"] > seconds["torch.matmul (@)"]
    from backprop_lab.report.feedback import write_feedback

    (page,) = write_feedback(result, tmp_path / "f.html")
    text = _text(page.read_text(encoding="utf-8"))
    assert "How fast is your matmul?" in text and "x the time of torch.matmul" in text
    assert "lesson: loops" in text


def test_grade_writes_a_report_per_student_and_twins_get_theirs(tmp_path: Path) -> None:
    averaged_bias(tmp_path / "class" / "ann" / "backprop.ipynb")
    shutil.copytree(tmp_path / "class" / "ann", tmp_path / "class" / "ben")  # same bytes
    shutil.copytree(SOLUTION["backprop"].parent, tmp_path / "class" / "cat")
    grade_submissions([tmp_path / "class"], tmp_path / "out", workers=1, progress=False)
    for student in ("ann", "ben", "cat"):
        folder = tmp_path / "out" / "submissions" / student / "backprop"
        page = (folder / "feedback.html").read_text(encoding="utf-8")
        assert (folder / "feedback.md").is_file()
        drawn = 'alt="heat map of b.g' in page
        assert drawn == (student != "cat"), student
        assert (folder / "feedback_files").is_dir() == drawn
    # the TA's summary links every report, and the links resolve
    links = re.findall(r"\[report\]\(([^)]+)\)", (tmp_path / "out" / "summary.md").read_text())
    reports = [f"submissions/{s}/backprop/feedback.html" for s in ("ann", "ben", "cat")]
    assert sorted(links) == reports
    assert all((tmp_path / "out" / link).is_file() for link in links)
    none = grade_submissions(
        [tmp_path / "class"], tmp_path / "none", workers=1, progress=False, feedback=False
    )
    assert none.count("graded") == 3
    assert not list((tmp_path / "none").rglob("feedback*"))
    assert "[report](" not in (tmp_path / "none" / "summary.md").read_text()


def test_a_report_that_fails_to_draw_costs_no_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import backprop_lab.report.feedback

    def broken(*args, **kwargs):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(backprop_lab.report.feedback, "write_feedback", broken)
    shutil.copytree(SOLUTION["backprop"].parent, tmp_path / "class" / "ann")
    summary = grade_submissions([tmp_path / "class"], tmp_path / "out", workers=1, progress=False)
    (record,) = summary.records
    assert record["extra_data"]["status"] == "graded" and record["score"] == full_marks("backprop")
    assert "RuntimeError: no fonts" in record["extra_data"]["feedback_error"]
