"""What a fork server is asked for, who may ask, and what each kind of request may carry:
the server runs nothing but these two, for nobody but its own grader, and never a child
outside the sandbox.

Who may ask: a process of the same user that is not itself inside a sandbox (the peer's
credentials, and its seccomp filters, which every sandboxed process has one more of than
the grader) and that holds the server's token: a file in the server's private folder,
which no sandbox can read (not mounted in the namespaces' root, outside Landlock's
allowlist). Either alone would do on a machine with every layer; both hold where one is
missing.
"""

from __future__ import annotations

import hmac
import json
import os
import socket
import struct
from pathlib import Path
from typing import Any

SHELL = "shell"  # a request for a notebook run in-process instead of a kernel
KERNEL_MODULE = "ipykernel_launcher"
_MAX_REQUEST = 1 << 20


SANDBOX_ENV = "AUTOGRADE_SANDBOX"  # sandbox.ENV: the policy every child must enter
TOKEN = "token"  # beside the server's socket, readable by its user only


def write_token(folder: Path) -> str:
    """The server's token in `folder` (made once, kept across restarts of a server)."""
    path = folder / TOKEN
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text()
    import secrets

    token = secrets.token_hex(32)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    return token


def _seccomp_filters(pid: int | str) -> int:
    """How many seccomp filters process `pid` runs under (-1: cannot tell)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return -1
    if "Seccomp_filters" in fields:
        return int(fields["Seccomp_filters"])
    return 1 if fields.get("Seccomp", "0").strip() == "2" else 0  # before Linux 5.9


def check_peer(conn: socket.socket) -> None:
    """ValueError unless the process at the other end of `conn` is this user's and not
    inside a sandbox."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    if uid != os.geteuid():
        raise ValueError("a request from another user")
    theirs, ours = _seccomp_filters(pid), _seccomp_filters("self")
    if theirs < 0 or theirs > ours:
        raise ValueError("a request from inside a sandbox")


def read_request(conn: socket.socket, token: str) -> tuple[dict[str, Any], list[int]]:
    """The request on `conn` and the descriptors that came with it; ValueError for
    anything but a well-formed request of one of the two kinds, from the server's own
    grader (`token`), for a child that enters the sandbox."""
    data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 4)
    try:  # read first, so that a refused peer gets its answer rather than a broken pipe
        check_peer(conn)
        return _parse(conn, data, token, fds), fds
    except (OSError, ValueError):
        for fd in fds:  # a refused request's descriptors are not the server's to keep
            os.close(fd)
        raise


def _parse(conn: socket.socket, data: bytes, token: str, fds: list[int]) -> dict[str, Any]:
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
    try:
        request = json.loads(body)
    except RecursionError:
        raise ValueError("a request nested too deep") from None
    if not isinstance(request, dict):
        raise ValueError("a request is a JSON object")
    given = request.get("token")
    if not (token and isinstance(given, str) and hmac.compare_digest(given, token)):
        raise ValueError("a request without the server's token")
    env = request.get("env")
    if not (isinstance(env, dict) and isinstance(env.get(SANDBOX_ENV), str)):
        raise ValueError("a request for a process outside the sandbox")
    if request.get("kind") == SHELL:
        # A notebook run in-process (cellrunner.py): stdin, stdout, stderr and the socket
        # the cells come over; nothing else is run.
        if len(fds) != 4 or not (
            isinstance(request.get("cwd"), str) and isinstance(request.get("env"), dict)
        ):
            raise ValueError("a shell request carries four descriptors and a folder")
        return request
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
    return request
