"""CSV cells a spreadsheet shows as text, never runs: OWASP's rule against CSV injection.

A student picks their folder's name, and the name is grades.csv's first column: a cell
that starts with `=`, `+`, `-` or `@` (or a tab or a carriage return, which some
spreadsheets skip before one of those) is a formula to Excel, LibreOffice and Sheets, and
`=HYPERLINK(...)` or `=WEBSERVICE(...)` in it runs on the machine of whoever opens the
gradebook. OWASP's fix: such a cell starts with a single quote, which the spreadsheet
shows as text. `restored` undoes it exactly, because a cell that already started with a
quote before one of those characters gets one more: no two texts are written alike.
Numbers are never passed here; they stay numbers, negative ones included.
"""

from __future__ import annotations

__all__ = ["FORMULA_STARTS", "neutralised", "restored"]

FORMULA_STARTS = frozenset("=+-@\t\r")
_QUOTE = "'"


def _would_be_undone(text: str) -> bool:
    """Does `restored` take a leading quote off `text`?"""
    return text[:1] == _QUOTE and text[1:2] in FORMULA_STARTS | {_QUOTE}


def neutralised(text: str) -> str:
    """`text` as a CSV text cell that no spreadsheet reads as a formula."""
    if text[:1] in FORMULA_STARTS or _would_be_undone(text):
        return _QUOTE + text
    return text


def restored(cell: str) -> str:
    """The text that `neutralised` made `cell` from."""
    return cell[1:] if _would_be_undone(cell) else cell
