"""The operating-system sandbox every kernel runs in: Linux namespaces, Landlock and hard
resource limits, set up without root and before a line of the student's code runs.

    python -I -S sandbox.py -- KERNEL_ARGV...      (a plain kernel: sandbox, then exec)
    sandbox.enter(policy)                           (a kernel forked from forkserver.py)

Layers, each applied where the machine allows it (`probe()` says which):
1. Namespaces (`unshare`: user, mount, PID, network, IPC, UTS). The kernel is PID 1 of a
   PID namespace of its own, so it sees and can signal nothing outside, and every process
   it starts dies with it. The network namespace has no interface but a downed loopback.
   The file system is a new root on a tmpfs holding read-only binds of what a notebook
   needs (system libraries, the Python environment, the bundled data package, the
   `data_path` file), a size-limited tmpfs at the notebook's folder and at /tmp, a fresh
   /proc and a minimal /dev. Nothing else exists: no home folder, no repository, no other
   submission, no output folder.
2. Landlock (a second layer, and the only one where user namespaces are refused, as on
   Ubuntu's default AppArmor settings): reads only under the same allowlist, writes only
   in the scratch folders, no TCP bind or connect, no signals or abstract UNIX sockets out
   of the domain. Landlock also forbids mount changes, so the mounts cannot be undone.
3. Hard rlimits the kernel cannot raise: data size, file size, processes, CPU time, no
   core dumps. Capabilities are dropped and `no_new_privs` set before the kernel starts.

Standard library only (ctypes), so that the launcher starts in milliseconds with
`python -I -S`, and so that forkserver.py can call `enter` in a freshly forked child, which
is single-threaded as `unshare(CLONE_NEWUSER)` requires.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import resource
import signal
import sys

__all__ = ["ENV", "Policy", "SandboxError", "describe", "enter", "probe"]

ENV = "AUTOGRADE_SANDBOX"  # the policy, as JSON, in the environment of the kernel's launch

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP = 1, 38, 24
_SYSCALLS = {  # pivot_root, capset; Landlock's three are the same on every architecture
    "x86_64": {"pivot_root": 155, "capset": 126},
    "aarch64": {"pivot_root": 41, "capset": 91},
}
LANDLOCK_CREATE_RULESET, LANDLOCK_ADD_RULE, LANDLOCK_RESTRICT_SELF = 444, 445, 446

# Landlock access rights (linux/landlock.h)
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1, 2, 4, 8
FS_REMOVE_DIR, FS_REMOVE_FILE, FS_MAKE_CHAR, FS_MAKE_DIR = 16, 32, 64, 128
FS_MAKE_REG, FS_MAKE_SOCK, FS_MAKE_FIFO, FS_MAKE_BLOCK = 256, 512, 1024, 2048
FS_MAKE_SYM, FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 4096, 8192, 16384, 32768
NET_BIND_TCP, NET_CONNECT_TCP = 1, 2
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1, 2
_READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
_WRITE = (FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_DIR | FS_MAKE_REG
          | FS_MAKE_SOCK | FS_MAKE_FIFO | FS_MAKE_SYM | FS_REFER | FS_TRUNCATE)  # fmt: skip

# What a kernel needs from /etc (the dynamic linker's cache, user and group names, time
# zone); not the whole folder, which on a CI runner (as root) holds more than that.
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf",
       "localtime", "hosts", "mime.types", "fonts")  # fmt: skip
SYSTEM = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/opt/conda", "/sys")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


class SandboxError(RuntimeError):
    """The sandbox could not be set up (and it was required)."""


# --- the policy -------------------------------------------------------------------------


def policy(
    *,
    scratch: str,
    sockets: str,
    read: list[str],
    memory_mb: int | None,
    scratch_mb: int = 512,
    file_mb: int = 256,
    processes: int = 300,
    cpu_seconds: int | None = None,
    require: bool = False,
    devices: list[str] | None = None,
    found: dict | None = None,
) -> dict:
    """The sandbox a kernel gets, as plain data (it crosses into the kernel's launch as
    JSON). `scratch`: the notebook's folder, the one place it may write (a tmpfs of
    `scratch_mb` in the namespace sandbox); `sockets`: the folder holding the kernel's
    connection file and IPC sockets; `read`: what else it may read."""
    return {
        "scratch": scratch,
        "sockets": sockets,
        "read": sorted(set(read)),
        "memory_mb": memory_mb,
        "scratch_mb": scratch_mb,
        "file_mb": file_mb,
        "processes": processes,
        "cpu_seconds": cpu_seconds,
        "require": require,
        "devices": devices or [],
        "found": found or probe(),  # so that each kernel's launch need not probe again
    }


Policy = dict  # the JSON object `policy()` makes


def environment(p: Policy | None) -> dict[str, str]:
    """This process's environment with the policy `p` in it: what a notebook's process
    (a kernel's launcher, a forked child) is started with, to enter the sandbox it names."""
    env = dict(os.environ)
    if p:
        env[ENV] = json.dumps(p)
    return env


def python_paths() -> list[str]:
    """The Python environment the kernel runs in: its prefixes and import folders (not
    the working directory, and not an editable install's source tree)."""
    import sysconfig

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable)}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        with contextlib.suppress(KeyError):
            paths.add(sysconfig.get_paths()[key])
    paths.update(p for p in sys.path if p and os.path.isdir(p) and "site-packages" in p)
    return sorted(os.path.realpath(p) for p in paths if os.path.exists(p))


