"""Links are not followed: a submission that is a symbolic or hard link (to a classmate's
notebook, the instructor's solution, a system file), or a student folder that is one or
holds one leading elsewhere, is ungradeable with the reason, and the class goes on."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from notebook_tools import SOLUTION, STUB

from backprop_lab.gradebook.batch import grade_submissions
from backprop_lab.gradebook.submissions import find_submissions
from backprop_lab.plan.notebook import NotebookError, load_notebook


def _copy(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dest)
    return dest


def test_a_link_is_not_read_as_a_notebook(tmp_path: Path) -> None:
    mine = _copy(SOLUTION["backprop"], tmp_path / "mine.ipynb")
    assert load_notebook(mine)[0].cells  # the file itself is read
    (tmp_path / "soft.ipynb").symlink_to(mine)
    with pytest.raises(NotebookError, match="is a symbolic link, not a notebook"):
        load_notebook(tmp_path / "soft.ipynb")
    os.link(mine, tmp_path / "hard.ipynb")
    with pytest.raises(NotebookError, match=r"is a hard link \(one file under 2 names\)"):
        load_notebook(tmp_path / "hard.ipynb")
    os.mkfifo(tmp_path / "fifo.ipynb")  # opening it must not wait for a writer
    with pytest.raises(NotebookError, match="is not a regular file"):
        load_notebook(tmp_path / "fifo.ipynb")


def test_linked_folders_and_links_that_leave_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "class"
    _copy(SOLUTION["backprop"], root / "alice" / "backprop.ipynb")
    (root / "mallory").symlink_to(root / "alice")  # a classmate's folder
    (root / "bob").mkdir()
    (root / "bob" / "backprop.ipynb").symlink_to(SOLUTION["backprop"])  # the instructor's
    _copy(STUB["backprop"], root / "carol" / "backprop.ipynb")
    (root / "carol" / "answers").symlink_to(root / "alice")  # a folder link inside
    _copy(STUB["backprop"], root / "dave" / "backprop.ipynb")
    (root / "dave" / "notes.txt").symlink_to("/etc/hostname")  # leads out
    _copy(STUB["backprop"], root / "erin" / "backprop.ipynb")
    (root / "erin" / "data.txt").write_text("x")
    (root / "erin" / "same.txt").symlink_to("data.txt")  # stays inside: harmless
    found = {s.student: s for s in find_submissions([root])}
    assert found["alice"].problem is None and found["erin"].problem is None
    assert found["mallory"].problem == (
        "not graded: the folder mallory is a symbolic link: hand in the folder itself"
    )
    assert found["bob"].problem == (
        "not graded: backprop.ipynb is a symbolic link: hand in the notebook itself"
    )
    assert found["carol"].problem == (
        "not graded: answers is a symbolic link: hand in the notebook itself"
    )
    assert found["dave"].problem == (
        "not graded: notes.txt is a symbolic link that leads out of the folder: remove it"
    )
    assert "/etc" not in found["dave"].problem and "alice" not in found["carol"].problem


@pytest.mark.slow
def test_a_class_with_links_is_graded_and_the_links_are_not(tmp_path: Path) -> None:
    root = tmp_path / "submitted"
    _copy(SOLUTION["backprop"], root / "alice" / "backprop" / "backprop.ipynb")
    (root / "mallory").symlink_to(root / "alice")
    (root / "bob" / "backprop").mkdir(parents=True)
    (root / "bob" / "backprop" / "backprop.ipynb").symlink_to(SOLUTION["backprop"])
    (root / "carol" / "backprop").mkdir(parents=True)
    os.link(root / "alice" / "backprop" / "backprop.ipynb",
            root / "carol" / "backprop" / "backprop.ipynb")  # fmt: skip
    _copy(STUB["backprop"], root / "dave" / "backprop" / "backprop.ipynb")
    summary = grade_submissions([root], tmp_path / "out", workers=1, progress=False,
                                feedback=False)  # fmt: skip
    got = {r["extra_data"]["student"]: r for r in summary.records}
    # alice's own file is hard-linked from carol's folder: both names are refused
    assert {s: (r["score"], r["extra_data"]["status"]) for s, r in got.items()} == {
        "alice": (0, "ungradeable"), "bob": (0, "ungradeable"), "carol": (0, "ungradeable"),
        "dave": (0, "graded"), "mallory": (0, "ungradeable"),
    }  # fmt: skip
    assert "hard link" in got["carol"]["output"] and "hard link" in got["alice"]["output"]
    assert "symbolic link" in got["bob"]["output"]
    assert "the folder mallory is a symbolic link" in got["mallory"]["output"]


@pytest.mark.slow
def test_check_of_a_link_says_so(tmp_path: Path) -> None:
    (tmp_path / "backprop.ipynb").symlink_to(SOLUTION["backprop"])
    script = Path(sys.executable).parent / "autograde"
    done = subprocess.run([str(script), "check", str(tmp_path / "backprop.ipynb")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is a symbolic link, not a notebook: submit the notebook file itself" in (
        done.stdout + done.stderr
    )
