"""The red team's attacks, on every kind of machine the grader runs on, simulated here by
the layers each one offers: namespaces + Landlock 7 (this machine), Landlock only (ABI 7,
and ABI 4 as on Ubuntu 24.04's kernel), namespaces only, and neither. Each attack is
judged by its outcome outside the sandbox (the grader's process not signalled or read,
the victim file unchanged, the listener never reached, the fork server never asked),
and each mode asserts what holds there: MODES_HOLD is the README's table."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
from pathlib import Path

import pytest
from notebook_tools import ROOT
from test_sandbox import run_inside

from backprop_lab.run import forkserver, sandbox
from backprop_lab.run.forkclient import ask, read_token

FOUND = sandbox.probe()
ABI = FOUND["landlock"]
MODES = {
    "namespaces+landlock": {"namespaces": True, "landlock": ABI},
    "landlock-only": {"namespaces": False, "landlock": ABI},
    "landlock4-only": {"namespaces": False, "landlock": min(ABI, 4)},
    "namespaces-only": {"namespaces": True, "landlock": 0},
    "neither": {"namespaces": False, "landlock": 0},
}
ATTACKS = ("read-solutions", "read-answers", "write-outside", "grader-cmdline", "grader-environ",
           "signal-grader", "libc-signal-grader", "ptrace-grader", "tcp", "udp",
           "fork-server", "io_uring", "keyctl", "new-user-namespace", "memfd",
           "run-written-file", "core_pattern")  # fmt: skip
# What each mode holds (every attack above refused or without effect): all of them, except
# the file attacks where nothing guards files (neither layer), which the grader refuses
# to run as root (see test_neither_as_root...) and warns about otherwise.
FILES = ("read-solutions", "read-answers", "write-outside", "run-written-file", "grader-cmdline",
         "grader-environ")  # fmt: skip
MODES_HOLD = {mode: set(ATTACKS) - (set(FILES) if mode == "neither" else set()) for mode in MODES}


def grading_folders(found: dict, read: list[str] | None = None, **limits) -> tuple[Path, dict]:
    """A grading's folders (the notebook's, its sockets') where the pipeline puts them, and
    the sandbox policy for them on the machine kind `found`. The caller removes them."""
    import tempfile

    folders = Path(tempfile.mkdtemp(prefix="autograde-test-", dir=sandbox.host_folder()))
    (folders / "nb").mkdir()
    (folders / "k").mkdir(mode=0o700)
    limits.setdefault("memory_mb", 1024)
    policy = sandbox.policy(scratch=str(folders / "nb"), sockets=str(folders / "k"),
                            read=sandbox.kernel_reads() if read is None else read,
                            listable=sandbox.kernel_lists(),
                            found=found, **limits)  # fmt: skip
    return folders, policy


def _available(found: dict) -> bool:
    return (not found["namespaces"] or FOUND["namespaces"]) and (
        not found["landlock"] or FOUND["landlock"]
    )


# the module's fork server is started once (it imports torch): one worker runs these tests
pytestmark = pytest.mark.xdist_group("sandbox-modes")


@pytest.fixture(scope="module")
def server():
    started = forkserver.start(kernels=False)
    assert started is not None
    yield started
    started.close()


@pytest.fixture(scope="module")
def listeners():
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(4)
    tcp.setblocking(False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    yield tcp, udp
    tcp.close()
    udp.close()


def _reached(tcp: socket.socket, udp: socket.socket) -> tuple[bool, bool]:
    got = [False, False]
    try:
        tcp.accept()[0].close()
        got[0] = True
    except BlockingIOError:
        pass
    try:
        udp.recv(64)
        got[1] = True
    except BlockingIOError:
        pass
    return got[0], got[1]


BODY = """
import ctypes, shutil, socket, subprocess, signal
libc = ctypes.CDLL(None, use_errno=True)
def check(result):  # a C call's result: refused when -1
    if result == -1:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return result
def ask_server():
    s = socket.socket(socket.AF_UNIX)
    s.connect(SERVER)
    body = json.dumps({"kind": "shell", "cwd": "/", "env": {}}).encode()
    s.sendall(len(body).to_bytes(8, "big") + body)
    return s.recv(200).decode()
