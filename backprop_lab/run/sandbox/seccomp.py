"""The last layer, on every Linux machine: a seccomp filter, installed just before the
kernel starts, that refuses the system calls a notebook has no use for and an attacker
does. It holds where the other layers do not: without user namespaces, inside Docker, as
root.

Refused everywhere (EPERM, as Docker's default profile, bubblewrap and nsjail refuse
them): new namespaces (`unshare`, `setns`, `clone` with a namespace flag), mounting,
`ptrace` and reading or writing another process's memory, io_uring (its operations never
pass through this filter), keyrings, bpf, perf events, userfaultfd, kexec, kernel modules,
file handles, swap, reboot, the clock, and `memfd_create` (a memory file can be executed
where Landlock does not look). `clone3` answers ENOSYS, so that the C library falls back to
`clone`, whose flags the filter can read.

Where the notebook shares the grader's network and process namespaces (no namespaces
layer), also: no UDP, raw or packet socket (UDP reached the host's listeners), no `connect`
(a named UNIX socket of the grader's is reachable by name, and Landlock does not cover
`connect`), and, unless Landlock (ABI 6+) scopes signals, signals only to the notebook's
own process (the grader runs as the same user).

Hand-written classic BPF rather than libseccomp: the sandbox must start in milliseconds
from `python -I -S` (no site-packages, so no binding to libseccomp), and the program is a
list of comparisons, tested system call by system call (tests/test_sandbox_modes.py).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct

from .system import check, libc

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_BIT = 0x40000000  # x86_64's x32 ABI: other numbers for the same calls; refused whole

# Each refused call's number on each architecture (asm/unistd_64.h, asm-generic/unistd.h).
REFUSED = {
    "unshare": (272, 97), "setns": (308, 268), "mount": (165, 40), "umount2": (166, 39),
    "pivot_root": (155, 41), "chroot": (161, 51), "ptrace": (101, 117),
    "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "kcmp": (312, 272), "pidfd_getfd": (438, 438),
    "io_uring_setup": (425, 425), "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "keyctl": (250, 219), "add_key": (248, 217), "request_key": (249, 218),
    "bpf": (321, 280), "perf_event_open": (298, 241), "userfaultfd": (323, 282),
    "kexec_load": (246, 104), "kexec_file_load": (320, 294),
    "init_module": (175, 105), "finit_module": (313, 273), "delete_module": (176, 106),
    "open_by_handle_at": (304, 265), "name_to_handle_at": (303, 264),
    "open_tree": (428, 428), "move_mount": (429, 429), "fsopen": (430, 430),
    "fsconfig": (431, 431), "fsmount": (432, 432), "fspick": (433, 433),
    "mount_setattr": (442, 442),
    "swapon": (167, 224), "swapoff": (168, 225), "reboot": (169, 142),
    "syslog": (103, 116), "acct": (163, 89), "quotactl": (179, 60),
    "settimeofday": (164, 170), "clock_settime": (227, 112), "clock_adjtime": (305, 266),
    "adjtimex": (159, 171), "memfd_create": (319, 279), "memfd_secret": (447, 447),
}  # fmt: skip
CLONE, CLONE3 = (56, 220), (435, 435)
KILL, TGKILL, TKILL = (62, 129), (234, 131), (200, 130)
RT_SIGQUEUEINFO, RT_TGSIGQUEUEINFO = (129, 138), (297, 240)
PIDFD_OPEN, PIDFD_SEND_SIGNAL = (434, 434), (424, 424)
SOCKET, CONNECT = (41, 198), (42, 203)
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, SOCK_STREAM = 1, 2, 10, 16, 1
NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET

# classic BPF
LD_W_ABS, JEQ_K, JGE_K, JSET_K, RET_K, ALU_AND_K = 0x20, 0x15, 0x35, 0x45, 0x06, 0x54
RET_ALLOW, RET_KILL_PROCESS, RET_ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
NR, ARCH, ARG0, ARG1 = 0, 4, 16, 24  # offsets in struct seccomp_data (low word of an arg)
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2


def supported() -> bool:
    return platform.machine() in AUDIT_ARCH


def program(*, shared_host: bool, scoped_signals: bool, own_pid: int) -> list[tuple]:
    """The filter, as (code, jt, jf, k) instructions. `shared_host`: the notebook shares
    the grader's network and PID namespaces; `scoped_signals`: Landlock keeps its signals
    inside; `own_pid`: the process the filter is installed in (the notebook's)."""
    machine = platform.machine()
    col = 0 if machine == "x86_64" else 1
    deny, enosys = RET_ERRNO | errno.EPERM, RET_ERRNO | errno.ENOSYS
    code: list[tuple] = [
        (LD_W_ABS, 0, 0, ARCH),
        (JEQ_K, 1, 0, AUDIT_ARCH[machine]),
        (RET_K, 0, 0, RET_KILL_PROCESS),  # another ABI's numbers mean other calls
        (LD_W_ABS, 0, 0, NR),
    ]
    if machine == "x86_64":
        code += [(JGE_K, 0, 1, X32_BIT), (RET_K, 0, 0, deny)]
    refused = [numbers[col] for numbers in REFUSED.values()]
    calls = [TKILL[col], PIDFD_OPEN[col], PIDFD_SEND_SIGNAL[col]] if shared_host else []
    refused += [] if scoped_signals else calls
    for nr in refused:
        code += [(JEQ_K, 0, 1, nr), (RET_K, 0, 0, deny)]
    code += [(JEQ_K, 0, 1, CLONE3[col]), (RET_K, 0, 0, enosys)]
    # clone(flags, ...): flags are the first argument on both architectures
    code += [(JEQ_K, 0, 4, CLONE[col]), (LD_W_ABS, 0, 0, ARG0),
             (JSET_K, 0, 1, NAMESPACE_FLAGS), (RET_K, 0, 0, deny),
             (RET_K, 0, 0, RET_ALLOW)]  # fmt: skip
    if shared_host:
        code += [(JEQ_K, 0, 1, CONNECT[col]), (RET_K, 0, 0, RET_ERRNO | errno.EACCES)]
        code += _sockets(col)
        if not scoped_signals:
            code += _own_signals(col, own_pid)
    code.append((RET_K, 0, 0, RET_ALLOW))
    return code


def _sockets(col: int) -> list[tuple]:
    """socket(domain, type, ...): UNIX and netlink (interfaces' names, which ZeroMQ asks
    for), and TCP, which Landlock governs and `connect` is refused for anyway; no UDP, raw
    or packet sockets, whose `sendto` reaches the host's listeners."""
    no = RET_ERRNO | errno.EAFNOSUPPORT
    return [
        (JEQ_K, 0, 11, SOCKET[col]),
        (LD_W_ABS, 0, 0, ARG0),
        (JEQ_K, 8, 0, AF_UNIX),
        (JEQ_K, 7, 0, AF_NETLINK),
        (JEQ_K, 2, 0, AF_INET),
        (JEQ_K, 1, 0, AF_INET6),
        (RET_K, 0, 0, no),
        (LD_W_ABS, 0, 0, ARG1),
        (ALU_AND_K, 0, 0, 0xF),  # the type, without SOCK_CLOEXEC and SOCK_NONBLOCK
        (JEQ_K, 1, 0, SOCK_STREAM),
        (RET_K, 0, 0, RET_ERRNO | errno.EACCES),
        (RET_K, 0, 0, RET_ALLOW),
    ]


def _own_signals(col: int, pid: int) -> list[tuple]:
    """kill, rt_sigqueueinfo, tgkill and rt_tgsigqueueinfo only of the notebook's own
    process (raise(), threads): not of its group, which holds the keeper (keeper.py), and
    not of any other process of the grader's user. Everything else: EPERM."""
    deny = RET_ERRNO | errno.EPERM
    own = pid & 0xFFFFFFFF
    code: list[tuple] = []
    for call, allowed in ((KILL, (own,)), (RT_SIGQUEUEINFO, (own,)),
                          (TGKILL, (own,)), (RT_TGSIGQUEUEINFO, (own,))):  # fmt: skip
        tests = [(JEQ_K, len(allowed) - i, 0, value) for i, value in enumerate(allowed)]
        code += [(JEQ_K, 0, len(tests) + 3, call[col]), (LD_W_ABS, 0, 0, ARG0), *tests,
                 (RET_K, 0, 0, deny), (RET_K, 0, 0, RET_ALLOW)]  # fmt: skip
    return code


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(*, shared_host: bool, scoped_signals: bool) -> None:
    """Install the filter in this process and everything it starts; it can never be
    removed (no_new_privs must be set, as the Landlock layer does)."""
    code = program(shared_host=shared_host, scoped_signals=scoped_signals,
                   own_pid=os.getpid())  # fmt: skip
    raw = b"".join(struct.pack("HBBI", *insn) for insn in code)
    buffer = ctypes.create_string_buffer(raw, len(raw))
    prog = _SockFprog(len(code), ctypes.cast(buffer, ctypes.c_void_p))
    lib = libc()
    check(lib.prctl(38, 1, 0, 0, 0), "no_new_privs")  # PR_SET_NO_NEW_PRIVS
    check(lib.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), "seccomp")
