"""What a fork server is asked for, and what each kind of request may carry: the server
runs nothing but these two."""

from __future__ import annotations

import json
import socket
from typing import Any

SHELL = "shell"  # a request for a notebook run in-process instead of a kernel
KERNEL_MODULE = "ipykernel_launcher"
_MAX_REQUEST = 1 << 20


def read_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """The request on `conn` and the descriptors that came with it; ValueError for
    anything but a well-formed request of one of the two kinds."""
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