def run_written():
    shutil.copy("/bin/true", "mine")
    os.chmod("mine", 0o755)
    return subprocess.run(["./mine"], check=True)
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return s.sendto(b"x", ("127.0.0.1", UDP))
attempt("read-solutions", lambda: open(SOLUTIONS).read(10))
attempt("read-answers", lambda: open(ANSWERS).read(10))
def course_data():
    return importlib.import_module("backprop_lab.coursedata").get_data().x_train.shape
attempt("course-data", course_data)
attempt("write-outside", lambda: open(VICTIM, "a").write("forged"))
attempt("grader-cmdline", lambda: open(f"/proc/{GRADER}/cmdline").read())
attempt("grader-environ", lambda: open(f"/proc/{GRADER}/environ").read())
attempt("signal-grader", lambda: os.kill(GRADER, 0))
attempt("libc-signal-grader", lambda: check(libc.kill(GRADER, 0)))
attempt("ptrace-grader", lambda: check(libc.ptrace(16, GRADER, 0, 0)))
attempt("tcp", lambda: socket.create_connection(("127.0.0.1", TCP), timeout=2))
attempt("udp", udp)
attempt("fork-server", ask_server)
attempt("io_uring", lambda: check(libc.syscall(425, 4, ctypes.create_string_buffer(120))))
attempt("keyctl", lambda: check(libc.syscall(250, 0, -3, 0, 0, 0)))
attempt("new-user-namespace", lambda: check(libc.unshare(0x10000000)))
attempt("memfd", lambda: os.memfd_create("x"))
attempt("run-written-file", run_written)
attempt("core_pattern", lambda: open("/proc/sys/kernel/core_pattern", "w"))
attempt("uid", os.getuid)
attempt("caps", lambda: [ln for ln in open("/proc/self/status") if ln.startswith("CapEff")][0])
"""


@pytest.mark.parametrize("mode", MODES, ids=MODES.keys())
def test_each_attack_in_each_mode(mode, tmp_path: Path, server, listeners) -> None:
    found = MODES[mode]
    if not _available(found):
        pytest.skip(f"this machine cannot simulate {mode}")
    victim = tmp_path / "instructor" / "grades.csv"
    victim.parent.mkdir()
    victim.write_text("alice,15\n")
    tcp, udp = listeners
    given = {"SOLUTIONS": str(ROOT / "solutions/backprop/backprop.ipynb"), "VICTIM": str(victim),
             "ANSWERS": str(ROOT / "backprop_lab/reference/backprop.py"),
             "GRADER": os.getpid(), "TCP": tcp.getsockname()[1], "UDP": udp.getsockname()[1],
             "SERVER": str(server.socket_path)}  # fmt: skip
    head = "".join(f"{k} = {v!r}\n" for k, v in given.items())
    as_root_without_walls = mode == "neither" and os.geteuid() == 0
    if as_root_without_walls and any(
        not os.access(p, os.R_OK, effective_ids=False) or _private_to_root(p)
        for p in sandbox.kernel_reads()
    ):
        # nobody cannot read this machine's Python: the notebook must not run at all
        with pytest.raises(AssertionError, match="cannot read"):
            run_inside(tmp_path, head + BODY, found=found)
        return
    r = run_inside(tmp_path, head + BODY, found=found)
    held = {a for a in ATTACKS if r[a][0] == "refused"}
    reached_tcp, reached_udp = _reached(tcp, udp)
    if not reached_tcp and r["tcp"][0] == "done":
        held.add("tcp")  # connected to its own namespace's loopback, not to the listener
    if not reached_udp and r["udp"][0] == "done":
        held.add("udp")
    if r["fork-server"][0] == "done" and "refused" not in r["fork-server"][1]:
        pass  # an answer that is not a refusal: the attack worked
    elif r["fork-server"][0] == "done":
        held.add("fork-server")
    assert held >= MODES_HOLD[mode], sorted(MODES_HOLD[mode] - held)
    assert victim.read_text() == "alice,15\n" or "write-outside" not in MODES_HOLD[mode]
    assert "0000000000000000" in r["caps"][1], r["caps"]  # no capability, even as root
    # what every notebook imports stays importable, inside the package it shares with the
    # answers (Landlock alone: the package's folder listed, its files but the data's not read)
    assert r["course-data"][0] == "done", r["course-data"]
    if os.geteuid() == 0 and found["namespaces"]:
        assert r["uid"][1] == "65534", "root's notebook is nobody on the host"


def _private_to_root(path: str) -> bool:
    """Whether some folder above `path` keeps everyone but its owner out (as /root does)."""
    parts = Path(path).parts
    for i in range(2, len(parts) + 1):
        st = os.stat(os.path.join(*parts[:i]))
        if st.st_uid == 0 and not st.st_mode & 0o001:
            return True
    return False


def test_the_fork_server_refuses_a_stranger_and_a_sandboxed_peer(server, tmp_path: Path) -> None:
    """Even where `connect` is allowed: without the token, without a sandbox policy, or
    from a process under a seccomp filter (every sandboxed process is), no child."""
    policy = sandbox.environment(sandbox.policy(scratch=str(tmp_path), sockets=str(tmp_path),
                                                read=[], memory_mb=None))  # fmt: skip

    def request(token: str, env: dict) -> dict:
        with socket.socket(socket.AF_UNIX) as conn, open(os.devnull, "rb") as null:
            conn.connect(str(server.socket_path))
            fds = [null.fileno()] * 3 + [null.fileno()]
            reply, _ = ask(conn, {"kind": "shell", "cwd": str(tmp_path), "env": env,
                                  "token": token}, fds)  # fmt: skip
            return reply

    assert "token" in request("guess", policy)["error"]
    assert "outside the sandbox" in request(read_token(server.socket_path), {})["error"]
    # a process with one seccomp filter more than the server (an allow-all filter)
    script = f"""
