"""A class of 30 with 10 attackers mixed in, graded by `autograde grade` as typed, on each
kind of machine that claims isolation (simulated here: AUTOGRADE_SANDBOX_SIMULATE): every
honest score exact, every attacker at what its answers earn (nothing: they answered
nothing), no file outside changed, no process left, the class's files written and the
grader's key never shown. The attacks are the red team's of issue 26."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from grading_tools import full_marks
from notebook_tools import SOLUTION, STUB
from process_tools import processes_with
from test_sandbox_modes import MODES, _available

from backprop_lab.gradebook.grades import read_grades_csv

pytestmark = pytest.mark.slow
MARKER = "autograde-class-attack-left-behind"  # and the test's mode and process

ATTACKS = {
    # the fork server's socket, by its name in /proc/net/unix, asked for a child with no
    # sandbox that writes the victim file
    "fork-server": """
import json, socket, re
names = re.findall(r"(/\\S*server\\.sock)", open("/proc/net/unix").read())
for name in names:
    try:
        s = socket.socket(socket.AF_UNIX); s.connect(name)
        body = json.dumps({"argv": ["x", "-m", "ipykernel_launcher", "-c",
                           "open(VICTIM, 'a').write('forged')"], "cwd": "/", "env": {}}).encode()
        s.sendall(len(body).to_bytes(8, "big") + body); print(s.recv(100))
    except OSError as e:
        print("refused", e)
""",
    # every process whose command line says autograde or pytest, killed
    "kill-the-grader": """
import ctypes, os, signal
libc = ctypes.CDLL(None)
for pid in [p for p in os.listdir("/proc") if p.isdigit()] if os.access("/proc", os.R_OK) else []:
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        continue
    if (b"autograde" in cmd or b"pytest" in cmd) and int(pid) != os.getpid():
        libc.kill(int(pid), signal.SIGKILL)
libc.kill(os.getppid(), signal.SIGKILL)
""",
    "write-outside": """
for path in (VICTIM, OUT + "/grades.csv", OUT + "/summary.md"):
    try:
        open(path, "a").write("forged,15\\n")
    except OSError as e:
        print("refused", e)
""",
    "read-the-key": """
try:
    print("KEY:" + open(OUT + "/.autograde-key").read())
except OSError as e:
    print("refused", e)
""",
    "leave-a-writer": """
import subprocess
subprocess.Popen(["sh", "-c", "exec -a " + MARKER + " sh -c 'sleep 4; echo forged,15 >> " + OUT +
                  "/grades.csv'"], start_new_session=True)
""",
    "tree-memory": """
import mmap, os, time
m = mmap.mmap(-1, 600 << 20)
for _ in range(600):
    m.write(b"x" * (1 << 20))
for _ in range(3):  # children, each with memory of its own that no rlimit counts
    if os.fork() == 0:
        try:
            c = mmap.mmap(-1, 400 << 20)
            for _ in range(400):
                c.write(b"y" * (1 << 20))
            time.sleep(30)
        finally:
            os._exit(0)
time.sleep(30)
""",
    "udp-to-the-host": """
import socket
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"forged", ("127.0.0.1", UDP))
except OSError as e:
    print("refused", e)
""",
    "kernel-surface": """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print([libc.syscall(425, 4, ctypes.create_string_buffer(120)), libc.syscall(250, 0, -3, 0, 0, 0),
       libc.unshare(0x10000000), libc.unshare(0x40000000)])
""",
    "output-flood": """
import sys
sys.stdout.write = sys.__stdout__.write  # the kernel's cap, lifted
for _ in range(8):
    print("x" * 20_000_000)
""",
    "forged-results": """
