"""The in-process engine (backprop_lab/run/engine.py, cellrunner.py): a notebook run in a child
of the fork server comes back as a kernel would give it (streams, displays, results,
errors, magics, state from cell to cell), stops where a kernel's run stops (a cell past
its limit, the whole notebook past its limit, a process that exits or crashes), refuses
`input()`, keeps no more output than allowed, and inherits nothing of the grader's. The
engine is chosen in one place, and asking for one that cannot run is an error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from process_tools import sandbox_for

from backprop_lab.run import engine, forkserver
from backprop_lab.run.cellrunner import INPUT_REFUSED
from backprop_lab.run.execute import Execution, run_notebook

pytestmark = [
    pytest.mark.skipif(not engine.available(), reason="the in-process engine is Linux-only"),
    # the module's fork server is started once (it imports torch): one worker runs these
    pytest.mark.xdist_group("engine"),
]

# A cell per kind of output a kernel gives, and the state one cell leaves for the next.
CELLS = {
    "two prints": 'print("a")\nprint("b")',
    "stderr": 'import sys\nprint("warned", file=sys.stderr)',
    "result": "x = 40\nx + 2",
    "display": 'from IPython.display import HTML, display\ndisplay(HTML("<b>bold</b>"))',
    "raw fd": 'import os\nos.write(1, b"straight to fd 1\\n")',
    "error": 'raise ValueError("boom")',
    "syntax": "def f(:\n    pass",
    "magic": "%timeit -n 1 -r 1 sum(range(10))",
    "input": 'input("your name? ")',
    "state": "x * 2",
    "cleared": "from IPython.display import clear_output\n"
    'print("gone")\nclear_output()\nprint("kept")',
    "sys.exit": "import sys\nsys.exit(4)",
    "after exit": 'print("still running")',
}


def notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "P"}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


@pytest.fixture(scope="module")
def server() -> Iterator[Path]:
    started = forkserver.start(kernels=False)
    assert started is not None, "the fork server did not start"
    yield started.socket_path
    started.close()


def run(nb, tmp_path: Path, **kwargs) -> Execution:
    workdir = tmp_path / "notebook"
    workdir.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("cell_timeout", 30)
    kwargs.setdefault("sandbox", sandbox_for(workdir))
    return run_notebook(nb, parameters={}, workdir=workdir, skip_tag="none", **kwargs)


def code(execution: Execution) -> list[nbformat.NotebookNode]:
    """The notebook's cells as run (papermill adds Markdown cells that point at errors)."""
    assert execution.notebook is not None
    return [c for c in execution.notebook.cells if c.cell_type == "code"]


def outputs(execution: Execution) -> dict[str, list[dict]]:
    return {name: c.outputs for name, c in zip(CELLS, code(execution), strict=True)}


def test_a_notebook_comes_back_as_a_kernel_gives_it(server: Path, tmp_path: Path) -> None:
    execution = run(notebook(*CELLS.values()), tmp_path, server=server)
    assert execution.stopped is None and not execution.kernel_died
    out = outputs(execution)
    assert out["two prints"] == [{"output_type": "stream", "name": "stdout", "text": "a\nb\n"}]
    assert out["stderr"] == [{"output_type": "stream", "name": "stderr", "text": "warned\n"}]
    [result] = out["result"]
    assert result["output_type"] == "execute_result" and result["data"]["text/plain"] == "42"
    [shown] = out["display"]
    assert shown["output_type"] == "display_data" and shown["data"]["text/html"] == "<b>bold</b>"
    assert out["raw fd"][-1]["text"] == "straight to fd 1\n"  # after os.write's result
    [error] = out["error"]
    assert (error["ename"], error["evalue"]) == ("ValueError", "boom")
    assert any("boom" in line for line in error["traceback"])
    assert out["syntax"][0]["ename"] == "SyntaxError"
    assert "per loop" in out["magic"][0]["text"]
    [refused] = out["input"]
    assert refused["ename"] == "StdinNotImplementedError" and refused["evalue"] == INPUT_REFUSED
    assert out["state"][0]["data"]["text/plain"] == "80"  # x from an earlier cell
    assert out["cleared"] == [{"output_type": "stream", "name": "stdout", "text": "kept\n"}]
    assert out["sys.exit"][0]["ename"] == "SystemExit"  # as IPython shows it; the run goes on
    assert out["after exit"][0]["text"] == "still running\n"
    counts = [c.execution_count for c in code(execution)]
    assert counts == list(range(1, len(counts) + 1))
    # errors are where the grader looks for them, each in its cell
    assert [e.ename for e in execution.cell_errors] == [
        "ValueError", "SyntaxError", "StdinNotImplementedError", "SystemExit",
    ]  # fmt: skip


