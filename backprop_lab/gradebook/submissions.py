"""Find the submissions under the paths an instructor gives `autograde grade`.

Layouts understood, the ones courses really hand over:
- a notebook: one submission; the student is the file's stem (`alice.ipynb`), or its
  folder's name when the stem is an assignment name (`alice/backprop.ipynb`);
- nbgrader's course root or its `submitted/` folder: `submitted/<student>/<assignment>/*.ipynb`;
- a folder of per-student folders: `<student>/**/*.ipynb` (Classroom clones, LMS exports);
- a folder of notebooks: each notebook is one student's (`alice.ipynb`, `bob.ipynb`).

A student folder with no notebook in it is still a submission, one that cannot be graded:
it gets a row in grades.csv saying so, rather than silently vanishing from the gradebook.
When the folder holds other files (a PDF printout, an HTML export, a zip), the row names
them and says what to upload instead: the student did hand something in.

A student's name is whatever their folder or file is called. It is kept as it is for the
gradebook; their results go in a folder named from it by `safe_name`, which any name
(`grades.csv`, `../x`, `CON`, a line break, 300 characters) gets, distinct in the batch.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from ..course import ASSIGNMENTS

__all__ = [
    "Submission",
    "files_in",
    "find_submissions",
    "notebooks_in",
    "safe_name",
    "what_was_found",
]

# Jupyter's autosaves and macOS/zip debris hold copies, not submissions.
_IGNORED_PARTS = {".ipynb_checkpoints", "__MACOSX", ".git", "feedback", "autograded"}


@dataclass(frozen=True)
class Submission:
    student: str
    notebook: Path | None  # None: the student's folder holds no notebook
    # From nbgrader's layout, where the folder names the assignment; otherwise None and
    # the notebook's own cells say which it is (a file's name is the weakest evidence).
    assignment: str | None = None
    key: str = ""  # unique within a batch: where its results go under --out
    refused: str | None = None  # why it is not graded though a notebook is there
    # The student's own folder (nbgrader's submitted/<student>/<assignment>, a clone, an
    # LMS export's folder); None for a lone notebook. When it was handed in is read here.
    folder: Path | None = None
    found: tuple[str, ...] = ()  # with no notebook: the other files the folder holds

    @property
    def problem(self) -> str | None:
        if self.refused:
            return self.refused
        if self.notebook is None:
            if self.found:
                return f"no .ipynb notebook in the student's folder; {what_was_found(self.found)}"
            return "no .ipynb notebook in the student's folder: nothing was submitted"
        return None


# What students hand in instead of the notebook, and what each is: the message names the
# file, says what it is, and asks for the notebook itself.
_KINDS = {
    ".pdf": "a PDF",
    ".html": "a web page (an export of the notebook)",
    ".htm": "a web page (an export of the notebook)",
    ".py": "a Python script",
    ".zip": "a zip archive: unpack it",
    ".tar": "an archive: unpack it",
    ".gz": "a compressed archive: unpack it",
    ".docx": "a Word document",
    ".doc": "a Word document",
    ".md": "a Markdown file",
    ".txt": "a text file",
    ".json": "a JSON file",
    ".png": "a picture",
    ".jpg": "a picture",
    ".jpeg": "a picture",
}
_NAMED = 5  # files named in the message; the rest are counted
# Files every nbgrader submission or clone holds that are not the student's work.
_NOT_WORK = {"timestamp.txt", ".DS_Store", "Thumbs.db", "desktop.ini"}


def what_was_found(names: tuple[str, ...]) -> str:
    """A sentence naming the files a folder holds instead of a notebook, each with what it
    is, and what to upload: "found backprop.pdf (a PDF): upload the .ipynb notebook
    itself"."""
    shown = []
    for name in names[:_NAMED]:
        suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if name.lower().endswith(".ipynb.txt") or name.lower().endswith(".ipynb.json"):
            kind = "a notebook saved under another name: rename it to end in .ipynb"
        else:
            kind = _KINDS.get(suffix, "not a notebook")
        shown.append(f"{name} ({kind})")
    more = f" and {len(names) - _NAMED} more file(s)" if len(names) > _NAMED else ""
    return (
        f"found {', '.join(shown)}{more}: upload the .ipynb notebook itself (in Jupyter: "
        "File > Download)"
    )


