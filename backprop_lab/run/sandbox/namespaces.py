"""The first layer: Linux namespaces (user, mount, PID, network, IPC, UTS) and a new root.

The kernel is PID 1 of a PID namespace of its own, so it sees and can signal nothing
outside, and every process it starts dies with it. The network namespace has no interface
but the loopback. The file system is a new root on a tmpfs holding read-only binds of what
a notebook needs, a size-limited tmpfs at the notebook's folder and at /tmp, a fresh /proc
and a minimal /dev. Nothing else exists: no home folder, no repository, no other
submission, no output folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import signal
import sys
from typing import TYPE_CHECKING

from . import keeper
from .system import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    DEVICES,
    ETC,
    MNT_DETACH,
    MS_BIND,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    PR_CAPBSET_DROP,
    PR_SET_PDEATHSIG,
    SYSCALLS,
    SYSTEM,
    become_nobody,
    check,
    libc,
    mount,
    nobody_exists,
    syscall_number,
    unshare,
    write,
)

if TYPE_CHECKING:
    from .rules import Policy


ISOLATING = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS


def work() -> bool:
    """Whether this process can make the namespaces and mount in them: tried in a child."""
    if not sys.platform.startswith("linux") or platform.machine() not in SYSCALLS:
        return False
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _unshare()
            mount("none", "/", None, MS_REC | MS_PRIVATE)
            mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m")
            code = 0
        except BaseException:
            pass
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _unshare() -> None:
    """New namespaces for this process. A grader run as root makes them with its own
    privilege and no user namespace (its notebook then becomes nobody: `_become_nobody`):
    a user namespace made by root maps the notebook to host root, who owns most of what it
    can see. Anyone else makes a user namespace where the notebook keeps its own uid."""
    if os.geteuid() == 0:
        unshare(ISOLATING)
    else:
        map_ids(*unshare(CLONE_NEWUSER | ISOLATING))


def map_ids(uid: int, gid: int) -> None:
    write("/proc/self/uid_map", f"{uid} {uid} 1\n")
    with contextlib.suppress(FileNotFoundError):
        write("/proc/self/setgroups", "deny")
    write("/proc/self/gid_map", f"{gid} {gid} 1\n")


def enter(p: Policy, guarded: bool) -> None:
    """Put this process in namespaces of its own and under the new root. Forks: the
    parent stays outside, waits for the child and exits with its status (never returns);
    the child returns as PID 1 of the new PID namespace. `guarded`: Landlock will keep the
    notebook from writing outside its folders (and /proc/sys)."""
    as_root = os.geteuid() == 0
    proc = keeper.open_proc()
    _unshare()
    pid = os.fork()
    if pid:
        tmpfs = ["/tmp", "/dev/shm", p["scratch"]]
        os._exit(keeper.keep(pid, p, proc, tmpfs))
    os.close(proc)
    check(libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    root = p["sockets"] + "/root"
    os.makedirs(root, exist_ok=True)
    _new_root(p, root)
    _loopback_up()
    # RLIMIT_NPROC does not bind a grader run as root (uid 0 outside): the PID
    # namespace's own pid_max does (Linux 6.14+; older kernels keep the rlimit).
    with contextlib.suppress(OSError):
        write("/proc/sys/kernel/pid_max", str(max(p["processes"] + 1, 301)))
    if as_root:
        _become_nobody(p["sockets"], guarded, [*p["read"], *SYSTEM])


def _private(paths: list[str]) -> list[str]:
    """The bound folders nobody could not enter or read: in the new root only their own
    rights count (the folders above them are the new root's)."""
    found = []
    for path in paths:
        with contextlib.suppress(OSError):
            mode = os.stat(path).st_mode
            wanted = 0o005 if os.path.isdir(path) else 0o004
            if mode & wanted != wanted:
                found.append(path)
    return found


def _become_nobody(sockets: str, guarded: bool, read: list[str]) -> None:
    """Drop a root grader's notebook to nobody, with no supplementary group and no
    capability: the namespaces' mounts were made with root's privilege, and nobody cannot
    undo them. Its sockets folder (a kernel's connection file and sockets) becomes
    nobody's, since the kernel writes there. Where this user namespace has no nobody (a
    rootless container's root), or nobody could not read a folder the notebook needs (a
    venv of mode 0700), it stays uid 0 without a capability if Landlock guards it, and is
    refused otherwise (uid 0 may write /proc/sys without any capability)."""
    if not nobody_exists():
        if guarded:
            return
        raise OSError(errno.EPERM, "the grader runs as root in a user namespace with no "
                      "nobody (65534) and without Landlock: notebooks cannot run as anyone "
                      "but root here; grade as an ordinary user, or map 65534")  # fmt: skip
    private = _private(read)
    if private:  # a Python environment only root may read (a folder of mode 0700)
        if guarded:
            return
        raise OSError(errno.EPERM, f"the grader runs as root and nobody cannot read "
                      f"{private[0]}, without Landlock to guard root's notebook instead: "
                      "make the Python environment readable by every user")  # fmt: skip
    own = []
    for folder, _, files in os.walk(sockets):
        if os.path.basename(folder) == "root" and folder != sockets:
            continue
        own += [folder, *(os.path.join(folder, f) for f in files)]
    drop_capabilities(bounding_only=True)
    become_nobody(own)


def _loopback_up() -> None:
    """Bring up the namespace's own loopback: ipykernel's output pipe for subprocesses
    binds 127.0.0.1, which inside this namespace reaches nothing but the kernel itself."""
    import fcntl
    import socket
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack(
            "16sH", fcntl.ioctl(s, siocgifflags, struct.pack("16sH14x", b"lo", 0))[:18]
        )[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


def _locked_flags(path: str) -> int:
    """The flags of the mount `path` is on that a bind mount in a user namespace must keep."""
    f = os.statvfs(path).f_flag
    flags = 0
    for st, ms in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
                   (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME),
                   (os.ST_RELATIME, MS_RELATIME)):  # fmt: skip
        if f & st:
            flags |= ms
    return flags


def _mkdirs_for(target: str, is_dir: bool) -> None:
    os.makedirs(target if is_dir else os.path.dirname(target), exist_ok=True)
    if not is_dir and not os.path.exists(target):
        open(target, "a").close()


def _bind(root: str, src: str, *, writable: bool = False, recursive: bool = True) -> None:
    """Bind `src` at the same path under `root`, read-only unless `writable`. Symbolic
    links (a merged /usr's /bin -> usr/bin) are recreated as links."""
    dest = root + src
    if os.path.islink(src) and os.path.dirname(src) == "/":
        with contextlib.suppress(FileExistsError):
            os.symlink(os.readlink(src), dest)
        return
    real = os.path.realpath(src)
    if not os.path.exists(real):
        return
    _mkdirs_for(dest, os.path.isdir(real))
    mount(real, dest, None, MS_BIND | (MS_REC if recursive else 0))
    if not writable:
        mount(None, dest, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _locked_flags(real))


def _tmpfs(target: str, megabytes: int, mode: str = "0755", *, noexec: bool = False) -> None:
    """A tmpfs at `target`; `noexec` for the ones a notebook writes: what it wrote is data,
    never a program to run."""
    os.makedirs(target, exist_ok=True)
    flags = MS_NOSUID | MS_NODEV | (MS_NOEXEC if noexec else 0)
    mount("tmpfs", target, "tmpfs", flags, f"size={int(megabytes)}m,mode={mode}")


def _new_root(p: Policy, root: str) -> None:
    """Build the kernel's view of the file system under `root` and make it `/`."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    _tmpfs(root, 16)
    # /tmp first: the scratch and sockets folders usually live under it, and must not be
    # hidden by it.
    _tmpfs(root + "/tmp", p["scratch_mb"], "1777", noexec=True)
    for path in SYSTEM:
        if os.path.lexists(path):
            _bind(root, path)
    for name in ETC:
        if os.path.exists("/etc/" + name):
            _bind(root, "/etc/" + name)
    for path in p["read"]:
        _bind(root, path)
    # not recursive: the new root itself is mounted inside the sockets folder
    _bind(root, p["sockets"], writable=True, recursive=False)
    _tmpfs(root + p["scratch"], p["scratch_mb"], "0777", noexec=True)
    os.makedirs(root + "/proc", exist_ok=True)
    mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _tmpfs(root + "/dev", 1)
    for name in DEVICES:
        if os.path.exists("/dev/" + name):
            _mkdirs_for(root + "/dev/" + name, False)
            mount("/dev/" + name, root + "/dev/" + name, None, MS_BIND)
    for dev in p.get("devices", []):  # a GPU's device files, when grading on CUDA
        if os.path.exists(dev):
            _mkdirs_for(root + dev, os.path.isdir(dev))
            mount(dev, root + dev, None, MS_BIND | MS_REC)
    _tmpfs(root + "/dev/shm", p["scratch_mb"], "1777", noexec=True)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):  # fmt: skip
        os.symlink(target, root + "/dev/" + name)
    # pivot_root(".", "."): the old root ends up under the new one, then is detached whole.
    os.chdir(root)
    check(libc().syscall(syscall_number("pivot_root"), b".", b"."), "pivot_root")
    check(libc().umount2(b".", MNT_DETACH), "umount old root")
    os.chdir("/")
    mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def drop_capabilities(bounding_only: bool = False) -> None:
    """No capability left (in a namespace, it could remount the read-only binds; as root,
    it is root's power): none now, and none that an `exec` could give back."""
    lib = libc()
    for cap in range(64):
        if lib.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == -1:
            break
    if bounding_only:
        return
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()
    check(lib.syscall(syscall_number("capset"), header, data), "capset")