def kernel_reads(data_path: str | None = None) -> list[str]:
    """Everything a notebook's kernel may read besides the system: the Python environment,
    the bundled data package (not the rest of the repository it may sit in: no
    `reference/`, no `solutions/`), and the course's data file when one is given."""
    import importlib.util

    paths = python_paths()
    spec = importlib.util.find_spec("coursedata")
    if spec is not None and spec.submodule_search_locations:
        paths += [os.path.realpath(p) for p in spec.submodule_search_locations]
    if data_path:
        paths.append(os.path.realpath(data_path))
    return paths


def host_folder() -> str | None:
    """Where a grading's folders (the notebook's, the kernel's sockets) should go: not
    under /tmp, which the sandbox covers with a writable tmpfs of its own, so that the
    sockets folder bound beneath it would be writable from inside (Landlock's rights are
    inherited down a path). /var/tmp where it can be used, else the usual temp folder."""
    import tempfile

    tmp = os.path.realpath(tempfile.gettempdir())
    var = "/var/tmp"
    if tmp.startswith("/tmp") and os.path.isdir(var) and os.access(var, os.W_OK | os.X_OK):
        return var
    return None


def gpu_devices() -> list[str]:
    """NVIDIA's device files, for grading on CUDA inside the sandbox."""
    try:
        names = os.listdir("/dev")
    except OSError:
        return []
    return sorted("/dev/" + n for n in names if n.startswith("nvidia")) + (
        ["/dev/dri"] if "dri" in names else []
    )


# --- what this machine can do -----------------------------------------------------------


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    if not sys.platform.startswith("linux"):
        return 0
    with contextlib.suppress(Exception):
        abi = _libc().syscall(LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), 1)
        return max(int(abi), 0)
    return 0


def _namespaces_work() -> bool:
    """Whether an unprivileged user + mount namespace can mount here: tried in a child."""
    if not sys.platform.startswith("linux") or platform.machine() not in _SYSCALLS:
        return False
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _map_ids(*_unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID))
            _mount("none", "/", None, MS_REC | MS_PRIVATE)
            _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m")
            code = 0
        except BaseException:
            pass
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


_PROBED: dict | None = None


def probe() -> dict:
    """{"namespaces": bool, "landlock": ABI (0: none)}; tried once per process."""
    global _PROBED
    if _PROBED is None:
        _PROBED = {"namespaces": _namespaces_work(), "landlock": landlock_abi()}
    return _PROBED


def describe(found: dict | None = None) -> str | None:
    """None when student code is isolated here; otherwise the warning to print."""
    found = found or probe()
    if found["namespaces"] and found["landlock"]:
        return None
    if found["namespaces"] or found["landlock"]:
        have = "namespaces" if found["namespaces"] else f"Landlock ABI {found['landlock']}"
        return (f"student code is only partly isolated on this machine ({have} only): "
                "grade untrusted submissions on Linux with user namespaces and Landlock, "
                "or in a container")  # fmt: skip
    return ("student code is not isolated on this machine: grade untrusted submissions on "
            "Linux or in a container")  # fmt: skip


# --- system calls -------------------------------------------------------------------------


def _check(result: int, what: str) -> int:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _unshare(flags: int) -> tuple[int, int]:
    """Unshare; returns the (uid, gid) this process had before (a new user namespace
    shows the overflow ids until its maps are written)."""
    ids = os.getuid(), os.getgid()
    _check(_libc().unshare(flags), "unshare")
    return ids