def files_in(folder: Path) -> tuple[str, ...]:
    """The files under `folder` a student put there (paths relative to it): not autosaves,
    zip debris, version control or nbgrader's timestamp, never following a link."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_PARTS and d[:1] != ".")
        for name in sorted(filenames):
            if name in _NOT_WORK or name.startswith("."):
                continue
            out.append((Path(dirpath) / name).relative_to(folder).as_posix())
    return tuple(out)


# Names Windows keeps for devices, with any extension: a folder cannot have them there.
_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])(\..*)?", re.IGNORECASE)
MAX_NAME = 80  # characters of a folder name made from a student's name


def safe_name(text: str) -> str:
    """A folder name made from `text` that is safe on every file system and still
    readable: letters, digits and `_.@+-` only, never hidden, `.` or `..`, never a device
    name, at most MAX_NAME characters (a long name keeps its start and a hash of the rest,
    so two long names stay apart)."""
    slug = re.sub(r"[^A-Za-z0-9_.@+-]+", "_", text).strip("._") or "_"
    if len(slug) > MAX_NAME:
        digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        slug = f"{slug[: MAX_NAME - 14].rstrip('._')}__{digest}"
    return f"_{slug}" if _RESERVED.fullmatch(slug) else slug


def notebooks_in(folder: Path) -> list[Path]:
    """The notebooks under `folder` that a student handed in (not autosaves or zip debris)."""
    return sorted(
        p
        for p in folder.rglob("*.ipynb")
        if p.is_file()
        and not p.name.startswith("._")  # macOS resource forks from zip files
        and not (_IGNORED_PARTS & set(p.relative_to(folder).parts))
    )


def _link_in(folder: Path) -> str | None:
    """Why the student's `folder` cannot be graded because of a link, if it cannot: it is
    a symbolic link itself (to a classmate's folder, say), or it holds a notebook that is
    one, a linked folder, or a link that leads out of it. Links are never followed: what
    is graded is what the student handed in."""
    if folder.is_symlink():
        return f"the folder {folder.name} is a symbolic link: hand in the folder itself"
    inside = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(folder):  # does not follow links
        for name in (*dirnames, *filenames):
            p = Path(dirpath) / name
            if not p.is_symlink():
                continue
            shown = p.relative_to(folder).as_posix()
            if name.endswith(".ipynb") or p.is_dir():
                return f"{shown} is a symbolic link: hand in the notebook itself"
            if not p.resolve().is_relative_to(inside):
                return f"{shown} is a symbolic link that leads out of the folder: remove it"
    return None


def _from_student_folder(student: str, folder: Path, assignment: str | None) -> list[Submission]:
    link = _link_in(folder)
    if link is not None:
        return [Submission(student, None, assignment, refused=f"not graded: {link}")]
    found = notebooks_in(folder)
    if not found:
        return [Submission(student, None, assignment, folder=folder, found=files_in(folder))]
    return [Submission(student, nb, assignment, folder=folder) for nb in found]


def _nbgrader_submitted(submitted: Path) -> list[Submission]:
    subs = []
    for student in sorted(p for p in submitted.iterdir() if p.is_dir()):
        link = _link_in(student)
        if link is not None:
            subs.append(Submission(student.name, None, refused=f"not graded: {link}"))
            continue
        assignments = sorted(p for p in student.iterdir() if p.is_dir())
        if not assignments:
            subs.append(Submission(student.name, None, folder=student, found=files_in(student)))
        for a in assignments:
            subs += _from_student_folder(student.name, a, a.name if a.name in ASSIGNMENTS else None)
    return subs


def _from_path(path: Path) -> list[Submission]:
    if path.is_file():
        student = path.parent.name if path.stem in ASSIGNMENTS else path.stem
        return [Submission(student or path.stem, path)]
    if (path / "submitted").is_dir():
        return _nbgrader_submitted(path / "submitted")
    if path.name == "submitted":
        return _nbgrader_submitted(path)
    direct = sorted(p for p in path.glob("*.ipynb") if p.is_file() and not p.name.startswith("._"))
    subs = [Submission(p.stem, p) for p in direct]
    for folder in sorted(p for p in path.iterdir() if p.is_dir()):
        if folder.name in _IGNORED_PARTS or folder.name.startswith("."):
            continue
        subs += _from_student_folder(folder.name, folder, None)
    return subs


def _with_keys(subs: list[Submission]) -> list[Submission]:
    """Give each submission a distinct results folder: <student>/<assignment or stem>,
    with the notebook's path folded in where a student handed in two of the same name,
    then a number where names still meet (two names can make one safe name)."""
    used: set[str] = set()
    out = []
    for s in subs:
        leaf = s.assignment or (s.notebook.stem if s.notebook else "no-notebook")
        key = f"{safe_name(s.student)}/{safe_name(leaf)}"
        if key in used and s.notebook is not None:
            key = f"{key}__{safe_name(s.notebook.stem)}"
        first, n = key, 1
        while key in used:
            n += 1
            key = f"{first}__{n}"
        used.add(key)
        out.append(replace(s, key=key))
    return out


def find_submissions(paths: list[Path]) -> list[Submission]:
    """Every submission under `paths`, in a stable order, each with a unique key. The same
    notebook named twice (a folder and a file in it) is graded once."""
    subs, seen = [], set()
    for path in paths:
        for s in _from_path(Path(path)):
            ident = s.notebook.resolve() if s.notebook else (s.student, s.assignment)
            if ident in seen:
                continue
            seen.add(ident)
            subs.append(s)
    return _with_keys(subs)
