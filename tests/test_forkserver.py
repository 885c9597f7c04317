"""The fork server (backprop_lab/run/forkserver/): kernels forked from a process that has
imported torch are real, separate, fresh kernels; Jupyter's interrupts and kills reach
them; none outlives its grading; and grading goes on when the server is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager

from backprop_lab.run import forkserver, sandbox
from backprop_lab.run.forkclient import process_alive

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not forkserver.available(), reason="fork servers are Linux-only"),
]


@pytest.fixture
def server() -> Iterator[forkserver.ForkServer]:
    started = forkserver.start()
    assert started is not None, "the fork server did not start"
    yield started
    started.close()


def _run(km: KernelManager, code: str, timeout: float = 30) -> dict:
    """Execute `code` in the kernel; return the reply content and the stream text."""
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=timeout)
        out: list[str] = []
        reply = kc.execute_interactive(
            code,
            timeout=timeout,
            output_hook=lambda m: (
                out.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None
            ),
        )
        return {**reply["content"], "stdout": "".join(out)}
    finally:
        kc.stop_channels()


def sandbox_env(folder: Path) -> dict[str, str]:
    """A kernel's environment with the sandbox it must enter (the server forks no child
    without one): here Landlock, limits and seccomp, without namespaces, so that the
    kernel is the server's own child and sees the test's environment."""
    found = {"namespaces": False, "landlock": sandbox.probe()["landlock"]}
    policy = sandbox.policy(scratch=str(folder), sockets=str(folder),
                            read=sandbox.kernel_reads(), listable=sandbox.kernel_lists(),
                            memory_mb=None, found=found)  # fmt: skip
    return {**os.environ, **sandbox.environment(policy)}


def _kernel(server: forkserver.ForkServer | None, tmp_path: Path) -> KernelManager:
    extra = {"kernel_spec_manager": server.kernel_specs()} if server else {}
    km = KernelManager(kernel_name="python3", transport="ipc", ip=str(tmp_path / "k"),
                       connection_file=str(tmp_path / "kernel.json"), **extra)  # fmt: skip
    km.start_kernel(cwd=str(tmp_path), env=sandbox_env(tmp_path))
    return km


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


PROBE = (
    "import os, sys, random\n"
    "print(os.getpid(), os.getppid(), os.getcwd(), random.random(), "
    "'torch' in sys.modules, 'backprop_lab' in sys.modules, os.environ.get('PROBE_VAR'))"
)


def test_forked_kernels_are_fresh_separate_processes(
    server: forkserver.ForkServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROBE_VAR", "from-the-grader")
    seen = []
    for i in range(2):
        folder = tmp_path / f"k{i}"
        folder.mkdir()
        km = _kernel(server, folder)
        try:
            reply = _run(km, PROBE)
            keeper = reply["stdout"].split()[1]  # the kernel's parent: the sandbox's keeper
            keeper_stat = Path(f"/proc/{keeper}/stat").read_text()
        finally:
            km.shutdown_kernel(now=True)
        assert reply["status"] == "ok", reply
        pid, _parent, cwd, rand, torch_loaded, grader_loaded, var = reply["stdout"].split()
        # forked by the server (torch already imported there), in the folder and with the
        # environment Jupyter asked for, without the server's own modules
        # (through the sandbox's keeper, which the server forked)
        assert int(keeper_stat.rsplit(")", 1)[1].split()[1]) == server.process.pid
        assert Path(cwd) == folder
        assert torch_loaded == "True" and grader_loaded == "False"
        assert var == "from-the-grader"
        seen.append((int(pid), rand))
    (pid_a, rand_a), (pid_b, rand_b) = seen
    assert pid_a != pid_b and pid_a != server.process.pid
    assert rand_a != rand_b, "each kernel must re-seed its random numbers, as a new process does"


def test_interrupt_reaches_the_forked_kernel(server: forkserver.ForkServer, tmp_path: Path) -> None:
    km = _kernel(server, tmp_path)
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=30)
        msg_id = kc.execute("import time\ntime.sleep(60)")
        time.sleep(1.0)
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=20)
        # wait_for_ready may have asked twice under load: a late kernel_info reply comes first
        while reply["msg_type"] == "kernel_info_reply":
            reply = kc.get_shell_msg(timeout=20)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        kc.stop_channels()
        assert _run(km, "print(6 * 7)")["stdout"].strip() == "42"  # still alive
    finally:
        km.shutdown_kernel(now=True)


def test_killing_the_kernels_stand_in_kills_the_kernel(
    server: forkserver.ForkServer, tmp_path: Path
) -> None:
    # What Jupyter does to a kernel that ignores shutdown, and what the grader does to a
    # notebook past its total limit: SIGKILL to the process it started.
    km = _kernel(server, tmp_path)
    kernel_pid = int(_run(km, "import os; print(os.getpid())")["stdout"])
    km.provisioner.process.kill()
    assert _gone(kernel_pid), "the forked kernel outlived the process Jupyter killed"
    km.cleanup_resources()


def test_a_kernel_that_exits_is_seen_dead_by_jupyter(
    server: forkserver.ForkServer, tmp_path: Path
) -> None:
    km = _kernel(server, tmp_path)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=30)
    kc.execute("import os; os._exit(3)")
    deadline = time.monotonic() + 10
    while km.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    kc.stop_channels()
    assert not km.is_alive()
    assert km.provisioner.process.wait(timeout=5) == 3  # the kernel's own status
    km.cleanup_resources()


def test_a_kernel_lives_on_when_the_server_dies_and_kernels_still_start(
    server: forkserver.ForkServer, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    km = _kernel(server, tmp_path / "a")
    try:
        # a kernel cannot kill it (test_sandbox_modes.py): the out-of-memory killer can
        server.process.kill()
        server.process.wait(timeout=10)
        assert _run(km, "print('still here')")["stdout"].strip() == "still here"
        # the server is gone: the next kernel starts the ordinary way
        other = _kernel(server, tmp_path / "b")
        try:
            assert _run(other, "print(6 * 7)")["stdout"].strip() == "42"
        finally:
            other.shutdown_kernel(now=True)
    finally:
        km.shutdown_kernel(now=True)


def test_nothing_outlives_a_grader_killed_outright(tmp_path: Path) -> None:
    # A grader killed by SIGKILL (the out-of-memory killer, a cancelled CI job) must not
    # leave its fork server, a kernel's stand-in or a kernel behind.
    script = f"""
