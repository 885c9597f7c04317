"""The operating-system sandbox (backprop_lab/run/sandbox/), attacked directly: a process
enters it exactly as a kernel does, then tries what a hostile notebook would. Each test
asserts the outcome outside the sandbox too (the victim file unchanged, the listener
never reached, no process left), not only the error seen inside. No kernel is started:
each case is one short Python process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from notebook_tools import ROOT
from process_tools import processes_with

from backprop_lab.options import GradingError, Options, check_sandbox
from backprop_lab.run import sandbox

ATTEMPT = """
import importlib, json, os, sys
from backprop_lab.run import sandbox
layers = sandbox.enter(json.loads(os.environ["POLICY"]))
results = {"layers": layers}
def attempt(name, f):
    try:
        results[name] = ["done", repr(f())[:300]]
    except BaseException as e:
        results[name] = ["refused", f"{type(e).__name__}: {e}"[:300]]
"""


def run_inside(
    tmp_path: Path, body: str, *, found: dict | None = None, timeout: float = 60, **limits
) -> dict:
    """Run `body` (calls of `attempt(name, fn)`) in a process that entered the sandbox a
    kernel would get (its folders where the pipeline puts them); return {name: [outcome,
    detail]} and the layers."""
    folders = Path(tempfile.mkdtemp(prefix="autograde-test-", dir=sandbox.host_folder()))
    scratch, sockets = folders / "notebook", folders / "kernel"
    scratch.mkdir()
    sockets.mkdir(mode=0o700)
    policy = sandbox.policy(scratch=str(scratch), sockets=str(sockets),
                            read=sandbox.kernel_reads(), listable=sandbox.kernel_lists(),
                            memory_mb=limits.pop("memory_mb", 1024),
                            found=found, **limits)  # fmt: skip
    script = ATTEMPT + textwrap.dedent(body) + '\nprint("RESULTS" + json.dumps(results))\n'
    env = {**os.environ, "POLICY": json.dumps(policy), "AUTOGRADE_SOCKETS": f"{sockets}/k"}
    try:
        proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULTS")]
        assert lines, proc.stdout + proc.stderr
        results = json.loads(lines[-1].removeprefix("RESULTS"))
        left = sorted(p.name for p in sockets.iterdir() if p.name != "root")
        assert left == [], f"the sandbox wrote into its sockets folder: {left}"
        if "namespaces" in results["layers"]:  # its folder was a tmpfs: nothing on the disk
            assert list(scratch.iterdir()) == []
    finally:
        shutil.rmtree(folders, ignore_errors=True)
    return results


def refused(results: dict, *names: str) -> None:
    for name in names:
        assert results[name][0] == "refused", (name, results[name])


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file of the instructor's, outside the notebook's folder."""
    path = tmp_path / "instructor" / "grades.csv"
    path.parent.mkdir()
    path.write_text("alice,15\n")
    return path


def test_full_sandbox_layers_and_identity(tmp_path: Path, sandboxed: dict) -> None:
    r = run_inside(
        tmp_path,
        """
attempt("pid", os.getpid)
attempt("uid", os.getuid)
attempt("caps", lambda: [ln for ln in open("/proc/self/status") if ln.startswith("CapEff")][0])
attempt("processes", lambda: sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
attempt("mount", lambda: __import__("ctypes").CDLL(None, use_errno=True).mount(
    b"none", b"/usr", b"tmpfs", 0, None) or __import__("ctypes").get_errno())
""",
    )
    assert r["layers"] == ["namespaces", "landlock", "rlimits", "seccomp"]
    assert r["pid"] == ["done", "1"]  # PID 1 of a namespace of its own
    assert r["uid"][1] != "0"  # nobody special inside, even when the grader is root
    assert "CapEff:\\t0000000000000000" in r["caps"][1]
    assert r["processes"] == ["done", "[1]"]  # nothing outside is visible
    assert r["mount"][1] != "0"  # mounting fails: no capability, and Landlock forbids it


def test_reads_only_what_a_notebook_needs(tmp_path: Path, sandboxed: dict) -> None:
    classmate = tmp_path / "class" / "bob" / "backprop.ipynb"
    classmate.parent.mkdir(parents=True)
    classmate.write_text("{}")
    r = run_inside(
        tmp_path,
        f"""
attempt("solutions", lambda: open({str(ROOT / "solutions/backprop/backprop.ipynb")!r}).read(10))
attempt("reference", lambda: __import__("backprop_lab.reference"))
attempt("answers", lambda: open({str(ROOT / "backprop_lab/reference/backprop.py")!r}).read(10))
attempt("grader", lambda: open({str(ROOT / "backprop_lab/verbs/cli.py")!r}).read(10))
attempt("classmate", lambda: open({str(classmate)!r}).read())
attempt("home", lambda: os.listdir(os.path.expanduser("~root")))
attempt("repository", lambda: os.listdir({str(ROOT)!r}))
attempt("coursedata", lambda: importlib.import_module("backprop_lab.coursedata").get_data().x_train
        .shape)
attempt("torch", lambda: float(__import__("torch").ones(3).sum()))
""",
    )
    refused(r, "solutions", "reference", "answers", "grader", "classmate", "home")
    # the repository's folder is refused, or (under a writable /tmp) holds the package alone
    assert r["repository"][0] == "refused" or r["repository"][1] == "['backprop_lab']"
    assert r["coursedata"][0] == "done" and r["torch"] == ["done", "3.0"]


