"""Putting a process in the sandbox: each layer the machine allows, in order, before a
line of the student's code runs. Nothing here imports lazily: a fork server's child has
forgotten the grader's modules before it enters the sandbox, and must not load them again."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Sequence

from . import keeper, landlock, namespaces, rlimits, seccomp
from .probing import describe, probe
from .rules import ENV, Policy
from .system import (
    DEVICES,
    ETC,
    PR_SET_PDEATHSIG,
    SYSTEM,
    become_nobody,
    libc,
    nobody_exists,
    others_can_read,
)

# What a notebook that shares the host's /proc may read there: its own process (its
# children lose even that), and the machine's figures libraries ask for; not the other
# processes' entries, which show the grader's command lines and its sockets' names.
SHARED_PROC = ("/proc/self", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/proc/loadavg",
               "/proc/uptime", "/proc/version", "/proc/filesystems", "/proc/sys")  # fmt: skip


REFUSED = "sandbox-refused"  # in the sockets folder: why the sandbox could not be set up


class SandboxError(RuntimeError):
    """The sandbox could not be set up (and it was required)."""


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
            namespaces.enter(p, guarded=bool(found["landlock"]))
            read += ["/proc", "/sys"]  # its own PID namespace's
            layers.append("namespaces")
        else:
            _keep_from_outside(p)
            os.makedirs(os.path.join(p["scratch"], ".tmp"), exist_ok=True)
            os.environ["TMPDIR"] = os.path.join(p["scratch"], ".tmp")
            tempfile.tempdir = None  # a value cached before the fork would still be /tmp
            read += ["/sys", *(path for path in SHARED_PROC if os.path.exists(path))]
        if found["landlock"]:
            write = [p["scratch"], *(["/tmp", "/dev/shm"] if found["namespaces"] else [])]
            landlock.restrict(found["landlock"], read, write, devices, [p["sockets"]],
                              tcp=found["namespaces"], listable=p.get("listable", ()))  # fmt: skip
            layers.append("landlock")
            if not found["namespaces"]:
                # ipykernel's pipe for subprocesses' output binds 127.0.0.1, refused here:
                # it says so on every start, which tells the grader's user nothing.
                import warnings

                warnings.filterwarnings("ignore", "Couldn't bind IOPub Pipe")
                os.environ["PYTHONWARNINGS"] = "ignore:Couldn't bind IOPub Pipe"
        rlimits.apply(p, found["namespaces"])
        layers.append("rlimits")
        if not found["namespaces"] and os.geteuid() == 0:
            _root_as_nobody(p, read, required=not found["landlock"])
        if found["namespaces"] or os.geteuid() == 0:
            namespaces.drop_capabilities()
        if seccomp.supported():
            seccomp.install(shared_host=not found["namespaces"],
                            scoped_signals=found["landlock"] >= 6)  # fmt: skip
            layers.append("seccomp")
    except OSError as exc:
        _refused(p, f"the sandbox could not be set up: {exc}")
        raise SandboxError(f"the sandbox could not be set up: {exc}") from exc
    except SandboxError as exc:
        _refused(p, str(exc))
        raise
    _own_home(p["scratch"] if not found["namespaces"] else "/tmp", p["scratch"])
    os.environ.pop(ENV, None)
    os.environ["AUTOGRADE_SANDBOX_LAYERS"] = ",".join(layers)
    return layers


def _root_as_nobody(p: Policy, read: list[str], required: bool) -> bool:
    """A grader run as root, without namespaces: the notebook becomes nobody, where nobody
    can read what it needs. Otherwise, where Landlock guards the files (`required` False),
    it stays uid 0 with no capability; where nothing does, it does not run: uid 0 may
    write the kernel's settings (the core dumps' handler) without any capability."""
    unreadable = [path for path in read if os.path.exists(path) and not others_can_read(path)]
    if not nobody_exists():
        unreadable = unreadable or ["anything (this user namespace has no nobody)"]
    if unreadable:
        if required:
            raise SandboxError(root_refusal(unreadable[0]))
        return False
    for folder in {os.path.dirname(p["scratch"]), os.path.dirname(p["sockets"])}:
        os.chmod(folder, os.stat(folder).st_mode | 0o001)  # the grading's folder: a way through
    sockets = [os.path.join(p["sockets"], n) for n in os.listdir(p["sockets"])]
    become_nobody([p["scratch"], os.path.join(p["scratch"], ".tmp"), p["sockets"], *sockets])
    return True


def cannot_run(found: dict | None = None, read: Sequence[str] = ()) -> str | None:
    """Why no notebook can run on this machine at all (a root grader without walls, whose
    Python nobody can read), before any is tried; None when they can."""
    found = found or probe()
    if os.geteuid() != 0 or found["namespaces"] or found["landlock"]:
        return None
    needed = [*read, *SYSTEM]
    unreadable = [path for path in needed if os.path.exists(path) and not others_can_read(path)]
    return root_refusal(unreadable[0]) if unreadable else None


def root_refusal(unreadable: str) -> str:
    return (
        "the grader runs as root where neither user namespaces nor Landlock are available, "
        f"so notebooks must run as nobody, who cannot read {unreadable}: install Python "
        "where every user can read it, or grade as an ordinary user"
    )


def _refused(p: Policy, why: str) -> None:
    """Leave why the sandbox could not be set up where the grader reads it (its stderr may
    go nowhere)."""
    with contextlib.suppress(OSError), open(os.path.join(p["sockets"], REFUSED), "w") as f:
        f.write(why)


def _keep_from_outside(p: Policy) -> None:
    """Where there are no namespaces: fork, and leave the parent outside the sandbox as
    the keeper of the tree (keeper.py), its subreaper, so that no orphan leaves it. Returns
    in the child, which dies with the keeper."""
    proc = keeper.open_proc()
    keeper.become_subreaper()
    pid = os.fork()
    if pid:
        os._exit(keeper.keep(pid, p, proc))
    os.close(proc)
    libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _own_home(parent: str, cwd: str) -> None:
    """Work in `cwd`, with a home of its own under `parent`: no profile, history or
    startup file of the user's is read."""
    os.chdir(cwd)
    home = os.path.join(parent, ".home")
    os.makedirs(home, exist_ok=True)
    os.environ.update(HOME=home, IPYTHONDIR=home + "/.ipython", MPLCONFIGDIR=home + "/.mpl",
                      XDG_CACHE_HOME=home + "/.cache", XDG_CONFIG_HOME=home + "/.config",
                      JUPYTER_RUNTIME_DIR=home + "/.jupyter")  # fmt: skip