print(f"{FULL}/{FULL}, every check passed")
from IPython.display import display
display({"application/vnd.autograde.results+json": {"score": FULL}}, raw=True)
""",
}


def attacker(code: str) -> nbformat.NotebookNode:
    """The notebook as handed out (nothing answered), with the attack in a cell of its own
    right after the setup cell."""
    nb = nbformat.read(STUB["backprop"], as_version=4)
    [setup] = [i for i, c in enumerate(nb.cells)
               if c.metadata.get("nbgrader", {}).get("grade_id") == "setup"]  # fmt: skip
    nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(code))
    return nb


def _mode(mode: str):
    """A mode without namespaces has no PID namespace: there the attacker that kills every
    autograde and pytest process sees every process on the machine, and only the sandbox
    stops it. Its test runs alone (tests/conftest.py), so that should the sandbox fail, it
    takes no other test down with it."""
    marks = [] if MODES[mode]["namespaces"] else [pytest.mark.alone]
    return pytest.param(mode, marks=marks, id=mode)


@pytest.mark.parametrize("mode", [_mode(m) for m in MODES if m != "neither"])
def test_a_class_with_attackers_is_graded_exactly(mode: str) -> None:
    found = MODES[mode]
    if not _available(found):
        pytest.skip(f"this machine cannot simulate {mode}")
    simulate = [] if found["namespaces"] else ["namespaces=0"]
    if found["landlock"] != MODES["namespaces+landlock"]["landlock"]:
        simulate.append(f"landlock={found['landlock']}")
    base = Path(tempfile.mkdtemp(prefix="autograde-class-"))
    victim, out, klass = base / "instructor" / "grades.csv", base / "out", base / "class"
    victim.parent.mkdir()
    victim.write_text("alice,15\n")
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    marker = f"{MARKER}-{mode}-{os.getpid()}"
    given = (f"VICTIM = {str(victim)!r}\nOUT = {str(out)!r}\nUDP = {udp.getsockname()[1]}\n"
             f"MARKER = {marker!r}\nFULL = {full_marks('backprop')}\n")  # fmt: skip
    honest = {}
    for i in range(20):
        solved = i < 14
        nb = nbformat.read((SOLUTION if solved else STUB)["backprop"], as_version=4)
        nb.metadata["student"] = f"honest-{i:02d}"
        name = f"honest-{i:02d}"
        (klass / name).mkdir(parents=True)
        nbformat.write(nb, klass / name / "backprop.ipynb")
        honest[name] = full_marks("backprop") if solved else 0
    for name, code in ATTACKS.items():
        (klass / name).mkdir(parents=True)
        nbformat.write(attacker(given + code), klass / name / "backprop.ipynb")
    env = {**os.environ, "AUTOGRADE_SANDBOX_SIMULATE": ",".join(simulate)}
    autograde = shutil.which("autograde") or pytest.fail("autograde is not installed")
    try:
        done = subprocess.run(
            [autograde, "grade", str(klass), "--out", str(out),
             "--workers", "2", "--quiet", "--no-feedback", "--cell-timeout", "20",
             "--memory-limit", "1024"],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode in (0, 1), done.stdout + done.stderr
        rows = {r["student"]: r for r in read_grades_csv(out / "grades.csv")}
        assert set(rows) == set(honest) | set(ATTACKS), done.stdout + done.stderr
        for name, score in honest.items():
            assert float(rows[name]["score"]) == score, (name, rows[name])
        for name in ATTACKS:
            assert float(rows[name]["score"]) == 0, (name, rows[name])
        assert victim.read_text() == "alice,15\n"
        assert sorted(p.name for p in victim.parent.iterdir()) == ["grades.csv"]
        with pytest.raises(BlockingIOError):
            udp.recv(64)
        key = (out / ".autograde-key").read_bytes()
        shown = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file()
                         and p.name != ".autograde-key")  # fmt: skip
        assert key not in shown and key.hex().encode() not in shown
        time.sleep(5)  # a writer left behind would have struck by now
        assert processes_with(marker) == []
        assert "forged,15" not in (out / "grades.csv").read_text()
        [record] = out.glob("submissions/tree-memory/*/results.json")
        assert "ran out of memory" in record.read_text(), record.read_text()[:2000]
    finally:
        udp.close()
        shutil.rmtree(base, ignore_errors=True)
