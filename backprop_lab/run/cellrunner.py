"""Runs a notebook's cells in this process, as a Jupyter kernel would, without a kernel:
an IPython shell whose display hook, display publisher, streams and traceback hook turn
everything a cell shows into nbformat outputs, sent cell by cell over one socket.

It runs in a child the fork server (forkserver/) forks for one notebook and has put in
the sandbox: the child has torch and IPython imported already, so a notebook costs its own
cells plus tens of milliseconds. The grader's side of the socket is engine.py.

The wire: each message is 8 bytes of length, then that many bytes of JSON. The grader
sends `{"output_bytes": n}`, then one cell at a time, `{"run": index, "source": ...}`,
each answered by `{"start": index}` and, once it has run, `{"done": index, "outputs":
[...], "execution_count": n}`; `{"end": true}` ends the run. A cell reaches this process
only when it is its turn, as in a kernel: the grader's last cell, which carries its inputs,
is not here while the student's cells run. A cell that never ends, or a process that dies,
is seen from the other side by the messages that do not come.

Cells run on the main thread, so the kernel code's alarms (kernel/limits.py) stop them; no
thread is started here. Import-light: the standard library at import time, IPython when
the shell is built (the fork server has imported it already).
"""

from __future__ import annotations

import base64
import builtins
import json
import os
import socket
import sys
from typing import Any

__all__ = ["HEADER", "prepare", "read_message", "serve", "write_message"]

HEADER = 8  # bytes of length before each message
INPUT_REFUSED = (
    "input() was called, but a graded notebook runs with no one to answer it: "
    "write the value into the code instead"
)


def write_message(sock: socket.socket, message: dict[str, Any]) -> None:
    body = json.dumps(message, default=repr).encode()
    sock.sendall(len(body).to_bytes(HEADER, "big") + body)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(sock: socket.socket, limit: int) -> dict[str, Any]:
    """One message; EOFError when the socket closed, ValueError past `limit` bytes and
    json.JSONDecodeError (a ValueError) for anything but a JSON object."""
    size = int.from_bytes(_read_exactly(sock, HEADER), "big")
    if size > limit:
        raise ValueError(f"a message of {size} bytes, over the {limit} byte limit")
    message = json.loads(_read_exactly(sock, size))
    if not isinstance(message, dict):
        raise json.JSONDecodeError("a message is a JSON object", "", 0)
    return message


class _Cell:
    """The outputs of the cell that is running, in nbformat's shape. Consecutive writes
    to one stream are one output, as Jupyter shows them."""

    def __init__(self) -> None:
        self.outputs: list[dict[str, Any]] = []

    def stream(self, name: str, text: str) -> None:
        last = self.outputs[-1] if self.outputs else None
        if last is not None and last["output_type"] == "stream" and last["name"] == name:
            last["text"] += text
        else:
            self.outputs.append({"output_type": "stream", "name": name, "text": text})

    def add(self, output: dict[str, Any]) -> None:
        self.outputs.append(output)


def _bundle(data: dict[str, Any]) -> dict[str, Any]:
    """A MIME bundle as JSON: bytes (a PNG) in base64, as ipykernel sends them."""
    return {
        k: base64.b64encode(v).decode() if isinstance(v, bytes | bytearray) else v
        for k, v in (data or {}).items()
    }


class _Stream:
    """sys.stdout / sys.stderr while cells run. `fileno()` is the real descriptor, which
    this process reads back after each cell (see `_FdCapture`)."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, cell_ref: list[_Cell], name: str, fd: int) -> None:
        self._cell_ref, self.name, self._fd = cell_ref, name, fd

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if text:
            self._cell_ref[0].stream(self.name, text)
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return False


class _NoInput:
    """sys.stdin: reading it fails with the reason, as ipykernel's does without a frontend."""

    encoding = "utf-8"

    def _refuse(self, *args, **kwargs):
        _refuse_input()

    read = readline = readlines = __iter__ = __next__ = _refuse

    def fileno(self) -> int:
        return 0

    def isatty(self) -> bool:
        return False