def _mount(src, target, fstype, flags, data=None) -> None:
    enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
    _check(_libc().mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {target}")  # fmt: skip


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def inside_id(outside: int) -> int:
    """The id the kernel has inside its user namespace: its own, except that root outside
    is nobody special inside (uid 1000), so that an `exec` inside gains no capabilities."""
    return outside if outside != 0 else 1000


def _map_ids(uid: int, gid: int) -> None:
    _write("/proc/self/uid_map", f"{inside_id(uid)} {uid} 1\n")
    with contextlib.suppress(FileNotFoundError):
        _write("/proc/self/setgroups", "deny")
    _write("/proc/self/gid_map", f"{inside_id(gid)} {gid} 1\n")


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
    _mount(real, dest, None, MS_BIND | (MS_REC if recursive else 0))
    if not writable:
        _mount(None, dest, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _locked_flags(real))


def _tmpfs(target: str, megabytes: int, mode: str = "0755") -> None:
    os.makedirs(target, exist_ok=True)
    _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"size={int(megabytes)}m,mode={mode}")


def _new_root(p: Policy, root: str) -> None:
    """Build the kernel's view of the file system under `root` and make it `/`."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _tmpfs(root, 16)
    # /tmp first: the scratch and sockets folders usually live under it, and must not be
    # hidden by it.
    _tmpfs(root + "/tmp", p["scratch_mb"], "1777")
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
    _tmpfs(root + p["scratch"], p["scratch_mb"], "0777")
    os.makedirs(root + "/proc", exist_ok=True)
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _tmpfs(root + "/dev", 1)
    for name in DEVICES:
        if os.path.exists("/dev/" + name):
            _mkdirs_for(root + "/dev/" + name, False)
            _mount("/dev/" + name, root + "/dev/" + name, None, MS_BIND)
    for dev in p.get("devices", []):  # a GPU's device files, when grading on CUDA
        if os.path.exists(dev):
            _mkdirs_for(root + dev, os.path.isdir(dev))
            _mount(dev, root + dev, None, MS_BIND | MS_REC)
    _tmpfs(root + "/dev/shm", p["scratch_mb"], "1777")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):  # fmt: skip
        os.symlink(target, root + "/dev/" + name)
    # pivot_root(".", "."): the old root ends up under the new one, then is detached whole.
    os.chdir(root)
    _check(_libc().syscall(_SYSCALLS[platform.machine()]["pivot_root"], b".", b"."),
           "pivot_root")  # fmt: skip
    _check(_libc().umount2(b".", MNT_DETACH), "umount old root")
    os.chdir("/")
    _mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def landlock(
    abi: int,
    read: list[str],
    write: list[str],
    devices: list[str],
    sockets: list[str] = (),
    tcp: bool = False,
) -> None:
    """Restrict this thread and everything it starts: read and run only under `read`,
    change files only under `write`, use only the device files in `devices`, make only
    sockets in `sockets`; no TCP unless `tcp` (inside a network namespace of its own, TCP
    reaches nothing outside); no signals to or abstract sockets of processes outside."""
    libc = _libc()
    handled = _fs_rights(abi)
    tcp_rights = (NET_BIND_TCP | NET_CONNECT_TCP) if abi >= 4 and not tcp else 0
    attr = _RulesetAttr(handled, tcp_rights,
                        (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0)  # fmt: skip
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else (16 if abi >= 4 else 8)
    ruleset = _check(libc.syscall(LANDLOCK_CREATE_RULESET, ctypes.byref(attr),
                                  ctypes.c_size_t(size), 0), "landlock_create_ruleset")  # fmt: skip
    try:
        grants = [(p, _READ) for p in read]
        grants += [(p, _READ | _WRITE) for p in write]
        grants += [(p, _READ | FS_MAKE_SOCK | FS_REMOVE_FILE) for p in sockets]
        grants += [(d, FS_READ_FILE | FS_WRITE_FILE | (FS_IOCTL_DEV if abi >= 5 else 0))
                   for d in devices]  # fmt: skip
        for path, rights in grants:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                is_dir = os.path.isdir(path)
                allowed = (rights if is_dir else rights & (FS_EXECUTE | FS_READ_FILE
                           | FS_WRITE_FILE | FS_TRUNCATE | FS_IOCTL_DEV)) & handled  # fmt: skip
                rule = _PathBeneath(allowed, fd)
                _check(libc.syscall(LANDLOCK_ADD_RULE, ruleset, 1, ctypes.byref(rule), 0),
                       f"landlock_add_rule {path}")  # fmt: skip
            finally:
                os.close(fd)
        _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        _check(libc.syscall(LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)


def _limits(p: Policy, namespaced: bool) -> None:
    """Hard limits: soft and hard set together, so the kernel can lower but never raise
    them (raising a hard limit needs a capability it does not have). The process count
    only in a user namespace of its own: outside one, RLIMIT_NPROC counts every process of
    the user's, and would starve a desktop session's kernel of threads."""
    mb = 2**20
    wanted = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, p["file_mb"] * mb)]
    if namespaced:
        wanted.append((resource.RLIMIT_NPROC, p["processes"]))
    if p.get("memory_mb"):
        wanted.append((resource.RLIMIT_DATA, p["memory_mb"] * mb))
    if p.get("cpu_seconds"):
        wanted.append((resource.RLIMIT_CPU, int(p["cpu_seconds"])))
    for which, value in wanted:
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))


def _drop_capabilities() -> None:
    """No capability left in the namespace (it could remount the read-only binds)."""
    libc = _libc()
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == -1:
            break
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()
    _check(libc.syscall(_SYSCALLS[platform.machine()]["capset"], header, data), "capset")


# --- putting it together ------------------------------------------------------------------


def _wait_for(pid: int) -> int:
    """In the process that stays outside: stand in for the kernel (PID 1 inside) and exit
    with its status. An interrupt reaches the kernel through the process group; any other
    signal that ends this process ends the kernel (and its namespace) with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            return 1
        except InterruptedError:
            continue


