"""Reading the course's own CSV files (the roster, the overrides): the header matched
without regard to case or spaces, every row with the line it came from, and one error
type, `CourseFileError`, whose message names the file and the line, so the verbs can
refuse to start (exit 2) with a sentence a person can act on."""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["CourseFileError", "read_table"]


class CourseFileError(ValueError):
    """A course file (roster, overrides, due date, late policy) that cannot be used."""


def read_table(
    path: Path, required: tuple[str, ...], optional: tuple[str, ...], *, strict: bool
) -> list[tuple[str, dict[str, str]]]:
    """The rows of the CSV file `path` as (where, {column: text}) with `where` like
    "overrides.csv, line 4"; blank rows skipped, cells stripped. Columns are named in
    lower case. `strict`: a column that is neither required nor optional is an error (a
    typo in a file that changes grades should not be ignored); otherwise it is ignored
    (a roster exported from an LMS has many)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # Excel writes a byte-order mark
    except (OSError, UnicodeDecodeError) as exc:
        raise CourseFileError(f"{path}: cannot read it ({exc})") from None
    reader = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in required if c not in header]
    if missing:
        raise CourseFileError(
            f"{path}, line 1: no {', '.join(map(repr, missing))} column; the header must "
            f"name {', '.join(required)} (and may name {', '.join(optional)})"
        )
    unknown = [h for h in header if h not in required + optional]
    if strict and unknown:
        raise CourseFileError(
            f"{path}, line 1: unknown column {unknown[0]!r}; the columns are "
            f"{', '.join(required + optional)}"
        )
    doubled = [h for h in header if h and header.count(h) > 1]
    if doubled:
        raise CourseFileError(f"{path}, line 1: the column {doubled[0]!r} is named twice")
    rows = []
    for cells in reader:
        where = f"{path.name}, line {reader.line_num}"
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            raise CourseFileError(f"{where}: {len(cells)} cells for {len(header)} columns")
        row = {h: c.strip() for h, c in zip(header, cells, strict=False) if h}
        rows.append((where, {c: row.get(c, "") for c in required + optional}))
    return rows
