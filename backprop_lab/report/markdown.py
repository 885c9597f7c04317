"""Text as Markdown that shows exactly that text: the one escaper every Markdown report
uses (the CI summary and pull request comment, the feedback report, the class summary)
for every name, path and message in it.

Messages quote code (`c[i] = (a[i, None] * b).sum(dim=0)`), shapes (N, 1), products
a * b and names like <lambda>; unescaped, Markdown would turn brackets into links, stars
into emphasis, `<lambda>` into a hidden HTML tag and `|` into a new table column. Names
and paths are the student's to choose, line breaks and all: a notebook named
"x`\n## ✅ 15/15\n<!--`.ipynb" would, unescaped, add a heading of its choosing to a
pull request's summary and hide the real score in an HTML comment that never closes.
`markdown_text` shows such a name as one line of text, `markdown_code` as one code span.
"""

from __future__ import annotations

import re

__all__ = ["markdown_code", "markdown_text"]

_CODE_SPAN = re.compile(r"(`[^`\r\n]+`)")
# What CommonMark or GitHub reads as formatting inside a line (emphasis, links, HTML,
# entities, strike-through, table cells); a backslash before ASCII punctuation always
# means the character itself. Line-start syntax (#, -, 1.) cannot occur: text is put
# after "- ", "### " or in a table cell, and it never breaks a line (Markdown reads the
# block structure, headings and HTML comments included, before anything inside a line).
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # CommonMark's line endings, all three
# What would end or reshape a line when one line is wanted, shown as its escape (`\n`)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def _visible(text: str) -> str:
    """`text` with its line breaks and other control characters written as escapes."""
    return _CONTROL.sub(lambda m: ascii(m.group())[1:-1], text)


def markdown_text(text: object, *, table: bool = False, one_line: bool = False) -> str:
    """`text` as inline Markdown for a list item, a heading or, with `table`, a table
    cell: code spans written with backticks stay code, every other formatting character
    is escaped and line breaks become `<br>`, or with `one_line` (for names and paths,
    where a line break means nothing but mischief) escapes like `\\n`. In a table `|` is
    escaped inside code spans too (GitHub splits cells on it even there, and shows `\\|`
    in a cell's code as `|`); anywhere else a backslash in code would show."""
    text = str(text)
    parts = _CODE_SPAN.split(_visible(text) if one_line else text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # a code span: shown as written
            out.append(part.replace("|", "\\|") if table else part)
        else:
            out.append(_LINE_BREAK.sub("<br>", _SPECIAL.sub(r"\\\1", part)))
    return "".join(out)


def markdown_code(text: object, *, table: bool = False) -> str:
    """`text` (a path, a file name) as one inline code span that shows it as it is: its
    fence longer than any run of backticks in it, line breaks and other control
    characters written as escapes (`\\n`), and in a table `|` escaped (GitHub splits
    cells on it even in code, and shows `\\|` there as `|`)."""
    body = _visible(str(text))
    if table:
        body = body.replace("|", "\\|")
    fence = "`" * (1 + max((len(run) for run in re.findall("`+", body)), default=0))
    # a space each side keeps a backtick at either end out of the fence (CommonMark strips it)
    pad = " " if body.startswith("`") or body.endswith("`") or not body.strip() else ""
    return f"{fence}{pad}{body}{pad}{fence}"
