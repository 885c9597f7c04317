"""The Linux system calls and constants the sandbox is built from (ctypes only), and the
system files every kernel needs."""

from __future__ import annotations

import ctypes
import os
import platform

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP = 1, 38, 24
SYSCALLS = {  # pivot_root, capset; Landlock's three are the same on every architecture
    "x86_64": {"pivot_root": 155, "capset": 126},
    "aarch64": {"pivot_root": 41, "capset": 91},
}

# What a kernel needs from /etc (the dynamic linker's cache, user and group names, time
# zone); not the whole folder, which on a CI runner (as root) holds more than that.
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf",
       "localtime", "hosts", "mime.types", "fonts")  # fmt: skip
SYSTEM = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/opt/conda", "/sys")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def syscall_number(name: str) -> int:
    """This architecture's number of `pivot_root` or `capset`."""
    return SYSCALLS[platform.machine()][name]


def check(result: int, what: str) -> int:
    """`result` of a C call, or OSError with its errno when it is -1."""
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def unshare(flags: int) -> tuple[int, int]:
    """Unshare; returns the (uid, gid) this process had before (a new user namespace
    shows the overflow ids until its maps are written)."""
    ids = os.getuid(), os.getgid()
    check(libc().unshare(flags), "unshare")
    return ids


def mount(src, target, fstype, flags, data=None) -> None:
    enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
    check(libc().mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
          f"mount {target}")  # fmt: skip


def write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def replace_environment(env: dict[str, str]) -> None:
    """Make `env` this process's whole environment, and forget the one it was started
    with: a forked child holds its parent's environment in `os.environ`, `os.environb`,
    `posix.environ` and the block the kernel shows as /proc/self/environ (the exec-time
    environment, which setenv never changes). That block is overwritten in place: it is this
    process's own memory (copied on write after the fork), and nothing refers to it once
    the environment is replaced."""
    import posix

    os.environ.clear()  # unsetenv for each: libc's environ no longer points into the block
    if hasattr(os, "environb"):
        os.environb.clear()
    posix.environ.clear()
    os.environ.update(env)
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[47]), int(fields[48])  # env_start, env_end (fields 50, 51)
    except (OSError, IndexError, ValueError):
        return  # not Linux, or a kernel without these fields: nothing more to forget
    if 0 < start < end:
        ctypes.memset(start, 0, end - start)


NOBODY = 65534  # who a root grader's notebook is on the host


def become_nobody(own: list[str]) -> None:
    """This root process becomes `NOBODY`, with no supplementary group: `own` (its folders,
    a kernel's connection file) become nobody's first. From root, every capability goes
    with the uid."""
    for path in own:
        os.chown(path, NOBODY, NOBODY)
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)


def others_can_read(path: str) -> bool:
    """Whether a user who owns nothing here (nobody) can reach and read `path`, by its
    permission bits and those of the folders above it (ACLs aside)."""
    import stat

    parts = os.path.realpath(path).split("/")
    try:
        for i in range(2, len(parts)):
            if not os.stat("/".join(parts[:i])).st_mode & stat.S_IXOTH:
                return False
        mode = os.stat(path).st_mode
    except OSError:
        return False
    wanted = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    return mode & wanted == wanted


def nobody_exists() -> bool:
    """Whether uid `NOBODY` exists in this process's user namespace (a rootless container
    may map its root alone)."""
    try:
        with open("/proc/self/uid_map") as f:
            ranges = [tuple(map(int, line.split())) for line in f if line.strip()]
    except (OSError, ValueError):
        return False
    return any(inside <= NOBODY < inside + count for inside, _outside, count in ranges)
