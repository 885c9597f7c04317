"""What a notebook's process imports, imported once in the process that forks it, and
whether a process that has imported it may still fork safely."""

from __future__ import annotations

import contextlib
import os
import sys

# What every notebook's process imports: IPython's shell, torch and numpy, the modules
# the grader's injected cells use, and the bundled data set the notebooks load; and, for
# Jupyter kernels, ipykernel and what it loads (jedi alone costs a third of a second).
PRELOAD = (
    "IPython.core.interactiveshell",
    "numpy",
    "torch",
    "difflib",
    "dis",
    "inspect",
    "hashlib",
    "resource",
    "pdb",
    "coursedata",
)
KERNEL_PRELOAD = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "IPython.core.completer",
    "jedi",
)


def preload(kernels: bool) -> None:
    import importlib

    for name in (*PRELOAD, *(KERNEL_PRELOAD if kernels else ())):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


# Threads this process had once it had imported what a notebook's process needs, before
# any torch operation (see `fork_safe`); None until then.
_THREADS_AFTER_IMPORTS: int | None = None
# Set by the first grading: from then on this process has made tensors of its own, and a
# thread count cannot prove that torch's pool has not started (a thread that was there
# when the baseline was taken can end, and the pool's worker then hides in its place).
_GRADED = False


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1 << 30


def fork_safe() -> bool:
    """Whether this process may fork a notebook's process itself. Torch's intra-op pool
    (OpenMP) starts threads on the first parallel operation, and a child forked after
    that hangs on its own first one; numpy's BLAS starts threads when imported, which are
    safe. So: only before this process's first grading (see `grading_begins`), and only a
    process that imports torch here, for the first time, and has no more threads than it
    had just after (pytest, or a program that used torch first, gets a fork server
    instead)."""
    global _THREADS_AFTER_IMPORTS
    if _GRADED:
        return False
    if _THREADS_AFTER_IMPORTS is None:
        if "torch" in sys.modules:
            return False  # imported before: it may have run parallel operations already
        preload(kernels=False)
        _THREADS_AFTER_IMPORTS = _thread_count()
    return _thread_count() <= _THREADS_AFTER_IMPORTS


def grading_begins(fork_here: bool) -> bool:
    """Called by every grading as it starts its notebook's process, whatever the engine:
    whether it may fork that process from this one (asked with `fork_here`; see
    `fork_safe`). True at most once per process: each grading makes its inputs and
    compares its results here, with torch."""
    global _GRADED
    safe = fork_here and fork_safe()
    _GRADED = True
    return safe
