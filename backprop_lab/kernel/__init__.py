"""The grader's code that runs *inside the student's kernel*, as a package of small parts.

`harvest.py` injects `SOURCE`, the parts joined into one source, into the notebook as two
cells, compiled under the file name `GRADER_FILE` (`<autograder>`), so that tracebacks can
tell grader frames from student frames. The first cell, at the top, `start`s recording
every definition of the graded names as cells run. The last carries the grader's inputs:
it runs a fresh copy of the source, `adopt`s the first cell's recorded data (never its
code), and `harvest` calls the student's functions on the inputs and sends back plain
data only (tensors saved for `torch.load(weights_only=True)`, and JSON, in the format of
`wire`) as one display message of its own type, in that cell's output, which the grader
reads from the kernel's message stream. Nothing reaches the disk, and nothing here trusts
or returns a student object to the grader.

The parts, in the order they are joined (each imports only from those before it):
state (what the start cell records), calling (a protocol's `Recipe`, the data saying how
student code is called), wire (the boundary's format), limits (the sandbox inside the
kernel), integrity (tamper detection), recording (start, the cell hooks, picking a
definition), recipes (the runners that call student code as a `Recipe` says), watch (the
device watch, global reads), gradwatch (autograd seen below `__torch_function__`), timing
(the speed ladder), answers (values, errors, the message), entry (`harvest`). The grader
imports them as modules too: `wire` to write the plan and read the results,
`recording.cell_sha` to find a cell, and the tests each part.

Only the standard library and torch (and IPython, at run time): the kernel may be any
environment that can run the notebook. This module itself imports neither.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .limits import neutralise_debuggers
from .state import GRADER_FILE
from .wire import RESULTS_MIME, SCHEMA

__all__ = [
    "GRADER_FILE",
    "PARTS",
    "RESULTS_MIME",
    "SCHEMA",
    "SOURCE",
    "join",
    "neutralise_debuggers",
]

PARTS = ("state", "calling", "wire", "limits", "integrity", "recording", "recipes", "watch",
         "gradwatch", "timing", "answers", "entry")  # fmt: skip
_HERE = Path(__file__).parent
# The joined source's first line (`wire` needs it, and a `__future__` import must come
# first): annotations stay strings in the whole source.
_FUTURE = "from __future__ import annotations\n"


def join(parts: tuple[str, ...] = PARTS) -> str:
    """The parts' sources as one, in order, without their imports of one another (their
    names are then globals of the one namespace) or their `__future__` imports (one at
    the top). Raises ValueError for an import the join cannot undo: a part imported
    before it is joined, a module-level import under another name, or one of a name that
    another part also defines."""
    chunks: list[str] = [_FUTURE]
    defined: dict[str, str] = {}  # top-level name -> the part that defines it
    for index, part in enumerate(parts):
        source = (_HERE / f"{part}.py").read_text(encoding="utf-8")
        tree = ast.parse(source)
        drop: set[int] = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and (node.level or node.module == "__future__"):
                _check_import(node, part, parts[:index], defined)
                drop.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        for name in _top_level_names(tree):
            if name in defined and name != "__all__":
                raise ValueError(f"{part}.py and {defined[name]}.py both define {name}")
            defined[name] = part
        lines = source.splitlines(keepends=True)
        kept = "".join(line for n, line in enumerate(lines, start=1) if n not in drop)
        chunks.append(f"\n# ---- {part}.py " + "-" * 60 + "\n" + kept)
    return "".join(chunks)


def _check_import(node: ast.ImportFrom, part: str, before: tuple[str, ...], defined: dict) -> None:
    if node.module == "__future__":
        return
    if node.level != 1 or node.module not in before:
        raise ValueError(f"{part}.py imports .{node.module or ''}, not a part joined before it")
    for alias in node.names:
        if alias.asname or defined.get(alias.name) != node.module:
            raise ValueError(
                f"{part}.py imports {alias.name} from .{node.module} in a form the join cannot keep"
            )


def _top_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


SOURCE = join()
