"""The keeper: the process that stays outside the sandbox as the parent of the notebook's
process, and holds limits over the whole tree of processes the notebook starts.

Per-process limits (rlimits) do not bind a tree: four children of 400 MB each, or one
shared mapping of 1 GB, were all held under a 512 MB `RLIMIT_DATA`. No cgroup is
delegated on the machines this grader runs on (see DESIGN.md), so the keeper counts
instead: every few tenths of a second it sums the proportional memory (anonymous and
shared) of every process below it, and the notebook's tmpfs folders where it has them,
and counts its processes; past the policy's limits it kills the tree and leaves a note in
the sockets folder saying why, which the grader reads (`stop_note`). Orphans cannot leave
the tree: the keeper is their subreaper (or PID 1 of the notebook's PID namespace is).
When the notebook's process exits, whatever it left running is killed.

Standard library only: it runs in the sandbox's launcher and in a fork server's child.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from .system import libc

NOTE = "stopped-by-keeper"  # in the sockets folder: why the keeper stopped the notebook
EVERY = 0.2  # seconds between counts
PR_SET_CHILD_SUBREAPER = 36


def stop_note(sockets: str | Path, name: str = NOTE) -> str | None:
    """Why the keeper stopped the notebook whose sockets folder is `sockets`, if it did (or,
    with `name` layers.REFUSED, why its sandbox could not be set up)."""
    try:
        return (Path(sockets) / name).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None


def become_subreaper() -> None:
    libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def open_proc() -> int:
    """The host's /proc, held open: the keeper in the namespaces shares the notebook's
    mount namespace, whose root and /proc change under it."""
    return os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _read(proc: int, path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
    try:
        return os.read(fd, 1 << 16)
    finally:
        os.close(fd)


def descendants(proc: int, root: int) -> list[int]:
    """Every process below `root` (by parent links, read from /proc, the `proc` folder)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            ppid = int(_read(proc, f"{name}/stat").rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def memory_kb(proc: int, pid: int) -> int:
    """The memory `pid` holds, in kB: its proportional share of anonymous and shared
    pages (what a fork server's children share is split among them), else its resident
    anonymous and shared memory."""
    for path, fields in ((f"{pid}/smaps_rollup", (b"Pss_Anon:", b"Pss_Shmem:")),
                         (f"{pid}/status", (b"RssAnon:", b"RssShmem:"))):  # fmt: skip
        try:
            lines = [ln for ln in _read(proc, path).splitlines() if ln.startswith(fields)]
        except OSError:
            continue
        if lines:
            return sum(int(ln.split()[1]) for ln in lines)
    return 0


def tmpfs_kb(proc: int, pid: int, folders: list[str], size_mb: int) -> int:
    """What the notebook's own tmpfs folders (seen through process `pid`'s root) hold:
    those of `size_mb`, the sandbox's size (until the notebook's root is built, the same
    paths are the host's)."""
    used = 0
    for folder in folders:
        with contextlib.suppress(OSError):
            fd = os.open(f"{pid}/root{folder}", os.O_RDONLY | os.O_DIRECTORY, dir_fd=proc)
            try:
                st = os.fstatvfs(fd)
            finally:
                os.close(fd)
            if st.f_blocks * st.f_frsize == size_mb << 20:
                used += (st.f_blocks - st.f_bfree) * st.f_frsize // 1024
    return used


def keep(child: int, p: dict, proc: int, tmpfs: list[str] | None = None) -> int:
    """In the keeper (this process, the parent of `child`): wait for `child`, holding the
    policy `p`'s memory and process limits over everything below this process (`proc`:
    the host's /proc, `open_proc`); return the exit status to leave with. An interrupt
    reaches the notebook through the process group; the keeper ignores it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_kb = (p.get("memory_mb") or 0) * 1024
    most = p.get("processes") or 0
    me = os.getpid()
    status = None
    while status is None:
        status = _reap(child)
        if status is not None:
            break
        tree = descendants(proc, me)
        why = None
        if most and len(tree) > most:
            why = f"it started more than {most} processes"
        elif limit_kb:
            held = sum(memory_kb(proc, pid) for pid in tree)
            if tmpfs:
                held += tmpfs_kb(proc, child, tmpfs, p["scratch_mb"])
            if held > limit_kb:
                why = (f"its processes together held {held // 1024} MB, past the limit of "
                       f"{limit_kb // 1024} MB")  # fmt: skip
        if why:
            _note(p["sockets"], why)
            _kill(tree)
            _reap_all(proc)
            return 137
        time.sleep(EVERY)
    _kill(descendants(proc, me))  # what the notebook left running
    _reap_all(proc)
    return status


def _reap(child: int) -> int | None:
    """Reap every exited process below; the status of `child` once it has exited."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return 1
        except InterruptedError:
            continue
        if pid == 0:
            return None
        if pid == child:
            return os.waitstatus_to_exitcode(status)


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _reap_all(proc: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            _kill(descendants(proc, os.getpid()))
            time.sleep(0.01)


def _note(sockets: str, why: str) -> None:
    with contextlib.suppress(OSError):
        Path(sockets, NOTE).write_text(why, encoding="utf-8")
