"""A fork server for kernels: pay for Python, torch and IPython's imports once per grading
worker instead of once per submission.

A fresh kernel spends about 2 s of CPU importing ipykernel and torch before it runs a
single line of the student's notebook. The server is a process that has imported them
and done nothing else: no student code, no thread, no event loop, no GPU context. For
each kernel it forks a child, which becomes an ordinary ipykernel on Jupyter's connection
file, in its own session. Every submission still runs in a new process of its own; what
the children share is copy-on-write memory of freshly imported modules, never anything a
student's code wrote. Random number generators are re-seeded from the OS in each child,
as a fresh process would be.

Jupyter starts `forkclient.py` as the kernel's process (see there): it stands in for the
forked kernel, passes on signals and exits with it; if it is killed, the server kills
the kernel. When the server cannot be reached the client becomes a plain kernel, so
grading never depends on the server being alive.

Linux only (fork after importing torch is safe there while no torch thread has started);
elsewhere `start()` returns None and kernels start the ordinary way.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import cellrunner, sandbox
from .forkclient import process_alive

__all__ = ["ForkServer", "fork_safe", "fork_shell", "start"]

CLIENT = Path(__file__).with_name("forkclient.py")
SOCKET = "server.sock"
SHELL = "shell"  # a request for a notebook run in-process instead of a kernel
KERNEL_MODULE = "ipykernel_launcher"
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
_MAX_REQUEST = 1 << 20
_SERVER_CWD = ""


# --- the server process --------------------------------------------------------------


def _preload(kernels: bool) -> None:
    import importlib

    for name in (*PRELOAD, *(KERNEL_PRELOAD if kernels else ())):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _die_with_parent() -> None:
    """Linux: SIGTERM to this process when the process that started it exits (the closing
    of stdin says the same; this is for when stdin was passed on)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so that `finally` cleans up
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def _read_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 4)
    if len(data) < 8:
        raise ValueError("short request")
    size = int.from_bytes(data[:8], "big")
    if size > _MAX_REQUEST:
        raise ValueError("request too large")
    body = data[8:]
    while len(body) < size:
        more = conn.recv(size - len(body))
        if not more:
            raise ValueError("truncated request")
        body += more
    request = json.loads(body)
    if request.get("kind") == SHELL:
        # A notebook run in-process (cellrunner.py): stdin, stdout, stderr and the socket
        # the cells come over; nothing else is run.
        if len(fds) != 4 or not (
            isinstance(request.get("cwd"), str) and isinstance(request.get("env"), dict)
        ):
            raise ValueError("a shell request carries four descriptors and a folder")
        return request, fds
    argv = request.get("argv")
    # Only ipykernel's own launcher, with its own arguments: the server runs nothing else.
    if not (
        isinstance(argv, list)
        and len(argv) >= 3
        and argv[1:3] == ["-m", KERNEL_MODULE]
        and all(isinstance(a, str) for a in argv)
        and len(fds) == 3
    ):
        raise ValueError("not an ipykernel command")
    return request, fds


def _watch_client(conn: socket.socket) -> None:
    """In the kernel: exit when the client that stands in for it has gone (Jupyter killed
    it). A thread, so it works even if the server has died meanwhile."""
    import threading

    def watch() -> None:
        with contextlib.suppress(OSError):
            while conn.recv(64):
                pass
        os._exit(1)

    threading.Thread(target=watch, name="autograde-client-watch", daemon=True).start()


def _enter_child(
    request: dict[str, Any], fds: list[int], server_things: list[Any], keep: list[int]
) -> None:
    """In a forked child: leave the parent's state behind (its sockets and files, signal
    handlers, random state, the grader's modules), take the request's stdio, folder and
    environment, and enter the sandbox the environment describes."""
    for thing in server_things:  # the server's sockets and pipes are not the child's
        with contextlib.suppress(Exception):
            thing.close() if hasattr(thing, "close") else os.close(thing)
    _blank_inherited([*fds, *keep])
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    os.setsid()  # its own process group: signals and kills reach its subprocesses too
    for target, fd in zip((0, 1, 2), fds[:3], strict=True):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    import random

    random.seed()
    if "numpy.random" in sys.modules:  # else it seeds itself when first imported
        sys.modules["numpy.random"].seed()
    # The parent's own modules: a kernel has not imported the grader or its reference.
    for name in [m for m in sys.modules if m.split(".")[0] in ("autograder", "reference")]:
        del sys.modules[name]
    if sys.path and sys.path[0] in ("", os.getcwd(), str(Path.cwd()), _SERVER_CWD):
        del sys.path[0]  # as ipykernel_launcher does: the cwd is not an import path
    policy = os.environ.get(sandbox.ENV)
    if policy:
        # Forks: this process stays outside and waits; the child goes on as PID 1 of its
        # own namespaces (see sandbox.py).
        sandbox.enter(json.loads(policy))  # the grader probed the machine for it