def test_writes_stay_in_its_own_tmpfs(tmp_path: Path, victim: Path, sandboxed: dict) -> None:
    v, d = str(victim), str(victim.parent)
    r = run_inside(
        tmp_path,
        f"""
import ctypes, sqlite3, subprocess
attempt("shell", lambda: subprocess.run("echo forged > {v} && echo x > {d}/new", shell=True,
                                        check=True))
attempt("os.system", lambda: os.system("echo forged > {v}"))
attempt("ctypes", lambda: ctypes.CDLL(None).open(b"{d}/ctypes", 0o101, 0o644))
attempt("truncate", lambda: os.open({v!r}, os.O_WRONLY | os.O_TRUNC))
attempt("rename", lambda: os.rename("mine.txt", {d + "/renamed"!r}))
attempt("link", lambda: os.link("mine.txt", {d + "/linked"!r}))
attempt("dir_fd", lambda: os.open("dirfd", os.O_CREAT | os.O_WRONLY,
                                  dir_fd=os.open({d!r}, os.O_RDONLY)))
attempt("sqlite3", lambda: sqlite3.connect({d + "/db.sqlite"!r}).execute("create table t(x)"))
attempt("python-env", lambda: open(os.path.dirname(os.__file__) + "/evil.py", "w"))
attempt("sockets", lambda: open(os.path.dirname(os.environ["AUTOGRADE_SOCKETS"]) + "/x", "w"))
attempt("mine", lambda: open("mine.txt", "w").write("scratch is writable"))
attempt("tmp", lambda: open("/tmp/t", "w").write("so is /tmp"))
""".replace('attempt("rename"', 'open("mine.txt", "w").write("x")\nattempt("rename"'),
    )
    refused(r, "shell", "truncate", "rename", "link", "dir_fd", "sqlite3", "python-env", "sockets")
    assert r["ctypes"][1] == "-1"  # libc's open failed
    assert r["os.system"][1] != "0"  # the shell's redirect failed
    assert victim.read_text() == "alice,15\n"
    assert sorted(p.name for p in victim.parent.iterdir()) == ["grades.csv"]
    assert r["mine"][0] == r["tmp"][0] == "done"


def test_no_network(tmp_path: Path, sandboxed: dict) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.5)
    r = run_inside(
        tmp_path,
        f"""
import socket
attempt("tcp", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2))
attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(
    b"x", ("127.0.0.1", {udp.getsockname()[1]})))
attempt("outside", lambda: socket.create_connection(("1.1.1.1", 53), timeout=2))
attempt("abstract", lambda: socket.socket(socket.AF_UNIX).connect(b"\\0autograde-test"))
""",
    )
    refused(r, "tcp", "outside", "abstract")
    with pytest.raises(TimeoutError):
        listener.accept()  # nothing reached the listener
    with pytest.raises(TimeoutError):
        udp.recv(10)  # a datagram "sent" inside went to the namespace's own loopback
    listener.close()
    udp.close()


def test_processes_outside_cannot_be_seen_or_signalled(tmp_path: Path, sandboxed: dict) -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        r = run_inside(
            tmp_path,
            f"""
import signal, subprocess
attempt("kill", lambda: os.kill({bystander.pid}, signal.SIGKILL))
attempt("stop-grader", lambda: os.kill({os.getpid()}, signal.SIGSTOP))
attempt("kill-all", lambda: subprocess.run("kill -9 -1; pkill -9 sleep; echo done",
                                           shell=True, capture_output=True).returncode)
attempt("cmdline", lambda: open("/proc/{os.getpid()}/cmdline").read())
""",
        )
        refused(r, "kill", "stop-grader", "cmdline")
        assert bystander.poll() is None  # alive
    finally:
        bystander.kill()
        bystander.wait()


def test_every_process_it_starts_dies_with_it(tmp_path: Path, sandboxed: dict) -> None:
    marker = f"autograde-detached-{os.getpid()}"
    started = time.monotonic()
    r = run_inside(
        tmp_path,
        f"""
import subprocess
# detached: a new session, double-forked, holding the standard output
attempt("daemon", lambda: subprocess.Popen(
    ["sh", "-c", "(sleep 300 {marker} &) ; exec sleep 300 {marker}"],
    start_new_session=True, stdout=sys.stdout, stderr=sys.stderr).pid)
attempt("child", lambda: os.fork() or os.execvp("sleep", ["sleep", "300", "{marker}"]))
""",
    )
    assert r["daemon"][0] == "done"
    # run_inside's capture_output waited for the pipe to close: nothing kept it open
    assert time.monotonic() - started < 30
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker) == []