import os, sys, time
from pathlib import Path
from jupyter_client.manager import KernelManager
from backprop_lab.run import forkserver
from test_forkserver import sandbox_env
s = forkserver.start()
km = KernelManager(kernel_name="python3", transport="ipc", ip={str(tmp_path / "k")!r},
                   connection_file={str(tmp_path / "kernel.json")!r},
                   kernel_spec_manager=s.kernel_specs())
km.start_kernel(cwd={str(tmp_path)!r}, env=sandbox_env(Path({str(tmp_path)!r})))
kc = km.client(); kc.start_channels(); kc.wait_for_ready(timeout=30)
def show(msg):
    if msg["msg_type"] == "stream":
        print(msg["content"]["text"].strip(), flush=True)
kc.execute_interactive("import os; print(os.getpid())", output_hook=show)
print(s.process.pid, km.provisioner.process.pid, s.folder, flush=True)
time.sleep(600)
"""
    here = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    grader = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": here})  # fmt: skip
    try:
        kernel_pid = int(grader.stdout.readline())
        server, client, folder = grader.stdout.readline().split()
        server_pid, client_pid = int(server), int(client)
        os.kill(grader.pid, signal.SIGKILL)
        grader.wait()
        for what, pid in (("server", server_pid), ("client", client_pid), ("kernel", kernel_pid)):
            assert _gone(pid), f"the {what} outlived the grader"
        assert not Path(folder).exists(), "the server's folder was left behind"
    finally:
        grader.kill()