@pytest.mark.slow
def test_both_engines_give_the_same_notebook(server: Path, tmp_path: Path) -> None:
    """Cell by cell, the kernel engine and the in-process one give the same outputs (the
    refusal of input() aside, which each words its own way)."""

    def shape(execution: Execution) -> list[list[tuple]]:
        assert execution.notebook is not None
        return [
            [
                (
                    o["output_type"],
                    o.get("name"),
                    o.get("text"),
                    o.get("ename"),
                    sorted(o.get("data", {})),
                )
                for o in c.outputs
            ]
            for c in code(execution)
            # ipykernel does not capture what reaches fd 1 directly (it goes to the
            # grader's own terminal); the in-process engine keeps it in its cell
            if not any(k in c.source for k in ("input(", "%timeit", "os.write"))
        ]

    fast = run(notebook(*CELLS.values()), tmp_path / "a", server=server)
    kernel = run(notebook(*CELLS.values()), tmp_path / "b")
    assert shape(fast) == shape(kernel)


def test_a_cell_past_its_limit_stops_the_run_and_keeps_what_ran(
    server: Path, tmp_path: Path
) -> None:
    # No kernel code here to raise in the cell: the engine's own backstop kills the child.
    execution = run(notebook('print("first")', "while True:\n    pass", 'print("never")'),
                    tmp_path, server=server, cell_timeout=1)  # fmt: skip
    assert execution.stopped.startswith("a cell ran past the 1 s limit and went on after")
    assert not execution.kernel_died
    first = code(execution)[0]
    assert first.outputs[0]["text"] == "first\n"


def test_the_whole_notebook_has_a_limit(server: Path, tmp_path: Path) -> None:
    execution = run(notebook("import time", "time.sleep(60)"), tmp_path, server=server,
                    total_timeout=1.5)  # fmt: skip
    assert execution.stopped == "the notebook ran past its total limit of 1.5 s"
    assert execution.seconds < 30


@pytest.mark.parametrize(
    # a real crash: a signal the process sends itself is ignored by PID 1 of a namespace
    "how",
    ["import os\nos._exit(3)", "import ctypes\nctypes.string_at(0)"],
)
def test_a_process_that_exits_or_crashes_is_a_dead_kernel(
    server: Path, tmp_path: Path, how: str
) -> None:
    execution = run(notebook('print("before")', how, 'print("after")'), tmp_path, server=server)
    assert execution.kernel_died
    assert (
        execution.stopped == "the kernel died (the process running the notebook exited or crashed)"
    )
    assert code(execution)[0].outputs[0]["text"] == "before\n"
    assert not code(execution)[2].outputs


