"""One notebook's process for the in-process engine, forked by the fork server: the socket
its cells go over, and how it is killed, reaped and closed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .forkclient import ask, read_token, signal_group


@dataclass
class Child:
    """One notebook's process, forked by the fork server: its pid, the socket its cells
    use, and the server connection that keeps it alive (closing it makes the server kill
    it)."""

    pid: int
    channel: socket.socket
    conn: socket.socket
    _reader: Any = field(default=None, repr=False)

    def kill(self) -> None:
        signal_group(self.pid, signal.SIGKILL)

    def exit_status(self, wait: float) -> int | None:
        """The child's exit status, within `wait` seconds: the server sends it once it has
        reaped the child."""
        self.conn.settimeout(wait)
        try:
            line = self._reader.readline()
            return int(json.loads(line)["exit"]) if line else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def close(self) -> None:
        for sock in (self.channel, self.conn):
            with contextlib.suppress(OSError):
                sock.close()


def start_child(server: Path, cwd: Path, env: dict[str, str], timeout: float = 120.0) -> Child:
    """Ask the fork server at `server` for a process to run one notebook in `cwd`.
    RuntimeError when the server cannot be reached or refuses."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ours, theirs = socket.socketpair()
    try:
        conn.settimeout(timeout)
        conn.connect(str(server))
        request = {"kind": "shell", "cwd": str(cwd), "env": env, "token": read_token(str(server))}
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
