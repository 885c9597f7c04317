"""GitHub's workflow commands for annotations (`::error file=...,line=...::message`),
escaped as the runner reads them, and the line of a notebook file an annotation about an
exercise belongs on: that of its code. For `ci-grade` (pull requests) and the release's
Classroom workflow (classroom.py)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["annotation", "exercise_line"]


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, file: str, line: int, title: str, message: str) -> str:
    """One GitHub workflow command, escaped as the runner expects."""
    return (
        f"::{level} file={_escape_property(file)},line={line},"
        f"title={_escape_property(title)}::{_escape_data(message)}"
    )


def exercise_line(path: Path, cell: str) -> int:
    """The line of the notebook file where the exercise's code is: in the cell with that
    grade_id, the first source line that defines something (`def`, `class`), else its
    first source line, so an annotation points at the student's code rather than at the
    cell's metadata above it; 1 when it cannot be found."""
    needle = f'"grade_id": "{cell}"'
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return 1
    start = next((i for i, line in enumerate(lines) if needle in line), None)
    if start is None:
        return 1
    source = next((i for i in range(start, len(lines)) if '"source":' in lines[i]), None)
    if source is None:
        return start + 1
    if not lines[source].rstrip().endswith("["):  # "source": "one string"
        return source + 1
    body = []
    for i in range(source + 1, len(lines)):
        if lines[i].strip() in ("]", "],"):
            break
        body.append(i)
    for i in body:
        code = lines[i].strip().lstrip('"')
        if code.startswith(("def ", "class ")):
            return i + 1
    return body[0] + 1 if body else source + 1