import ctypes, json, os, socket, struct, sys
sys.path[:0] = {[str(ROOT), str(ROOT / "tests")]!r}
from backprop_lab.run.forkclient import ask, read_token
libc = ctypes.CDLL(None, use_errno=True)
prog = struct.pack("HBBI", 6, 0, 0, 0x7FFF0000)
buf = ctypes.create_string_buffer(prog)
class F(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
libc.prctl(38, 1, 0, 0, 0)
assert libc.prctl(22, 2, ctypes.byref(F(1, ctypes.cast(buf, ctypes.c_void_p))), 0, 0) == 0
conn = socket.socket(socket.AF_UNIX); conn.connect({str(server.socket_path)!r})
null = os.open(os.devnull, os.O_RDWR)
reply, _ = ask(conn, {{"kind": "shell", "cwd": "/", "env": {json.dumps(policy)},
                     "token": read_token({str(server.socket_path)!r})}}, [null] * 4)
print(json.dumps(reply))
"""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.stdout.strip(), out.stderr
    assert "inside a sandbox" in json.loads(out.stdout.strip().splitlines()[-1])["error"], (
        out.stdout + out.stderr
    )
    assert server.alive()


def test_seccomp_filter_is_what_the_docstring_says() -> None:
    """The filter, instruction by instruction, refuses each listed call on this
    architecture and lets an ordinary one through (checked by interpreting it)."""
    from backprop_lab.run.sandbox import seccomp

    if not seccomp.supported():
        pytest.skip("no seccomp filter for this architecture")
    col = 0 if os.uname().machine == "x86_64" else 1
    prog = seccomp.program(shared_host=True, scoped_signals=False, own_pid=4242)

    def verdict(nr: int, *args: int) -> int:
        arch = seccomp.AUDIT_ARCH[os.uname().machine]
        data = struct.pack("<iI Q 6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
        a, pc = 0, 0
        while True:
            code, jt, jf, k = prog[pc]
            if code == seccomp.LD_W_ABS:
                a = struct.unpack_from("<I", data, k)[0]
            elif code == seccomp.ALU_AND_K:
                a &= k
            elif code == seccomp.RET_K:
                return k
            else:
                taken = {seccomp.JEQ_K: a == k, seccomp.JGE_K: a >= k,
                         seccomp.JSET_K: bool(a & k)}[code]  # fmt: skip
                pc += jt if taken else jf
            pc += 1

    eperm = seccomp.RET_ERRNO | 1
    for name, numbers in seccomp.REFUSED.items():
        assert verdict(numbers[col]) == eperm, name
    assert verdict(seccomp.CLONE3[col]) == seccomp.RET_ERRNO | 38  # ENOSYS: glibc falls back
    assert verdict(seccomp.CLONE[col], 0x10000000) == eperm  # CLONE_NEWUSER
    assert verdict(seccomp.CLONE[col], 0x01200011) == seccomp.RET_ALLOW  # fork's flags
    assert verdict(seccomp.KILL[col], 4242, 9) == seccomp.RET_ALLOW  # itself
    assert verdict(seccomp.KILL[col], 1, 9) == eperm
    assert verdict(seccomp.KILL[col], 0, 9) == eperm  # its group holds the keeper
    assert verdict(seccomp.KILL[col], 2**32 - 1, 9) == eperm  # -1: every process
    assert verdict(seccomp.CONNECT[col]) == seccomp.RET_ERRNO | 13
    assert verdict(seccomp.SOCKET[col], 1, 1) == seccomp.RET_ALLOW  # AF_UNIX
    assert verdict(seccomp.SOCKET[col], 2, 1 | 0x80000) == seccomp.RET_ALLOW  # TCP, cloexec
    assert verdict(seccomp.SOCKET[col], 2, 2) == seccomp.RET_ERRNO | 13  # UDP
    assert verdict(seccomp.SOCKET[col], 17, 3) == seccomp.RET_ERRNO | 97  # AF_PACKET
    assert verdict(0) == seccomp.RET_ALLOW  # read
    if col == 0:
        assert verdict(0x40000000) == eperm  # x32's numbers
    inside = seccomp.program(shared_host=False, scoped_signals=True, own_pid=1)
    prog[:] = inside
    assert verdict(seccomp.KILL[col], 1, 9) == seccomp.RET_ALLOW  # a PID namespace scopes it
    assert verdict(seccomp.CONNECT[col]) == seccomp.RET_ALLOW  # its own loopback only


TREE_BOMB = """
import json, mmap, os, sys, time
from backprop_lab.run import sandbox
sandbox.enter(json.loads(os.environ["POLICY"]))
shared = mmap.mmap(-1, 700 << 20)  # shared memory: RLIMIT_DATA does not count it
for _ in range(700):
    shared.write(b"x" * (1 << 20))
for _ in range(4):  # and children, each under its own rlimit
    if os.fork() == 0:
        os.setsid()  # leaving the group does not leave the tree
        block = bytearray(300 << 20)
        time.sleep(60)
        os._exit(0)
time.sleep(60)
print("still running")
"""


@pytest.mark.parametrize("mode", ["namespaces+landlock", "landlock-only"])
def test_memory_is_limited_over_the_whole_tree(mode, tmp_path: Path) -> None:
    import subprocess
    import sys

    from process_tools import processes_with

    from backprop_lab.run.sandbox.keeper import stop_note

    found = MODES[mode]
    if not _available(found):
        pytest.skip(f"this machine cannot simulate {mode}")
    folders, policy = grading_folders(found, memory_mb=512)
    sockets = folders / "k"
    marker = f"tree-bomb-{os.getpid()}-{mode}"
    env = {**os.environ, "POLICY": json.dumps(policy)}
    try:
        proc = subprocess.run([sys.executable, "-c", TREE_BOMB, marker], capture_output=True,
                              text=True, timeout=60, env=env)  # fmt: skip
        assert "still running" not in proc.stdout
        assert proc.returncode == 137, proc.stderr
        assert "past the limit of 512 MB" in (stop_note(sockets) or ""), proc.stderr
        assert processes_with(marker) == []  # the whole tree, the setsid ones too
    finally:
        shutil.rmtree(folders, ignore_errors=True)


def test_a_root_grader_without_walls_says_so_before_grading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root with neither layer: notebooks must run as nobody; where nobody cannot read the
    Python environment, every command refuses up front, saying what to do."""
    import shutil
    import tempfile

    from backprop_lab.options import GradingError, Options, check_sandbox

    base = Path(tempfile.mkdtemp(prefix="autograde-test-", dir=sandbox.host_folder()))
    private, public = base / "private" / "python", base / "public" / "python"
    for folder, mode in ((base, 0o755), (private.parent, 0o700), (public.parent, 0o755)):
        folder.mkdir(exist_ok=True)
        os.chmod(folder, mode)
    private.mkdir()
    public.mkdir(mode=0o755)
    os.chmod(public, 0o755)
    neither = {"namespaces": False, "landlock": 0}
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(sandbox.layers, "SYSTEM", ())  # this machine's own /usr aside
    try:
        assert "cannot read" in sandbox.cannot_run(neither, read=[str(private)])
        assert sandbox.cannot_run(neither, read=[str(public)]) is None
        assert sandbox.cannot_run({"namespaces": False, "landlock": ABI or 1},
                                  read=[str(private)]) is None  # fmt: skip
        monkeypatch.setattr(sandbox.probing, "_PROBED", neither)
        monkeypatch.setattr(sandbox, "kernel_reads", lambda data_path=None: [str(private)])
        with pytest.raises(GradingError, match="nobody, who cannot read"):
            check_sandbox(Options())
    finally:
        shutil.rmtree(base)


SYSTEM_PYTHON = "/usr/bin/python3"
AS_NOBODY = """
import json, os, sys
sys.path.insert(0, REPO)
from backprop_lab.run.sandbox import enter
layers = enter(json.loads(os.environ["POLICY"]))
open("mine.txt", "w").write("x")
caps = [ln for ln in open("/proc/self/status") if ln.startswith("CapEff")][0].split()[1]
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
                  "caps": caps, "layers": layers}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="what a grader run as root does")
@pytest.mark.parametrize("mode", ["landlock-only", "neither"])
def test_a_root_grader_s_notebook_is_nobody_where_nobody_can_read_python(
    mode: str, tmp_path: Path
) -> None:
    """Without namespaces, as root, with a Python every user can read (the system's): the
    notebook runs as nobody, with no group and no capability."""
    import subprocess

    from backprop_lab.run.sandbox.system import others_can_read

    found = MODES[mode]
    if not _available(found) or not os.path.exists(SYSTEM_PYTHON):
        pytest.skip(f"no {SYSTEM_PYTHON}, or this machine cannot simulate {mode}")
    if not (others_can_read(SYSTEM_PYTHON) and others_can_read(str(ROOT / "backprop_lab"))):
        pytest.skip("the system's Python or this checkout is not readable by every user")
    folders, policy = grading_folders(found, read=[str(ROOT / "backprop_lab")])
    try:
        out = subprocess.run(
            [SYSTEM_PYTHON, "-I", "-S", "-c", f"REPO = {str(ROOT)!r}\n" + AS_NOBODY],
            env={"POLICY": json.dumps(policy), "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        seen = json.loads(out.stdout.strip().splitlines()[-1])
        assert (seen["uid"], seen["gid"], seen["groups"]) == (65534, 65534, [])
        assert int(seen["caps"], 16) == 0
        assert "seccomp" in seen["layers"]
        assert (folders / "nb" / "mine.txt").stat().st_uid == 65534
    finally:
        import shutil

        shutil.rmtree(folders, ignore_errors=True)


REFUSED_FOR_REAL = """
import ctypes, errno, json, os, sys
from backprop_lab.run import sandbox
from backprop_lab.run.sandbox import seccomp
layers = sandbox.enter(json.loads(os.environ["POLICY"]))
libc = ctypes.CDLL(None, use_errno=True)
col = 0 if os.uname().machine == "x86_64" else 1
seen = {}
for name, numbers in seccomp.REFUSED.items():
    ctypes.set_errno(0)
    result = libc.syscall(numbers[col], 0, 0, 0, 0, 0)  # null arguments: harmless if let through
    seen[name] = [result, ctypes.get_errno()]
print("SEEN" + json.dumps({"layers": layers, "seen": seen}))
"""


@pytest.mark.parametrize("mode", ["namespaces+landlock", "landlock-only"])
def test_every_refused_call_is_refused_by_the_kernel(mode: str) -> None:
    """Not only the filter as data: in a process that entered the sandbox, each refused
    system call (with null arguments, harmless had it gone through) fails with EPERM."""
    import errno
    import shutil
    import subprocess
    import sys

    from backprop_lab.run.sandbox import seccomp

    found = MODES[mode]
    if not _available(found) or not seccomp.supported():
        pytest.skip(f"this machine cannot simulate {mode}")
    folders, policy = grading_folders(found)
    try:
        out = subprocess.run([sys.executable, "-c", REFUSED_FOR_REAL], capture_output=True,
                             text=True, timeout=60,
                             env={**os.environ, "POLICY": json.dumps(policy)})  # fmt: skip
        [line] = [ln for ln in out.stdout.splitlines() if ln.startswith("SEEN")]
        got = json.loads(line.removeprefix("SEEN"))
    finally:
        shutil.rmtree(folders, ignore_errors=True)
    assert "seccomp" in got["layers"]
    wrong = {n: r for n, r in got["seen"].items() if r != [-1, errno.EPERM]}
    assert wrong == {}, wrong


@pytest.mark.skipif(os.geteuid() != 0, reason="becomes an ordinary user to play one")
def test_neither_layer_as_an_ordinary_user_holds_what_the_readme_says(tmp_path: Path) -> None:
    """A grader run by an ordinary user on a machine with neither namespaces nor Landlock
    (played here by nobody, with the system's Python): the files are open, as the README's
    table and every command's warning say; the grader's processes cannot be signalled or
    traced (seccomp); the network and the kernel's attack surface are closed."""
    import subprocess

    from test_sandbox import ATTEMPT

    from backprop_lab.run.sandbox.system import NOBODY, others_can_read

    if not (others_can_read(SYSTEM_PYTHON) and others_can_read(str(ROOT / "backprop_lab"))):
        pytest.skip("the system's Python or this checkout is not readable by every user")
    found = {"namespaces": False, "landlock": 0}
    folders, policy = grading_folders(found, read=[])
    grader = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                               "--clear-groups", "sleep", "60"])  # fmt: skip
    try:
        for path in (folders, folders / "nb", folders / "k"):
            os.chown(path, NOBODY, NOBODY)
        victim = folders / "grades.csv"
        victim.write_text("alice,15\n")
        os.chown(victim, NOBODY, NOBODY)
        given = {"SOLUTIONS": str(victim), "VICTIM": str(victim), "GRADER": grader.pid,
                 "TCP": 9, "UDP": 9, "SERVER": str(folders / "none.sock")}  # fmt: skip
        head = "".join(f"{k} = {v!r}\n" for k, v in given.items())
        script = ATTEMPT + head + BODY + '\nprint("RESULTS" + json.dumps(results))\n'
        out = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             SYSTEM_PYTHON, "-c", script],
            env={"POLICY": json.dumps(policy), "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, timeout=60, cwd=folders / "nb",
        )  # fmt: skip
        [line] = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULTS")] or [out.stderr]
        r = json.loads(line.removeprefix("RESULTS"))
    finally:
        grader.kill()
        grader.wait()
        shutil.rmtree(folders, ignore_errors=True)
    held = {a for a in ATTACKS if r[a][0] == "refused"}
    assert {"write-outside", "grader-cmdline", "grader-environ"} <= set(ATTACKS) - held, r
    assert held >= {"signal-grader", "libc-signal-grader", "ptrace-grader", "io_uring", "keyctl",
                    "new-user-namespace", "memfd", "udp"}, r  # fmt: skip
    assert r["layers"] == ["rlimits", "seccomp"]