def test_limits_are_hard(tmp_path: Path, sandboxed: dict) -> None:
    r = run_inside(
        tmp_path,
        """
import resource, subprocess
attempt("raise-memory", lambda: resource.setrlimit(resource.RLIMIT_DATA, (2**40, 2**40)))
attempt("raise-memory-soft", lambda: resource.setrlimit(
    resource.RLIMIT_DATA, (2**40, resource.getrlimit(resource.RLIMIT_DATA)[1])))
attempt("allocate", lambda: len(bytearray(2 * 2**30)))
attempt("big-file", lambda: open("big", "wb").write(b"x" * (70 * 2**20)))
def fork_bomb():
    children = []
    try:
        for _ in range(1000):
            children.append(subprocess.Popen(["sleep", "30"]))
    finally:
        n = len(children)
        for c in children:
            c.kill()
    return n
attempt("processes", fork_bomb)
""",
        memory_mb=512,
        file_mb=64,
        processes=300,
    )
    refused(r, "raise-memory", "raise-memory-soft", "allocate", "big-file", "processes")
    assert "MemoryError" in r["allocate"][1]


def test_landlock_alone_where_namespaces_are_refused(
    tmp_path: Path, victim: Path, sandboxed: dict
) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    r = run_inside(
        tmp_path,
        f"""
import socket, subprocess
attempt("solutions", lambda: open({str(ROOT / "solutions/backprop/backprop.ipynb")!r}).read(10))
attempt("shell", lambda: subprocess.run("echo forged > {victim}", shell=True, check=True))
attempt("tcp", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2))
attempt("mine", lambda: open("mine.txt", "w").write("x"))
""",
        found={"namespaces": False, "landlock": sandboxed["landlock"]},
    )
    listener.close()
    assert r["layers"] == ["landlock", "rlimits", "seccomp"]
    refused(r, "solutions", "shell", "tcp")
    assert r["mine"][0] == "done"
    assert victim.read_text() == "alice,15\n"


def test_a_machine_without_a_sandbox_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    none = {"namespaces": False, "landlock": 0}
    assert "not isolated" in sandbox.describe(none)
    assert "partly isolated" in sandbox.describe({"namespaces": False, "landlock": 7})
    p = sandbox.policy(scratch="/x", sockets="/y", read=[], memory_mb=None, require=True,
                       found=none)  # fmt: skip
    with pytest.raises(sandbox.SandboxError, match="not isolated"):
        sandbox.enter(p)
    monkeypatch.setattr(sandbox.probing, "_PROBED", none)
    # an ordinary user's grader (root without walls refuses outright: test_sandbox_modes.py)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "not isolated" in check_sandbox(Options())
    with pytest.raises(GradingError, match="--require-sandbox"):
        check_sandbox(Options(require_sandbox=True))


def test_the_cli_warns_on_every_run_and_refuses_when_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from backprop_lab.verbs.cli import main

    monkeypatch.setattr(sandbox.probing, "_PROBED", {"namespaces": False, "landlock": 0})
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # an ordinary user's grader
    broken = tmp_path / "backprop.ipynb"
    broken.write_text("{not json")
    assert main(["check", str(broken)]) == 2  # the notebook, not the sandbox, stops it
    assert "student code is not isolated on this machine" in capsys.readouterr().err
    assert main(["check", str(broken), "--require-sandbox"]) == 2
    err = capsys.readouterr().err
    assert "--require-sandbox: student code is not isolated" in err
    assert "not valid notebook JSON" not in err  # refused before reading anything


def test_sigint_reaches_the_kernel_not_its_stand_in(tmp_path: Path, sandboxed: dict) -> None:
    """Jupyter interrupts a kernel by signalling its process group: the process left
    outside ignores it, the kernel (PID 1 inside, with a handler) gets it."""
    scratch, sockets = tmp_path / "notebook", tmp_path / "kernel"
    scratch.mkdir()
    sockets.mkdir()
    policy = sandbox.policy(scratch=str(scratch), sockets=str(sockets),
                            read=sandbox.kernel_reads(), listable=sandbox.kernel_lists(),
                            memory_mb=None)  # fmt: skip
    script = ATTEMPT + textwrap.dedent("""
        import signal, time
        got = []
        signal.signal(signal.SIGINT, lambda *a: got.append(1))
        print("ready", flush=True)
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        sys.exit(7 if got else 1)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                            env={**os.environ, "POLICY": json.dumps(policy)},
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "ready"
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=30) == 7  # the kernel's status, through its stand-in
