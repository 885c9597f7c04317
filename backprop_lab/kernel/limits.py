"""The limits a notebook runs under inside its kernel: file writes and signals confined,
memory and printing capped, left-over debuggers skipped, and the alarms that stop a cell
or a graded call that runs too long. Standard library only (nbgrader's kernels call its
`neutralise_debuggers`, through the kernel package).
"""

import json
import os
import sys

from .state import CallTimeout, CellTimeout, _State

_WRITE_EVENTS = {"os.remove", "os.rmdir", "os.rename", "shutil.rmtree", "shutil.move",
                 "os.truncate", "os.chmod", "os.mkdir"}  # fmt: skip


def _confine_writes():
    """Python-level writes, deletions and renames outside the notebook's folder, the
    temporary directory and the usual caches raise PermissionError. An audit hook: it
    cannot be removed once added, and it sees `open` and `os` calls from any library."""
    import tempfile

    home = os.path.expanduser("~")
    roots = tuple(
        os.path.realpath(p) + os.sep
        for p in (
            os.getcwd(),
            tempfile.gettempdir(),
            os.path.join(home, ".cache"),
            os.path.join(home, ".ipython"),
            os.path.join(home, ".config"),
            os.path.join(home, ".local", "share", "jupyter"),
            "/dev",
        )
    )

    def allowed(path):
        if isinstance(path, int):  # an open file descriptor: already allowed once
            return True
        real = os.path.realpath(os.fsdecode(path)) + os.sep
        return real.startswith(roots)

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (mode is not None and any(c in mode for c in "wax+")) or (
                mode is None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            )
            if writing and path is not None and not allowed(path):
                raise PermissionError(
                    f"the autograder confines file writes to the notebook's folder: {path}"
                )
        elif event in _WRITE_EVENTS and args and not allowed(args[0]):
            raise PermissionError(
                f"the autograder confines file changes to the notebook's folder: {args[0]}"
            )

    sys.addaudithook(hook)


def _confine_signals():
    """`os.kill` and `os.killpg` reach only this kernel and the processes it started:
    a notebook that kills its parent or every process of the user would take the grader
    (and other students' grading) down with it."""

    me = os.getpid()

    def descends_from_me(pid):
        try:
            while pid > 1:
                if pid == me:
                    return True
                with open(f"/proc/{pid}/stat", "rb") as stat:
                    pid = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        return False

    def hook(event, args):
        if event not in ("os.kill", "os.killpg") or len(args) < 2 or args[1] == 0:
            return  # signal 0 only asks whether a process exists
        target = args[0]
        if event == "os.kill" and target < -1:
            target = -target  # a process group
        if (event == "os.kill" and target == 0) or target == os.getpgrp():
            return  # this kernel's own process group
        if target > 1 and (not os.path.isdir("/proc") or descends_from_me(target)):
            return
        raise PermissionError(
            f"the autograder lets a notebook send signals only to itself and the processes "
            f"it started, not to process {args[0]}"
        )

    sys.addaudithook(hook)


def _limit_memory(megabytes):
    """A broadcast that asks for many GB then fails in the student's call, with torch's
    "can't allocate memory", instead of taking the machine down with it."""
    import resource

    limit = int(megabytes) * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


class _Budget:
    written = 0
    limit = 0
    noted = False


def _cap_output(limit):
    """Printing and displays are capped per cell: a loop that prints a gigabyte would
    otherwise fill the grader's memory with the notebook's outputs. IPython puts the
    streams' `write` back after each cell, so the cap is re-installed before every cell."""
    from IPython import get_ipython

    _Budget.limit = limit
    _install_cap()
    pub = get_ipython().display_pub
    pub.publish = _capped_display(pub.publish)


def _install_cap():
    if not _Budget.limit:
        return
    for stream in (sys.stdout, sys.stderr):
        if not getattr(stream.write, "_autograde_cap", False):
            stream.write = _capped(stream.write)


def _capped_display(publish):
    def capped(data, *args, **kwargs):
        if _Budget.limit:
            size = sum(len(v) if isinstance(v, str | bytes) else len(json.dumps(v, default=str))
                       for v in (data or {}).values())  # fmt: skip
            if _Budget.written + size > _Budget.limit:
                _Budget.written = _Budget.limit
                return None
            _Budget.written += size
        return publish(data, *args, **kwargs)

    capped._autograde_cap = True
    capped._autograde_original = publish
    return capped


def _capped(write):
    def capped(text):
        if _Budget.written >= _Budget.limit:
            if not _Budget.noted:
                _Budget.noted = True
                write(f"\n[autograder: output beyond {_Budget.limit // 1024} kB not kept]\n")
            return len(text)
        _Budget.written += len(text)
        return write(text)

    capped._autograde_cap = True
    return capped


def _skip_debugger(*args, **kwargs):
    _State.debugger_calls += 1


def neutralise_debuggers():
    """A left-over `breakpoint()`, `pdb.set_trace()` or `ipdb.set_trace()` would wait for
    a person at a prompt that no one sees: each becomes a no-op that is counted, so the
    report can tell the student to remove them. nbgrader's kernels run this too, from
    nbgrader_config.py, so a left-over debugger costs nothing there either."""
    import pdb
    import types

    os.environ["PYTHONBREAKPOINT"] = "0"
    sys.breakpointhook = _skip_debugger
    for module in (pdb,):
        module.set_trace = _skip_debugger
        module.post_mortem = _skip_debugger
        module.pm = _skip_debugger
    pdb.Pdb.set_trace = _skip_debugger
    fake_ipdb = types.ModuleType("ipdb")
    for name in ("set_trace", "post_mortem", "pm", "sset_trace", "launch_ipdb_on_exception"):
        setattr(fake_ipdb, name, _skip_debugger)
    sys.modules["ipdb"] = fake_ipdb
    try:
        from IPython.core import debugger

        debugger.set_trace = _skip_debugger
        debugger.Pdb.set_trace = _skip_debugger
    except ImportError:
        pass


def _on_cell_alarm(signum, frame):
    raise CellTimeout(
        f"this cell ran longer than {_State.cell_timeout:g} s and was stopped by the autograder"
    )


def _on_alarm(signum, frame):
    raise CallTimeout()