def _blank_inherited(keep: list[int]) -> None:
    """Point every other descriptor this process inherited at /dev/null: an open file or
    socket of the parent's is a way around the sandbox's file rules. Not closed: a Python
    object that still holds one would close whatever later reuses its number."""
    null = os.open(os.devnull, os.O_RDWR)
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd > 2 and fd != null and fd not in keep:
                with contextlib.suppress(OSError):
                    os.dup2(null, fd)
    os.close(null)


def _become_kernel(
    request: dict[str, Any], fds: list[int], conn: socket.socket | None, server_things: list[Any]
) -> None:
    """In the forked child: turn into ipykernel on the request's connection file, or, for
    a shell request, run the notebook's cells in-process (cellrunner.py). Never returns
    into the server's loop."""
    code = 1
    run_cells = cellrunner.serve  # held before the grader's modules are forgotten
    try:
        _enter_child(request, fds, server_things, [] if conn is None else [conn.fileno()])
        if request.get("kind") == SHELL:
            if conn is not None:
                conn.close()  # the server watches it; the cells come over their own socket
            code = run_cells(fds[3])
            return
        _watch_client(conn)
        from IPython.core.interactiveshell import InteractiveShell

        InteractiveShell.clear_instance()  # ipykernel makes its own shell, of its own kind
        # parent_handle=1: no console banner, and no polling of the parent process: this
        # kernel lives as long as its client, whatever becomes of the server.
        sys.argv = [KERNEL_MODULE, *request["argv"][3:], "--IPKernelApp.parent_handle=1"]
        from ipykernel import kernelapp

        kernelapp.launch_new_instance()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except sandbox.SandboxError as exc:
        print(f"autograde: {exc}", file=sys.stderr, flush=True)
        code = 3
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def serve(path: str, kernels: bool = True) -> None:
    """The server's loop: fork a kernel per request; report each kernel's exit to its
    client; kill a kernel whose client went away (the kernel also watches for that
    itself); stop when stdin closes (the grader that started this process has gone)."""
    global _SERVER_CWD
    _die_with_parent()
    _SERVER_CWD = os.getcwd()
    _preload(kernels)
    if not kernels:  # a kernel makes IPython's shell itself (a singleton: one kind only)
        with contextlib.suppress(Exception):  # without it, each child builds its own
            cellrunner.prepare()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".binding")
    listener.listen(64)
    os.replace(path + ".binding", path)  # the socket appears when it is ready to serve
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_r, selectors.EVENT_READ, "child")
    selector.register(sys.stdin, selectors.EVENT_READ, "parent")
    kernels: dict[int, socket.socket] = {}  # pid -> its client's connection

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = kernels.pop(pid, None)
            if conn is not None:
                with contextlib.suppress(OSError):
                    code = os.waitstatus_to_exitcode(status)
                    conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
                with contextlib.suppress(KeyError, ValueError):
                    selector.unregister(conn)
                conn.close()

    def kill(pid: int) -> None:
        for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, 9)):
            with contextlib.suppress(OSError):
                target()

    try:
        while True:
            for key, _ in selector.select():
                if key.data == "parent":
                    if not sys.stdin.buffer.read1(4096):
                        return
                elif key.data == "child":
                    with contextlib.suppress(BlockingIOError):
                        while os.read(wake_r, 4096):
                            pass
                    reap()
                elif key.data == "accept":
                    conn, _ = listener.accept()
                    conn.setblocking(True)
                    try:
                        request, fds = _read_request(conn)
                    except (OSError, ValueError) as exc:
                        with contextlib.suppress(OSError):
                            conn.sendall(json.dumps({"error": str(exc)}).encode() + b"\n")
                        conn.close()
                        continue
                    server_things = [listener, selector, wake_r, wake_w, *kernels.values()]
                    pid = os.fork()
                    if pid == 0:
                        _become_kernel(request, fds, conn, server_things)
                    for fd in fds:
                        os.close(fd)
                    kernels[pid] = conn
                    try:
                        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
                        selector.register(conn, selectors.EVENT_READ, pid)
                    except OSError:
                        kill(pid)
                else:  # a client: it only ever closes, so readable means it has gone
                    pid = key.data
                    if pid in kernels and not key.fileobj.recv(1):
                        selector.unregister(key.fileobj)
                        kill(pid)
    finally:
        # The grader's death closes stdin and sends SIGTERM at once: whichever arrives
        # second must not interrupt the clean-up the first one started.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for pid in list(kernels):
            kill(pid)
        shutil.rmtree(Path(path).parent, ignore_errors=True)


