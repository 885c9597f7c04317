"""In a forked child: leave the server behind, enter the sandbox, and become what was
asked for, a Jupyter kernel or a notebook run in-process (cellrunner.py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from .. import cellrunner, sandbox
from ..sandbox.system import replace_environment
from .requests import KERNEL_MODULE, SHELL


def become_kernel(
    request: dict[str, Any],
    fds: list[int],
    conn: socket.socket | None,
    server_things: list[Any],
    server_cwd: str = "",
) -> None:
    """In the forked child: turn into ipykernel on the request's connection file, or, for
    a shell request, run the notebook's cells in-process (cellrunner.py). Never returns
    into the server's loop. `server_cwd`: the server's folder, no import path of the
    child's."""
    code = 1
    run_cells = cellrunner.serve  # held before the grader's modules are forgotten
    try:
        keep = [] if conn is None else [conn.fileno()]
        _enter_child(request, fds, server_things, keep, server_cwd)
        if request.get("kind") == SHELL:
            if conn is not None:
                conn.close()  # the server watches it; the cells come over their own socket
            code = run_cells(fds[3])
            return
        if conn is not None:  # the server always gives a kernel its client's connection
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
    request: dict[str, Any],
    fds: list[int],
    server_things: list[Any],
    keep: list[int],
    server_cwd: str,
) -> None:
    """Leave the parent's state behind (its sockets and files, signal handlers, random
    state, the grader's modules), take the request's stdio, folder and environment, and
    enter the sandbox the environment describes."""
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
    replace_environment(request["env"])  # nothing of the parent's environment is left
    import random

    random.seed()
    if "numpy.random" in sys.modules:  # else it seeds itself when first imported
        sys.modules["numpy.random"].seed()
    # The parent's own modules: a kernel has not imported the grader or its reference.
    for name in [m for m in sys.modules if m.split(".")[0] == __name__.partition(".")[0]]:
        del sys.modules[name]
    if sys.path and sys.path[0] in ("", os.getcwd(), str(Path.cwd()), server_cwd):
        del sys.path[0]  # as ipykernel_launcher does: the cwd is not an import path
    policy = os.environ.get(sandbox.ENV)
    if policy:
        # Forks: this process stays outside and waits; the child goes on as PID 1 of its
        # own namespaces (see sandbox/namespaces.py).
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