def test_output_past_the_limits_is_not_kept(
    server: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Straight to the file descriptor: capped by the engine itself at output_kb.
    execution = run(notebook('import os\nos.write(1, b"x" * 50_000)'), tmp_path, server=server,
                    output_kb=4)  # fmt: skip
    text = code(execution)[0].outputs[-1]["text"]
    assert text.startswith("x" * 4096) and "[autograder: output beyond 4 kB not kept]" in text
    assert len(text) < 5000
    # Python-level printing with the kernel code's cap removed: the grader stops reading a
    # cell's outputs past its limit, and says so.
    monkeypatch.setattr(engine, "MESSAGE_LIMIT", 100_000)
    execution = run(notebook('print("y" * 200_000)', 'print("after")'), tmp_path, server=server)
    assert execution.stopped is not None and "could not be kept" in execution.stopped
    # Each cell under that limit, the notebook over it (the red team's 30 cells of 60 MB
    # took the grader to 2.19 GB): stopped at the cell that passes it, in the grader.
    cells = ['print("z" * 60_000)'] * 3 + ['print("after")']
    execution = run(notebook(*cells), tmp_path, server=server)
    assert execution.stopped is not None and "could not be kept" in execution.stopped
    assert code(execution)[0].outputs and not code(execution)[3].outputs
    # the same in a Jupyter kernel, where nbclient gathers the outputs
    execution = run(notebook(*cells), tmp_path / "kernel", server=None)
    assert execution.stopped is not None and "could not be kept" in execution.stopped
    assert code(execution)[0].outputs and not code(execution)[3].outputs


def test_a_child_of_the_fork_server_inherits_nothing_of_it(server: Path, tmp_path: Path) -> None:
    """The server's own modules are gone and every descriptor it had open is /dev/null in
    the child (the grader never forks a notebook's process itself: test_secrets.py)."""
    cell = (
        "import os, sys, json\n"
        "fds = {d: os.path.realpath(f'/proc/self/fd/{d}') for d in os.listdir('/proc/self/fd')}\n"
        "ours = sorted(m for m in sys.modules if m.split('.')[0] == 'backprop_lab')\n"
        "print(json.dumps([fds, ours]))"
    )
    ex = run(notebook(cell), tmp_path, server=server)
    fds, grader_modules = json.loads(ex.notebook.cells[-1].outputs[0]["text"])
    assert grader_modules == []
    opened = {target for fd, target in fds.items() if int(fd) > 2}
    # the cells' output capture is an unnamed file of its own in its /tmp
    assert all(
        t == "/dev/null"
        or t.startswith(("socket:", "/proc/"))
        or (t.startswith("/tmp/#") and t.endswith(" (deleted)"))
        for t in opened
    ), fds


def test_the_engine_is_chosen_in_one_place(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from backprop_lab.verbs.cli import main

    assert engine.resolve("auto") == "inprocess" and engine.resolve("kernel") == "kernel"
    with pytest.raises(ValueError, match="unknown engine"):
        engine.resolve("fast")
    monkeypatch.setattr(engine, "available", lambda: False)
    assert engine.resolve("auto") == "kernel"  # where it cannot run, kernels, as before
    with pytest.raises(ValueError, match="use --engine kernel here"):
        engine.resolve("inprocess")
    # asking for it where it cannot run is an error, never a silent switch
    nb = tmp_path / "matmul.ipynb"
    nbformat.write(notebook("pass"), nb)
    assert main(["check", str(nb), "--engine", "inprocess"]) == 2


def test_a_cell_reaches_the_process_only_when_it_is_its_turn(server: Path, tmp_path: Path) -> None:
    """As in a kernel: the grader's last cell, which carries its inputs, is not in the
    notebook's process while the student's cells run, for them to read."""
    snoop = (  # strings are found through the containers that hold them
        "import gc\n"
        "def snoop():\n"
        "    marker = ''.join(['GRADER_', 'INPUTS'])  # a local, in no dict; not a constant\n"
        "    def holds(o):\n"
        "        items = o.values() if isinstance(o, dict) else o\n"
        "        return any(isinstance(x, str) and marker in x for x in items)\n"
        "    return any(holds(o) for o in gc.get_objects() if isinstance(o, (dict, list, tuple)))\n"
        "print(snoop())"
    )
    execution = run(notebook(snoop, "GRADER_INPUTS = 42"), tmp_path, server=server)
    printed = [o["text"] for o in code(execution)[0].outputs if o.get("name") == "stdout"]
    assert printed == ["False\n"]


FORGED = {
    "not an object": "[1]",
    "outputs that are not outputs": '{"done": 0, "outputs": ["x"], "execution_count": 1}',
    "another cell's outputs": '{"done": 7, "outputs": [], "execution_count": 1}',
}


@pytest.mark.parametrize("forged", FORGED.values(), ids=FORGED.keys())
def test_a_notebook_that_writes_to_the_grader_s_socket_is_stopped(
    server: Path, tmp_path: Path, forged: str
) -> None:
    """The socket is within reach of the notebook's code: what it sends there is checked,
    and anything but the cell's own outputs stops the run as a dead process would, with
    the grader unharmed."""
    cell = (
        "import gc, socket\n"
        f"body = {forged!r}.encode()\n"
        "for o in gc.get_objects():\n"
        "    if isinstance(o, socket.socket):\n"
        "        try:\n"
        "            o.sendall(len(body).to_bytes(8, 'big') + body)\n"
        "        except OSError:\n"
        "            pass  # the fork server's sockets, closed in this process\n"
    )
    execution = run(notebook(cell, 'print("after")'), tmp_path, server=server)
    assert execution.stopped is not None and execution.stopped.startswith("the kernel died")
    assert not code(execution)[1].outputs  # nothing ran after it


@pytest.mark.slow
def test_without_its_server_a_notebook_still_runs_in_a_kernel(tmp_path: Path) -> None:
    """Grading never depends on the fork server being alive: one that has gone (killed,
    its socket left behind) means a kernel started the ordinary way."""
    gone = tmp_path / "server.sock"
    gone.touch()
    execution = run(notebook('print("ran")'), tmp_path, server=gone)
    assert execution.stopped is None
    assert code(execution)[0].outputs[0]["text"] == "ran\n"
    assert "fork" not in execution.details  # no child was forked: a kernel ran it
