"""The server's loop: fork a child per request, report each child's exit to its client,
kill a child whose client went away, and stop when the grader that started it has gone."""

from __future__ import annotations

import contextlib
import io
import json
import os
import selectors
import shutil
import signal
import socket
import sys
from pathlib import Path
from typing import cast

from .. import cellrunner
from ..forkclient import read_token, signal_group
from .child import become_kernel
from .preload import preload
from .requests import read_request

_STOP: list[int] = []  # set by SIGTERM: the loop ends and cleans up at its next turn


def _die_with_parent() -> None:
    """Linux: SIGTERM to this process when the process that started it exits (the closing
    of stdin says the same; this is for when stdin was passed on). The handler only says
    so: an exception raised from it could land anywhere, even in the clean-up itself, and
    leave the server's folder behind."""
    signal.signal(signal.SIGTERM, lambda *_: _STOP.append(1))
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def serve(path: str, kernels: bool = True) -> None:
    """The server's loop: fork a kernel per request; report each kernel's exit to its
    client; kill a kernel whose client went away (the kernel also watches for that
    itself); stop when stdin closes (the grader that started this process has gone)."""
    _die_with_parent()
    server_cwd = os.getcwd()
    preload(kernels)
    if not kernels:  # a kernel makes IPython's shell itself (a singleton: one kind only)
        with contextlib.suppress(Exception):  # without it, each child builds its own
            cellrunner.prepare()
    token = read_token(path)  # written by the grader that started this server
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
    children: dict[int, socket.socket] = {}  # pid -> its client's connection

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = children.pop(pid, None)
            if conn is not None:
                with contextlib.suppress(OSError):
                    code = os.waitstatus_to_exitcode(status)
                    conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
                with contextlib.suppress(KeyError, ValueError):
                    selector.unregister(conn)
                conn.close()

    def fork(conn: socket.socket) -> None:
        try:
            request, fds = read_request(conn, token)
        except (OSError, ValueError) as exc:
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps({"error": str(exc)}).encode() + b"\n")
            conn.close()
            return
        server_things = [listener, selector, wake_r, wake_w, *children.values()]
        pid = os.fork()
        if pid == 0:
            become_kernel(request, fds, conn, server_things, server_cwd)
        for fd in fds:
            os.close(fd)
        children[pid] = conn
        try:
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            selector.register(conn, selectors.EVENT_READ, pid)
        except OSError:
            signal_group(pid, signal.SIGKILL)

    try:
        while not _STOP:  # the wake-up pipe ends the select when SIGTERM arrives
            for key, _ in selector.select():
                if key.data == "parent":
                    # sys.stdin.buffer is a BufferedReader (typeshed: BinaryIO, no read1)
                    if not cast(io.BufferedReader, sys.stdin.buffer).read1(4096):
                        return
                elif key.data == "child":
                    with contextlib.suppress(BlockingIOError):
                        while os.read(wake_r, 4096):
                            pass
                    reap()
                elif key.data == "accept":
                    conn, _ = listener.accept()
                    conn.setblocking(True)
                    fork(conn)
                else:  # a client: it only ever closes, so readable means it has gone
                    pid, client = key.data, key.fileobj
                    if (pid in children and isinstance(client, socket.socket)
                            and not client.recv(1)):  # fmt: skip
                        selector.unregister(key.fileobj)
                        signal_group(pid, signal.SIGKILL)
    finally:
        for pid in list(children):
            signal_group(pid, signal.SIGKILL)
        shutil.rmtree(Path(path).parent, ignore_errors=True)