def enter(p: Policy, found: dict | None = None) -> list[str]:
    """Put this process (single-threaded) in the sandbox `p`, as far as this machine
    allows; returns the layers applied. With namespaces the process forks: the parent
    stays outside, waits for the child and exits with its status (never returns); the
    child returns as PID 1 of the new PID namespace. Raises SandboxError if `p` requires
    the sandbox and the machine cannot provide it, or when setting it up fails."""
    found = found or p.get("found") or probe()
    if p.get("require") and not (found["namespaces"] and found["landlock"]):
        raise SandboxError(describe(found) or "no sandbox")
    layers = []
    read = [*p["read"], *(d for d in SYSTEM if os.path.exists(d))]
    read += ["/etc/" + n for n in ETC]
    devices = ["/dev/" + d for d in DEVICES] + list(p.get("devices", []))
    try:
        if found["namespaces"]:
            _map_ids(*_unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID
                               | CLONE_NEWIPC | CLONE_NEWUTS))  # fmt: skip
            pid = os.fork()
            if pid:
                os._exit(_wait_for(pid))
            _check(_libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
            root = p["sockets"] + "/root"
            os.makedirs(root, exist_ok=True)
            _new_root(p, root)
            _loopback_up()
            # RLIMIT_NPROC does not bind a grader run as root (uid 0 outside): the PID
            # namespace's own pid_max does (Linux 6.14+; older kernels keep the rlimit).
            with contextlib.suppress(OSError):
                _write("/proc/sys/kernel/pid_max", str(max(p["processes"] + 1, 301)))
            read += ["/proc", "/sys"]
            layers.append("namespaces")
        else:
            os.makedirs(os.path.join(p["scratch"], ".tmp"), exist_ok=True)
            os.environ["TMPDIR"] = os.path.join(p["scratch"], ".tmp")
            read += ["/proc", "/sys"]
        if found["landlock"]:
            write = [p["scratch"], *(["/tmp", "/dev/shm"] if found["namespaces"] else [])]
            landlock(found["landlock"], read, write, devices, [p["sockets"]],
                     tcp=found["namespaces"])  # fmt: skip
            layers.append("landlock")
            if not found["namespaces"]:
                # ipykernel's pipe for subprocesses' output binds 127.0.0.1, refused here:
                # it says so on every start, which tells the grader's user nothing.
                import warnings

                warnings.filterwarnings("ignore", "Couldn't bind IOPub Pipe")
                os.environ["PYTHONWARNINGS"] = "ignore:Couldn't bind IOPub Pipe"
        _limits(p, found["namespaces"])
        layers.append("rlimits")
        if found["namespaces"]:
            _drop_capabilities()
    except OSError as exc:
        raise SandboxError(f"the sandbox could not be set up: {exc}") from exc
    os.chdir(p["scratch"])
    # A home of its own: no profile, history or startup file of the user's is read.
    home = os.path.join(p["scratch"] if not found["namespaces"] else "/tmp", ".home")
    os.makedirs(home, exist_ok=True)
    os.environ.update(HOME=home, IPYTHONDIR=home + "/.ipython", MPLCONFIGDIR=home + "/.mpl",
                      XDG_CACHE_HOME=home + "/.cache", XDG_CONFIG_HOME=home + "/.config",
                      JUPYTER_RUNTIME_DIR=home + "/.jupyter")  # fmt: skip
    os.environ.pop(ENV, None)
    os.environ["AUTOGRADE_SANDBOX_LAYERS"] = ",".join(layers)
    return layers


def main(argv: list[str]) -> int:
    """Launcher: `sandbox.py -- KERNEL_ARGV...` with the policy in $AUTOGRADE_SANDBOX."""
    if len(argv) < 2 or argv[0] != "--":
        print("usage: sandbox.py -- KERNEL_ARGV...", file=sys.stderr)
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
    sys.exit(main(sys.argv[1:]))