# Threads this process had once it had imported what a notebook's process needs, before
# any torch operation (see `fork_safe`); None until then.
_THREADS_AFTER_IMPORTS: int | None = None


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1 << 30


def fork_safe() -> bool:
    """Whether this process may fork a notebook's process itself. Torch's intra-op pool
    (OpenMP) starts threads on the first parallel operation, and a child forked after
    that hangs on its own first one; numpy's BLAS starts threads when imported, which are
    safe. So: only a process that imports torch here, for the first time, and has no
    more threads than it had just after (pytest, or a program that used torch first,
    gets a fork server instead)."""
    global _THREADS_AFTER_IMPORTS
    if _THREADS_AFTER_IMPORTS is None:
        if "torch" in sys.modules:
            return False  # imported before: it may have run parallel operations already
        _preload(kernels=False)
        _THREADS_AFTER_IMPORTS = _thread_count()
    return _thread_count() <= _THREADS_AFTER_IMPORTS


def fork_shell(cwd: Path, env: dict[str, str]) -> tuple[int, socket.socket]:
    """Without a server: fork, from this process, a child that will run one notebook's
    cells (cellrunner.py) in `cwd`, in the sandbox `env` describes; returns its pid and
    the socket to send the cells over. The child is forked before this process has run
    any torch operation (a child of a process whose torch threads have started hangs):
    call it before the grader's own tensors are made."""
    _preload(kernels=False)
    ours, theirs = socket.socketpair()
    null = os.open(os.devnull, os.O_RDWR)
    pid = os.fork()
    if pid == 0:
        fds = [os.dup(null), os.dup(null), os.dup(null), theirs.fileno()]
        _become_kernel({"kind": SHELL, "cwd": str(cwd), "env": env}, fds, None, [ours, null])
    os.close(null)
    theirs.close()
    return pid, ours


# --- the grader's handle on a server --------------------------------------------------


@dataclass
class ForkServer:
    process: subprocess.Popen
    folder: Path

    @property
    def socket_path(self) -> Path:
        return self.folder / SOCKET

    def alive(self) -> bool:
        return self.process.poll() is None

    def kernel_spec_manager(self):
        return kernel_spec_manager(self.socket_path)

    def close(self, remove: bool = True) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()  # the server stops when its stdin closes
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)


def kernel_argv(socket_path: Path) -> list[str]:
    """The command Jupyter runs for a kernel from the server at `socket_path`
    ({connection_file} is filled in by jupyter_client)."""
    kernel = [sys.executable, "-m", KERNEL_MODULE, "-f", "{connection_file}"]
    return [sys.executable, "-I", "-S", str(CLIENT), str(socket_path), "--", *kernel]


def kernel_spec_manager(socket_path: Path):
    """A kernel spec manager whose `python3` kernel comes from the server at `socket_path`.
    Works in any process: kernels start the ordinary (sandboxed) way whenever the server
    is not there."""
    from .execute import kernel_spec_manager as specs

    return specs(kernel_argv(socket_path), "Python 3 (forked by autograde)")


def available() -> bool:
    return sys.platform.startswith("linux") and hasattr(socket, "send_fds")


def start(
    folder: Path | None = None,
    env: dict[str, str] | None = None,
    wait: bool = True,
    timeout: float = 120.0,
    kernels: bool = True,
) -> ForkServer | None:
    """Start a fork server listening in `folder` (a new private one by default; give the
    old one to restart a server that died). With `wait`, return once it has imported
    everything; otherwise at once (see `wait_until_ready`). None where fork servers are
    not available or it failed to start: kernels then start the ordinary way. `kernels`:
    preload ipykernel too (for the kernel engine; the in-process engine needs less)."""
    if not available():
        return None
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="autograde-forkserver-"))
        os.chmod(folder, 0o700)  # only this user may ask it for kernels
    with contextlib.suppress(FileNotFoundError):
        (folder / SOCKET).unlink()
    process = subprocess.Popen(
        [sys.executable, "-m", "autograder.forkserver", str(folder / SOCKET)]
        + (["--kernels"] if kernels else []),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    server = ForkServer(process, folder)
    if wait and not wait_until_ready(server.socket_path, process.pid, timeout):
        server.close()
        return None
    return server


def wait_until_ready(socket_path: Path, pid: int, timeout: float = 120.0) -> bool:
    """Wait until the server `pid` listens at `socket_path` (it appears there only once
    the server is ready); False if the server died or took longer than `timeout`."""
    deadline = time.monotonic() + timeout
    while not socket_path.exists():
        if not process_alive(pid) or time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


if __name__ == "__main__":
    serve(sys.argv[1], kernels="--kernels" in sys.argv[2:])
    # Nothing left to do: skip the interpreter's tear-down of torch (most of a second).
    sys.stdout.flush()
    os._exit(0)
