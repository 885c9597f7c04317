"""One notebook's process for the in-process engine: forked here or by the fork server,
with the socket its cells go over, and how it is killed, reaped and closed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .forkclient import ask, signal_group


@dataclass
class Child:
    """One notebook's process: its pid, the socket its cells use, and, when the fork server
    forked it, the server connection that keeps it alive (closing it makes the server kill
    it); without one it is this process's own child (`fork_here`)."""

    pid: int
    channel: socket.socket
    conn: socket.socket | None = None
    _reader: Any = field(default=None, repr=False)

    def kill(self) -> None:
        signal_group(self.pid, signal.SIGKILL)

    def exit_status(self, wait: float) -> int | None:
        """The child's exit status, within `wait` seconds: the server sends it once it has
        reaped the child; an own child is reaped here."""
        if self.conn is None:
            deadline = time.monotonic() + wait
            while True:
                try:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:
                    return None
                if pid:
                    return os.waitstatus_to_exitcode(status)
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.01)
        self.conn.settimeout(wait)
        try:
            line = self._reader.readline()
            return int(json.loads(line)["exit"]) if line else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def close(self) -> None:
        for sock in (self.channel, self.conn):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        if self.conn is None:
            self.exit_status(wait=2.0)  # reap it: killed by now


def fork_here(cwd: Path, env: dict[str, str]) -> Child:
    """A child of this process that will run one notebook in `cwd` (see
    forkserver.fork_shell: call it before this process runs any torch operation)."""
    from .forkserver import fork_shell

    pid, channel = fork_shell(cwd, env)
    return Child(pid, channel)


def start_child(server: Path, cwd: Path, env: dict[str, str], timeout: float = 120.0) -> Child:
    """Ask the fork server at `server` for a process to run one notebook in `cwd`.
    RuntimeError when the server cannot be reached or refuses."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ours, theirs = socket.socketpair()
    try:
        conn.settimeout(timeout)
        conn.connect(str(server))
        request = {"kind": "shell", "cwd": str(cwd), "env": env}
        with open(os.devnull, "rb") as null_in, open(os.devnull, "wb") as null_out:
            fds = [null_in.fileno(), null_out.fileno(), null_out.fileno(), theirs.fileno()]
            reply, reader = ask(conn, request, fds)
    except (OSError, ValueError) as exc:
        conn.close()
        ours.close()
        raise RuntimeError(
            f"the fork server at {server} could not start a process ({exc})"
        ) from exc
    finally:
        theirs.close()
    pid = reply.get("pid")
    if not isinstance(pid, int):
        conn.close()
        ours.close()
        why = reply.get("error", "no process id in its reply")
        raise RuntimeError(f"the fork server refused to start a process ({why})")
    return Child(pid, ours, conn, reader)
