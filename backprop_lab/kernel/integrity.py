"""Tamper detection: what the kernel had before the notebook ran (torch's functions, its
threads, signal handlers and IPython hooks), and, before the grader's calls, what the
notebook changed, put back where it can be and reported, never scored.
"""

import contextlib
import json
import os
import signal
import sys

import torch

from .state import GRADER_FILE, _State

# The project's one package, and what of it a notebook may import: the course's data (and
# the package's `__init__`, which importing it runs). Anything else of it in a notebook's
# modules is the grader's code or the reference's answers.
PACKAGE = "backprop_lab"
OPEN_TO_NOTEBOOKS = "coursedata"

# What grading relies on inside the kernel: torch's comparisons and autograd, and the
# functions the harvest writes its results with.
_WATCHED = ("torch.allclose", "torch.isclose", "torch.equal", "torch.testing.assert_close",
            "torch.Tensor.__eq__", "torch.Tensor.backward", "torch.autograd.backward",
            "torch.autograd.grad", "torch.save", "torch.load", "json.dump",
            "json.dumps")  # fmt: skip


def _resolve(dotted):
    """(owner, attribute name) of a dotted name such as `torch.Tensor.backward`."""
    first, *path, last = dotted.split(".")
    owner = {"torch": torch, "json": json}[first]
    for part in path:
        owner = getattr(owner, part)
    return owner, last


def _torch_functions():
    return {d: getattr(*_resolve(d)) for d in _WATCHED}


def _integrity():
    """What the notebook did to the grading environment: reported, never scored. Torch
    is put back as it was, so the grader's calls run on the real functions."""

    notes = []
    for name, original in _State.originals.items():
        owner, attr = _resolve(name)
        if getattr(owner, attr) is not original:
            notes.append(f"the notebook replaced {name}")
            setattr(owner, attr, original)
    notes += [
        f"the notebook imported the grader's `{m}` package" for m in grader_modules(sys.modules)
    ]
    return notes


def grader_modules(names) -> list[str]:
    """The project's packages among module `names` that a notebook may not import, each
    as `backprop_lab.<subpackage>`."""
    found = set()
    for name in names:
        parts = name.split(".")
        if parts[0] == PACKAGE and len(parts) > 1 and parts[1] != OPEN_TO_NOTEBOOKS:
            found.add(".".join(parts[:2]))
    return sorted(found)


def _signals():
    return [s for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP)]


def _snapshot_hooks():
    import threading

    _State.threads = tuple(t.ident for t in threading.enumerate())
    _State.modules = tuple(sys.modules)
    _State.handlers = {int(s): signal.getsignal(s) for s in _signals()}
    from IPython import get_ipython

    _State.callbacks = {k: list(v) for k, v in get_ipython().events.callbacks.items()}


_INFRASTRUCTURE = ("ipykernel", "IPython", "zmq", "jupyter_client", "tornado", "matplotlib",
                   "torch")  # fmt: skip


def _infrastructure(thread):
    """A thread the kernel or a library started for itself (an output watcher, zmq's
    garbage collector), not one the notebook's own code started."""
    for owner in (type(thread), getattr(thread, "_target", None)):
        module = getattr(owner, "__module__", None) or ""
        if module.split(".")[0] in _INFRASTRUCTURE:
            return True
    return False


def _disarm_hooks():
    """Before the grader's calls: nothing the notebook registered may run during them or
    after them (an IPython event, a trace function, an atexit callback, a signal
    handler); each is removed, and reported (atexit callbacks only removed: libraries
    register them too). Threads cannot be stopped from here: they are reported, and the
    grader accepts one results message only."""
    import atexit
    import threading

    from IPython import get_ipython

    notes = []
    events = get_ipython().events
    for name, callbacks in events.callbacks.items():
        theirs = [
            c
            for c in callbacks
            if c not in _State.callbacks.get(name, ())
            and getattr(getattr(c, "__code__", None), "co_filename", None) != GRADER_FILE
        ]
        if theirs:
            notes.append(f"the notebook registered {len(theirs)} IPython {name} hook(s)")
        callbacks.clear()  # the grader's own too: no cell runs after this one
    if sys.gettrace() is not None or sys.getprofile() is not None:
        notes.append("the notebook installed a trace or profile function")
    sys.settrace(None)
    sys.setprofile(None)
    threading.settrace(None)
    threading.setprofile(None)
    atexit._clear()  # libraries register some too: cleared, not reported
    changed = []
    for sig in _signals():
        before = _State.handlers.get(int(sig), signal.SIG_DFL)
        if sig == signal.SIGALRM or signal.getsignal(sig) is before:
            continue
        changed.append(sig.name)
        with contextlib.suppress(OSError, TypeError, ValueError):
            signal.signal(sig, before if before is not None else signal.SIG_DFL)
    if changed:
        notes.append(f"the notebook installed signal handlers ({', '.join(changed)})")
    extra = [t for t in threading.enumerate()
             if t.ident not in _State.threads and not _infrastructure(t)]  # fmt: skip
    if extra:
        notes.append(f"the notebook left {len(extra)} thread(s) running while it was graded")
    return notes


def _loaded_from(folders):
    """The notebook's modules whose files lie in `folders` (the project's package), whatever
    name they were imported under or removed as; not the package's `__init__` or its
    course data, which notebooks import."""
    found, before = set(), set(_State.modules)
    folders = [f.rstrip(os.sep) for f in folders]
    open_files = [os.path.join(f, "__init__.py") for f in folders]
    open_folders = [os.path.join(f, OPEN_TO_NOTEBOOKS) + os.sep for f in folders]
    for name, module in list(sys.modules.items()):
        if name in before:
            continue
        path = getattr(module, "__file__", None)
        if not isinstance(path, str):
            continue
        path = os.path.realpath(path)
        if path in open_files or any(path.startswith(f) for f in open_folders):
            continue
        if any(path.startswith(f + os.sep) for f in folders):
            parts = name.split(".")
            found.add(".".join(parts[:2]) if parts[0] == PACKAGE else parts[0])
    return sorted(found)
