"""Reading a submission: is it a notebook we can grade, which assignment is it, and where
are the exercise cells. Student code is found by name and by nbgrader metadata, never by
cell position: students move, split and retype cells."""

from __future__ import annotations

import ast
import errno
import hashlib
import json
import os
import stat
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from ..course import ASSIGNMENTS, EXERCISES

__all__ = [
    "PLACE_KEY",
    "NotebookError",
    "cell_place",
    "cell_shas",
    "defined_names",
    "detect_assignment",
    "is_answer_cell",
    "is_test_cell",
    "load_notebook",
    "mark_places",
    "nbgrader_meta",
    "notebook_digest",
    "read_notebook",
    "replace_function",
]

# Limits on what a notebook may be before anything parses it further. The course's own
# notebooks are 30 KB, 30 cells and 5 levels of JSON deep; a student's, with outputs and
# their own cells, stays far inside these. Past them a file costs the grader more than it
# can be worth (nbformat validates 100,000 cells in half a minute) or breaks it (copying,
# validating and writing nested JSON recurse once per level, and Python stops at 1,000).
MAX_NOTEBOOK_BYTES = 50 * 2**20
MAX_CELLS = 2_000
MAX_JSON_DEPTH = 64


class NotebookError(Exception):
    """The file cannot be graded at all; the message is one line a person can act on."""


def read_notebook(path: Path) -> NotebookNode:
    return load_notebook(path)[0]


