"""Make docs/example-feedback.{html,png}: the feedback report of a backprop notebook with
two classic mistakes in `lin_grad` (w.g transposed, b.g averaged instead of summed),
screenshot in headless Chromium.

    python docs/make_example_report.py

Needs Debian's chromium (apt-get install chromium).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "docs"
EDITS = (
    ("w.g = inp.t() @ out.g", "w.g = out.g.t() @ inp"),
    ("b.g = out.g.sum(0)", "b.g = out.g.mean(0)"),
)


def main() -> int:
    nb = nbformat.read(ROOT / "solutions/backprop/backprop.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "lin_grad"]
    for old, new in EDITS:
        assert old in cell.source, f"{old!r} is no longer in lin_grad"
        cell.source = cell.source.replace(old, new)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "backprop.ipynb"
        nbformat.write(nb, path)
        page = HERE / "example-feedback.html"
        cmd = [
            sys.executable,
            "-m",
            "backprop_lab.verbs.cli",
            "check",
            str(path),
            "--report",
            str(page),
        ]
        subprocess.run(cmd, check=False, capture_output=True)
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
                 "--window-size=1200,3400", f"--screenshot={HERE / 'example-feedback.png'}",
                 page.as_uri()],
                check=True,
                capture_output=True,
            )  # fmt: skip
    print(f"wrote {page} and {HERE / 'example-feedback.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
