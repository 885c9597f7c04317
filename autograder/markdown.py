"""Text as Markdown that shows exactly that text: the one escaper every Markdown report
uses (the CI summary, the feedback report, the class summary).

Messages quote code (`c[i] = (a[i, None] * b).sum(dim=0)`), shapes (N, 1), products
a * b and names like <lambda>; unescaped, Markdown would turn brackets into links, stars
into emphasis, `<lambda>` into a hidden HTML tag and `|` into a new table column.
"""

from __future__ import annotations

import re

__all__ = ["markdown_text"]

_CODE_SPAN = re.compile(r"(`[^`\n]+`)")
# What CommonMark or GitHub reads as formatting inside a line (emphasis, links, HTML,
# entities, strike-through, table cells); a backslash before ASCII punctuation always
# means the character itself. Line-start syntax (#, -, 1.) cannot occur: text is put
# after "- " or in a table cell, and its line breaks become <br>.
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


def markdown_text(text: object, *, table: bool = False) -> str:
    """`text` as inline Markdown for a list item or, with `table`, a table cell: code
    spans written with backticks stay code, every other formatting character is escaped
    and line breaks become `<br>`. In a table `|` is escaped inside code spans too (GitHub
    splits cells on it even there, and shows `\\|` in a cell's code as `|`); anywhere else
    a backslash in code would show."""
    parts = _CODE_SPAN.split(str(text))
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # a code span: shown as written
            out.append(part.replace("|", "\\|") if table else part)
        else:
            out.append(_SPECIAL.sub(r"\\\1", part).replace("\n", "<br>"))
    return "".join(out)