ROOTLESS = """
import json, os, sys
from backprop_lab.run import sandbox
try:
    layers = sandbox.enter(json.loads(os.environ["POLICY"]))
except sandbox.SandboxError as e:
    print("RESULT" + json.dumps({"refused": str(e)}))
    sys.exit(0)
caps = [ln for ln in open("/proc/self/status") if ln.startswith("CapEff")][0].split()[1]
try:
    open("/proc/sys/kernel/core_pattern", "w")
    core = "opened"
except OSError as e:
    core = "refused"
print("RESULT" + json.dumps({"uid": os.getuid(), "caps": caps, "layers": layers, "core": core}))
"""


@pytest.mark.parametrize("mode", ["namespaces+landlock", "namespaces-only"])
def test_root_of_a_rootless_container_without_nobody(mode: str) -> None:
    """A grader that is root in a user namespace mapping root alone (`unshare -U -r`, a
    rootless container): nobody does not exist there. Guarded by Landlock, the notebook
    stays uid 0 with no capability and cannot touch /proc/sys; without Landlock it is
    refused, saying why."""
    import subprocess
    import sys

    found = MODES[mode]
    if not _available(found) or shutil.which("unshare") is None:
        pytest.skip(f"this machine cannot simulate {mode}")
    folders, policy = grading_folders(found)
    try:
        out = subprocess.run(["unshare", "-U", "-r", sys.executable, "-c", ROOTLESS],
                             capture_output=True, text=True, timeout=60,
                             env={**os.environ, "POLICY": json.dumps(policy)})  # fmt: skip
    finally:
        shutil.rmtree(folders, ignore_errors=True)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")]
    if not lines and "unshare failed" in out.stderr:
        pytest.skip("no user namespaces for this test's own wrapper")
    got = json.loads(lines[-1].removeprefix("RESULT"))
    if found["landlock"]:
        assert (got["uid"], int(got["caps"], 16), got["core"]) == (0, 0, "refused"), got
        assert got["layers"] == ["namespaces", "landlock", "rlimits", "seccomp"]
    else:
        assert "no nobody (65534) and without Landlock" in got["refused"], got
