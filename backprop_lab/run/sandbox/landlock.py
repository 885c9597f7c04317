"""The second layer, and the only one where user namespaces are refused (as on Ubuntu's
default AppArmor settings): Landlock. Reads only under an allowlist, writes only in the
scratch folders, no TCP bind or connect, no signals or abstract UNIX sockets out of the
domain. Landlock also forbids mount changes, so the namespaces' mounts cannot be undone."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Sequence

from .system import PR_SET_NO_NEW_PRIVS, check, libc

LANDLOCK_CREATE_RULESET, LANDLOCK_ADD_RULE, LANDLOCK_RESTRICT_SELF = 444, 445, 446

# Landlock access rights (linux/landlock.h)
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1, 2, 4, 8
FS_REMOVE_DIR, FS_REMOVE_FILE, FS_MAKE_CHAR, FS_MAKE_DIR = 16, 32, 64, 128
FS_MAKE_REG, FS_MAKE_SOCK, FS_MAKE_FIFO, FS_MAKE_BLOCK = 256, 512, 1024, 2048
FS_MAKE_SYM, FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 4096, 8192, 16384, 32768
NET_BIND_TCP, NET_CONNECT_TCP = 1, 2
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1, 2
_READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
_WRITE = (FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_DIR | FS_MAKE_REG
          | FS_MAKE_SOCK | FS_MAKE_FIFO | FS_MAKE_SYM | FS_REFER | FS_TRUNCATE)  # fmt: skip


def abi() -> int:
    """The Landlock ABI this machine offers (0: none)."""
    if not sys.platform.startswith("linux"):
        return 0
    with contextlib.suppress(Exception):
        found = libc().syscall(LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), 1)
        return max(int(found), 0)
    return 0


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def restrict(
    abi: int,
    read: list[str],
    write: list[str],
    devices: list[str],
    sockets: Sequence[str] = (),
    tcp: bool = False,
    listable: Sequence[str] = (),
) -> None:
    """Restrict this thread and everything it starts: read and run only under `read`,
    change files only under `write`, use only the device files in `devices`, make only
    sockets in `sockets`; list, and only list, the folders in `listable`; no TCP unless
    `tcp` (inside a network namespace of its own, TCP reaches nothing outside); no signals
    to or abstract sockets of processes outside."""
    lib = libc()
    handled = _fs_rights(abi)
    tcp_rights = (NET_BIND_TCP | NET_CONNECT_TCP) if abi >= 4 and not tcp else 0
    attr = _RulesetAttr(handled, tcp_rights,
                        (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0)  # fmt: skip
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else (16 if abi >= 4 else 8)
    ruleset = check(lib.syscall(LANDLOCK_CREATE_RULESET, ctypes.byref(attr),
                                ctypes.c_size_t(size), 0), "landlock_create_ruleset")  # fmt: skip
    try:
        grants = [(p, _READ) for p in read]
        # a folder's names and no file's contents (Landlock's rights reach every folder
        # below, so that the folders beneath can be listed too, and their files not read)
        grants += [(p, FS_READ_DIR) for p in listable]
        # nothing written there can be run: a file a notebook wrote is data
        grants += [(p, (_READ & ~FS_EXECUTE) | _WRITE) for p in write]
        grants += [(p, _READ | FS_MAKE_SOCK | FS_REMOVE_FILE) for p in sockets]
        grants += [(d, FS_READ_FILE | FS_WRITE_FILE | (FS_IOCTL_DEV if abi >= 5 else 0))
                   for d in devices]  # fmt: skip
        for path, rights in grants:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                is_dir = os.path.isdir(path)
                allowed = (rights if is_dir else rights & (FS_EXECUTE | FS_READ_FILE
                           | FS_WRITE_FILE | FS_TRUNCATE | FS_IOCTL_DEV)) & handled  # fmt: skip
                rule = _PathBeneath(allowed, fd)
                check(lib.syscall(LANDLOCK_ADD_RULE, ruleset, 1, ctypes.byref(rule), 0),
                      f"landlock_add_rule {path}")  # fmt: skip
            finally:
                os.close(fd)
        check(lib.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        check(lib.syscall(LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)