def load_notebook(path: Path) -> tuple[NotebookNode, str]:
    """The notebook at `path` and the sha256 of the very bytes it was parsed from (one
    read: a file replaced meanwhile cannot give a digest of other bytes). NotebookError,
    with what to do, when it is not a notebook."""
    path = Path(path)
    data = _read_own_file(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotebookError(
            f"{path} is not UTF-8 text (byte {exc.start}): is it a notebook?"
        ) from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookError(
            f"{path} is not valid notebook JSON (line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg}): was it edited outside Jupyter?"
        ) from None
    except RecursionError:  # json's parser recurses once per level of nesting
        raise NotebookError(_too_deep(path)) from None
    if not isinstance(raw, dict) or ("cells" not in raw and "worksheets" not in raw):
        raise NotebookError(f"{path} is JSON but not a Jupyter notebook (no cells)")
    _check_size(raw, path)
    major = raw.get("nbformat")
    if not isinstance(major, int) or major < 3:
        raise NotebookError(f"{path} has notebook format {major!r}; expected 4 (Jupyter)")
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # nbformat raises several kinds; all mean "not a notebook"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NotebookError(f"{path} is not a valid notebook: {first}") from None
    return nb, hashlib.sha256(data).hexdigest()


def _too_deep(path: Path) -> str:
    return (
        f"{path} nests its JSON more than {MAX_JSON_DEPTH} levels deep, where a notebook "
        "nests about 5: clear the outputs in Jupyter (Kernel > Restart & Clear Output), "
        "save it there (File > Save) and submit that file"
    )


def _cell_count(raw: dict) -> int:
    """The cells of parsed notebook JSON, in format 4 or in format 3's worksheets."""
    cells = raw.get("cells")
    if isinstance(cells, list):
        return len(cells)
    sheets = raw.get("worksheets")
    if not isinstance(sheets, list):
        return 0
    return sum(len(w["cells"]) for w in sheets if isinstance(w, dict)
               and isinstance(w.get("cells"), list))  # fmt: skip


def _json_depth_over(value: object, limit: int) -> bool:
    """Does `value` nest dicts and lists more than `limit` levels deep? Level by level,
    with no recursion: it is the recursion the limit is there to spare."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(limit):
        level = [c for v in level for c in (v.values() if isinstance(v, dict) else v)
                 if isinstance(c, dict | list)]  # fmt: skip
        if not level:
            return False
    return True


def _check_size(raw: dict, path: Path) -> None:
    """NotebookError, with what to do, for a notebook past MAX_CELLS or MAX_JSON_DEPTH:
    checked on the bare JSON, before nbformat spends time on it."""
    cells = _cell_count(raw)
    if cells > MAX_CELLS:
        raise NotebookError(
            f"{path} has {cells:,} cells, more than the {MAX_CELLS:,} a notebook may have to "
            "be graded (the assignment has about 30): delete the cells you added for "
            "scratch work, or merge them, and submit again"
        )
    if _json_depth_over(raw, MAX_JSON_DEPTH):
        raise NotebookError(_too_deep(path))


def nbgrader_meta(cell: NotebookNode) -> dict:
    """A cell's nbgrader metadata ({} when it has none, or something else in its place)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def is_answer_cell(cell: NotebookNode) -> bool:
    """A code cell nbgrader marks as a solution, with its grade_id: where an answer goes."""
    meta = nbgrader_meta(cell)
    return (
        cell.get("cell_type") == "code"
        and bool(meta.get("solution"))
        and bool(meta.get("grade_id"))
    )


def is_test_cell(cell: NotebookNode) -> bool:
    """A graded test cell. The grader's checks replace them, so they never run: they would
    only cost time, and a hanging function would hang them too."""
    meta = nbgrader_meta(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


# In a clean-room test cell's metadata: the cell is the course's own test (course_tests.py),
# run and judged by the grader, never reported as the student's.
COURSE_TEST_KEY = "autograde_course_test"
PLACE_KEY = "autograde_place"  # cell metadata: where the student sees this cell


def cell_place(index: int, heading: str, exercise: str | None) -> str:
    """A cell as the student finds it: `cell 14 (relu_grad's cell)`, or
    `cell 29 (under "How fast is it?")`."""
    if exercise:
        return f"cell {index} ({exercise}'s cell)"
    under = f" (under \u201c{heading}\u201d)" if heading else ""
    return f"cell {index}{under}"


def mark_places(nb: NotebookNode) -> None:
    """Note on each code cell where the student sees it, before the grader adds, removes
    or swaps cells: its position in their file (from 1), the nearest heading above it,
    and the exercise whose solution it holds; messages about a cell use these. A cell
    already marked keeps its mark (the clean room's cells carry the student's places)."""
    heading = ""
    for position, cell in enumerate(nb.cells, start=1):
        if cell.get("cell_type") == "markdown":
            titles = [ln.lstrip("#").strip() for ln in cell.source.splitlines()
                      if ln.startswith("#")]  # fmt: skip
            heading = titles[-1] if titles else heading
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        exercise = meta.get("grade_id") if meta.get("solution") else None
        cell.metadata.setdefault(PLACE_KEY, {"position": position, "heading": heading,
                                             "exercise": exercise})  # fmt: skip


def _read_own_file(path: Path) -> bytes:
    """The bytes of the regular file at `path`, read through one descriptor opened without
    following a link, so that what was checked is what is read. A link is refused: a
    symbolic one (to a classmate's notebook, the instructor's solution, a system file) and a
    hard one (the same file under another name) are not the student's own notebook."""
    if path.is_symlink():
        raise NotebookError(
            f"{path} is a symbolic link, not a notebook: submit the notebook file itself"
        )
    try:
        fd = os.open(
            path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        )
    except FileNotFoundError:
        raise NotebookError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise NotebookError(f"{path} is a folder, not a notebook (.ipynb file)") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # it became a link after the check above
            raise NotebookError(f"{path} is a symbolic link, not a notebook: submit the "
                                "notebook file itself") from None  # fmt: skip
        raise NotebookError(f"{path} cannot be read: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        if stat.S_ISDIR(info.st_mode):
            raise NotebookError(f"{path} is a folder, not a notebook (.ipynb file)")
        raise NotebookError(f"{path} is not a regular file: submit the notebook file itself")
    with os.fdopen(fd, "rb") as f:
        if info.st_nlink > 1:
            raise NotebookError(
                f"{path} is a hard link (one file under {info.st_nlink} names), not a notebook "
                "of its own: submit a copy of your notebook"
            )
        if info.st_size == 0:
            raise NotebookError(f"{path} is empty: save the notebook in Jupyter and submit again")
        if info.st_size > MAX_NOTEBOOK_BYTES:
            raise NotebookError(
                f"{path} is {info.st_size / 2**20:.0f} MiB, more than the "
                f"{MAX_NOTEBOOK_BYTES // 2**20} MiB a notebook may be to be graded: clear the "
                "outputs (Kernel > Restart & Clear Output) and submit again"
            )
        return f.read(MAX_NOTEBOOK_BYTES + 1)


def notebook_digest(path: Path) -> str:
    """The sha256 of the notebook file's bytes, read as `load_notebook` reads them (never
    through a link); NotebookError where it would refuse them."""
    return hashlib.sha256(_read_own_file(Path(path))).hexdigest()


def _grade_ids(nb: NotebookNode) -> list[str]:
    return [
        c.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
        for c in nb.cells
        if c.get("cell_type") == "code"
    ]


def defined_names(source: str) -> set[str]:
    """Top-level function and class names a cell defines (empty if it does not parse,
    e.g. because of IPython magics)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}


def detect_assignment(nb: NotebookNode, path: Path | None = None) -> str:
    """Which assignment a notebook is: by its nbgrader cells, else by the names it
    defines, else by its file name."""
    ids = set(_grade_ids(nb))
    scores = {a: len(ids & {e.cell for e in EXERCISES if e.assignment == a}) for a in ASSIGNMENTS}
    best = max(scores.values())
    if best and list(scores.values()).count(best) == 1:
        return max(scores, key=scores.__getitem__)
    names = set().union(*(defined_names(c.source) for c in nb.cells if c.cell_type == "code"))
    targets = {
        a: {c.target for e in EXERCISES if e.assignment == a for c in e.checks} for a in ASSIGNMENTS
    }
    scores = {a: len(names & t) for a, t in targets.items()}
    best = max(scores.values())
    if best and list(scores.values()).count(best) == 1:
        return max(scores, key=scores.__getitem__)
    if path is not None and Path(path).stem in ASSIGNMENTS:
        return Path(path).stem
    raise NotebookError(
        f"cannot tell which assignment {path or 'this notebook'} is "
        f"({', '.join(ASSIGNMENTS)}): pass --assignment NAME"
    )


def cell_shas(nb: NotebookNode) -> dict[str, str]:
    """grade_id -> hash of that cell's source, as the kernel will see it run."""
    from ..kernel.recording import cell_sha

    shas: dict[str, str] = {}
    for c in nb.cells:
        gid = c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if c.get("cell_type") == "code" and gid:
            shas.setdefault(gid, cell_sha(c.source))
    return shas


def replace_function(
    nb: NotebookNode, name: str, source: str, *, cell: str | None = None
) -> NotebookNode:
    """A copy of `nb` in which the top-level `def`/`class` `name` (in the cell with
    grade_id `cell`, when given; else the last cell defining it) is replaced by `source`,
    leaving the rest of its cell as it was."""
    out = nbformat.from_dict(nb)
    found = None
    for c in out.cells:
        gid = c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if c.get("cell_type") != "code" or (cell is not None and gid != cell):
            continue
        try:
            tree = ast.parse(c.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == name:
                found = (c, node)
    if found is None:
        raise KeyError(f"no definition of {name!r}" + (f" in cell {cell!r}" if cell else ""))
    c, node = found
    lines = c.source.splitlines()
    start = node.lineno - 1 - len(node.decorator_list)
    c.source = "\n".join([*lines[:start], source.strip("\n"), *lines[node.end_lineno :]])
    return out