class _FdCapture:
    """What reaches file descriptors 1 and 2 directly (C code, `os.write`, a subprocess
    that inherits them): an unnamed file in the notebook's temporary folder (the sandbox
    refuses memory files, which can be run as programs), read back and emptied after each
    cell."""

    def __init__(self) -> None:
        import tempfile

        self.file = tempfile.TemporaryFile(buffering=0)  # noqa: SIM115 (lives as long as the process)
        self.fd = self.file.fileno()
        os.dup2(self.fd, 1)
        os.dup2(self.fd, 2)

    def drain(self, cell: _Cell, limit: int) -> None:
        size = os.fstat(self.fd).st_size
        if not size:
            return
        text = os.pread(self.fd, min(size, limit), 0).decode("utf-8", "replace")
        if size > limit:
            text += f"\n[autograder: output beyond {limit // 1024} kB not kept]\n"
        cell.stream("stdout", text)
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)


def _shell(cell_ref: list[_Cell]):
    """The IPython shell cells run in, with every kind of output sent to `cell_ref[0]`."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    class Hook(DisplayHook):
        def write_output_prompt(self) -> None:
            pass

        def write_format_data(self, format_dict, md_dict=None) -> None:
            cell_ref[0].add({
                "output_type": "execute_result", "data": _bundle(format_dict),
                "metadata": md_dict or {}, "execution_count": self.prompt_count,
            })  # fmt: skip

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None,
                    update=False, **kwargs) -> None:  # fmt: skip
            cell_ref[0].add({"output_type": "display_data", "data": _bundle(data),
                             "metadata": metadata or {}})  # fmt: skip

        def clear_output(self, wait: bool = False) -> None:
            cell_ref[0].outputs.clear()

    class Shell(InteractiveShell):
        displayhook_class = Hook
        display_pub_class = Publisher

        def _showtraceback(self, etype, evalue, stb) -> None:
            cell_ref[0].add({"output_type": "error", "ename": str(etype.__name__),
                             "evalue": str(evalue), "traceback": list(stb)})  # fmt: skip

        def ask_exit(self) -> None:
            pass  # `exit()` in a notebook cell does not stop the notebook in a kernel either

    from traitlets.config import Config

    config = Config()
    # History in memory, as the kernels' `--HistoryManager.hist_file=:memory:`: nothing is
    # written to a profile, and no history thread is started.
    config.HistoryManager.hist_file = ":memory:"
    return Shell.instance(config=config, colors="Linux")


def _refuse_input(*args, **kwargs):
    from IPython.core.error import StdinNotImplementedError

    raise StdinNotImplementedError(INPUT_REFUSED)


# A shell built before any notebook exists (`prepare`, in the fork server): each child
# gets its own copy of it, fresh, by the fork, instead of spending tens of milliseconds
# building one.
_PREPARED: tuple[list[_Cell], Any] | None = None


def prepare() -> None:
    """Build the shell now, in a process that will fork a child per notebook. It has run
    nothing: what each child starts from is a shell that has just been made."""
    global _PREPARED
    cell_ref = [_Cell()]
    _PREPARED = (cell_ref, _shell(cell_ref))


def serve(fd: int, limit: int = 1 << 30) -> int:
    """Run the cells the grader sends over the socket `fd`, one at a time; returns the
    exit status."""
    sock = socket.socket(fileno=fd)
    output_bytes = int(read_message(sock, limit).get("output_bytes") or 1 << 20)
    capture = _FdCapture()
    if _PREPARED is not None:
        cell_ref, shell = _PREPARED
    else:
        cell_ref = [_Cell()]
        shell = _shell(cell_ref)
    sys.stdout = _Stream(cell_ref, "stdout", 1)
    sys.stderr = _Stream(cell_ref, "stderr", 2)
    sys.stdin = _NoInput()
    while True:
        message = read_message(sock, limit)
        if "run" not in message:
            return 0
        index, source = message["run"], message["source"]
        cell_ref[0] = cell = _Cell()
        write_message(sock, {"start": index})
        builtins.input = _refuse_input  # as a kernel does before each cell
        count = shell.execution_count
        shell.run_cell(source, store_history=True)
        capture.drain(cell, output_bytes)
        write_message(sock, {"done": index, "outputs": cell.outputs, "execution_count": count})
