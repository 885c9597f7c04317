"""The launcher of a plain kernel (no fork server): enter the sandbox that
$AUTOGRADE_SANDBOX describes, then exec the kernel.

    python -I -S launcher.py -- KERNEL_ARGV...

Run as a file, in isolated mode and without site-packages, so that it starts in
milliseconds: the sandbox needs the standard library only.
"""

from __future__ import annotations

import json
import os
import sys

LAUNCHER = os.path.abspath(__file__)  # the file a plain kernel's command runs


def main(argv: list[str]) -> int:
    """Launcher: `launcher.py -- KERNEL_ARGV...` with the policy in $AUTOGRADE_SANDBOX."""
    from .layers import SandboxError, enter
    from .rules import ENV

    if len(argv) < 2 or argv[0] != "--":
        print("usage: launcher.py -- KERNEL_ARGV...", file=sys.stderr)
        return 2
    raw = os.environ.get(ENV)
    if raw:
        try:
            enter(json.loads(raw))
        except SandboxError as exc:
            print(f"autograde: {exc}", file=sys.stderr)
            return 3
    os.execv(argv[1], argv[1:])
    return 1  # not reached


if __name__ == "__main__":
    # Isolated mode puts neither this folder nor site-packages on the path: the folder
    # that holds this very copy of the grader does, so that its sandbox is the one used.
    # (backprop_lab/run/sandbox/launcher.py: four folders up)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(LAUNCHER)))))
    from backprop_lab.run.sandbox.launcher import main as launch

    sys.exit(launch(sys.argv[1:]))
