"""A fork server for kernels: pay for Python, torch and IPython's imports once per grading
worker instead of once per submission.

A fresh kernel spends about 2 s of CPU importing ipykernel and torch before it runs a
single line of the student's notebook. The server is a process that has imported them
(preload.py) and done nothing else: no student code, no thread, no event loop, no GPU
context. For each request (requests.py) it forks a child (serve.py), which becomes an
ordinary ipykernel on Jupyter's connection file, or runs a notebook's cells in-process,
in its own session and sandbox (child.py). Every submission still runs in a new process
of its own; what the children share is copy-on-write memory of freshly imported modules,
never anything a student's code wrote. Random number generators are re-seeded from the OS
in each child, as a fresh process would be.

Jupyter starts `forkclient.py` as the kernel's process (see there): it stands in for the
forked kernel, passes on signals and exits with it; if it is killed, the server kills
the kernel. When the server cannot be reached the client becomes a plain kernel, so
grading never depends on the server being alive.

This module is the grader's handle on a server: `start` one (`python -m
backprop_lab.run.forkserver`), ask it for kernels through a kernel spec manager, close it.
Linux only (fork after importing torch is safe there while no torch thread has started);
elsewhere `start()` returns None and kernels start the ordinary way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..forkclient import process_alive
from .requests import KERNEL_MODULE, write_token

__all__ = ["ForkServer", "start", "wait_until_ready"]

CLIENT = Path(__file__).parent.with_name("forkclient.py")
SOCKET = "server.sock"


@dataclass
class ForkServer:
    process: subprocess.Popen
    folder: Path

    @property
    def socket_path(self) -> Path:
        return self.folder / SOCKET

    def alive(self) -> bool:
        return self.process.poll() is None

    def kernel_specs(self):
        return forked_specs(self.socket_path)

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


def forked_specs(socket_path: Path):
    """A kernel spec manager whose `python3` kernel comes from the server at `socket_path`.
    Works in any process: kernels start the ordinary (sandboxed) way whenever the server
    is not there."""
    from ..kernelstart import specs_running

    return specs_running(kernel_argv(socket_path), "Python 3 (forked by autograde)")


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
    preload ipykernel too (for the kernel engine; the in-process engine needs less). `env`:
    the server's whole environment, which every child it forks starts from; by default the
    part of this process's that a notebook may see (sandbox.allowed_environment)."""
    if not available():
        return None
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="autograde-forkserver-"))
        os.chmod(folder, 0o700)  # only this user may ask it for kernels
    with contextlib.suppress(FileNotFoundError):
        (folder / SOCKET).unlink()
    write_token(folder)  # what its own grader's requests carry (requests.py)
    if env is None:  # what its children may see: nothing secret is ever in its memory
        from ..sandbox import allowed_environment

        env = allowed_environment()
    process = subprocess.Popen(
        # -P: the working folder is not an import path (a checkout there would shadow the
        # installed grader, and the sandbox does not hold it)
        [sys.executable, "-P", "-m", "backprop_lab.run.forkserver", str(folder / SOCKET)]
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
