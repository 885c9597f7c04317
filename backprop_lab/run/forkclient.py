"""The process Jupyter starts as "the kernel" when a fork server is running (see
`forkserver/`). Standard library only, run as a script with `python -I -S`, so it
starts in milliseconds.

    python -I -S forkclient.py SOCKET -- KERNEL_ARGV...

It asks the fork server for a fresh kernel process running KERNEL_ARGV's arguments, with
this process's working folder, environment and standard streams; then it stands in for
that kernel: signals sent to it (an interrupt, a terminate) are passed on, and it exits
when the kernel exits, with the kernel's status. If this process is killed outright, the
kernel notices and exits (and the server kills it). If the server cannot be reached,
this process becomes an ordinary kernel itself (the sandbox's launcher of KERNEL_ARGV, so
in the same sandbox), and grading never depends on the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import sys
import time

# Signals Jupyter sends a kernel (interrupt, shutdown) and those a terminal or job system
# may send: passed to the kernel's process group.
RELAYED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def _exec_plain(kernel_argv: list[str]) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    launcher = os.path.join(here, "sandbox", "launcher.py")
    argv = [sys.executable, "-I", "-S", launcher, "--", *kernel_argv]
    os.execv(argv[0], argv)


def _relay(pid: int):
    def handler(signum, frame):
        signal_group(pid, signum)

    return handler


def signal_group(pid: int, signum: int) -> None:
    """Send `signum` to the process group `pid` leads (a forked child is a session of its
    own: its subprocesses get it too), or to `pid` alone while it leads none yet."""
    try:
        os.killpg(pid, signum)
    except OSError:
        with contextlib.suppress(OSError):
            os.kill(pid, signum)


def ask(conn: socket.socket, request: dict, fds: list[int]):
    """Send the fork server on `conn` one request with the descriptors `fds` (8 bytes of
    length, then JSON); returns its reply and the reader that will bring the next line,
    the process's exit status. OSError or ValueError when that fails."""
    body = json.dumps(request).encode()
    socket.send_fds(conn, [len(body).to_bytes(8, "big") + body], fds)
    reader = conn.makefile("rb")
    return json.loads(reader.readline() or b"{}"), reader


def read_token(socket_path: str) -> str:
    """The token of the fork server at `socket_path`, beside it and readable by this user
    only (forkserver/requests.py); "" where it cannot be read."""
    try:
        with open(os.path.join(os.path.dirname(socket_path), "token")) as f:
            return f.read()
    except OSError:
        return ""


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: forkclient.py SOCKET -- KERNEL_ARGV...", file=sys.stderr)
        return 2
    path, kernel_argv = argv[0], argv[2:]
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        request = {"argv": kernel_argv, "cwd": os.getcwd(), "env": dict(os.environ),
                   "token": read_token(path)}  # fmt: skip
        reply, reader = ask(conn, request, [0, 1, 2])
    except (OSError, ValueError):
        reply = {}
    pid = reply.get("pid")
    if not isinstance(pid, int):
        conn.close()
        _exec_plain(kernel_argv)  # no server, or it refused: be the kernel ourselves
        return 1  # not reached
    for name in RELAYED:
        signal.signal(getattr(signal, name), _relay(pid))
    # The server writes the kernel's exit status when it exits, then closes. Meanwhile,
    # like ipykernel, give up when the process that started us has gone (a grader killed
    # outright): exiting makes the kernel exit, so no kernel is left behind.
    parent = os.getppid()
    while not select.select([conn], [], [], 1.0)[0]:
        if os.getppid() != parent:
            return 1
    try:
        line = reader.readline()
    except OSError:
        line = b""
    try:
        status = int(json.loads(line).get("exit", 1)) if line else None
    except (ValueError, AttributeError):
        status = 1
    if status is None:
        # The server died (the kernel keeps running: it watches this process, not the
        # server): wait for the kernel itself.
        while process_alive(pid):
            time.sleep(0.1)
        status = 1
    return status if status >= 0 else 128 - status


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # an exited process nobody has reaped yet is not alive
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
