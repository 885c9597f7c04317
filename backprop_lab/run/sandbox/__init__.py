"""The operating-system sandbox every kernel runs in: Linux namespaces, Landlock and hard
resource limits, set up without root and before a line of the student's code runs.

    python -I -S sandbox/launcher.py -- KERNEL_ARGV...   (a plain kernel: sandbox, then exec)
    sandbox.enter(policy)                                 (a process forked by the fork server)

Layers, each applied where the machine allows it (`probe()` says which):
1. Namespaces (namespaces.py): user, mount, PID, network, IPC, UTS, and a new root that
   holds read-only binds of what a notebook needs (system libraries, the Python
   environment, the bundled data package, the `data_path` file) and nothing else.
2. Landlock (landlock.py), a second layer, and the only one where user namespaces are
   refused: reads only under the same allowlist, writes only in the scratch folders, no
   TCP, no signals out of the domain.
3. Hard rlimits the kernel cannot raise (limits.py). Capabilities are dropped and
   `no_new_privs` set before the kernel starts.
rules.py says what a kernel may touch, as plain data; layers.py applies the layers.

Standard library only (ctypes), so that the launcher starts in milliseconds with
`python -I -S`, and so that the fork server can call `enter` in a freshly forked child,
which is single-threaded as `unshare(CLONE_NEWUSER)` requires.
"""

from .launcher import LAUNCHER, main
from .layers import REFUSED, SandboxError, cannot_run, enter
from .probing import describe, probe
from .rules import (
    ENV,
    Policy,
    allowed_environment,
    environment,
    gpu_devices,
    host_folder,
    kernel_lists,
    kernel_reads,
    policy,
    python_paths,
)

__all__ = [
    "ENV",
    "LAUNCHER",
    "REFUSED",
    "Policy",
    "SandboxError",
    "allowed_environment",
    "cannot_run",
    "describe",
    "enter",
    "environment",
    "gpu_devices",
    "host_folder",
    "kernel_lists",
    "kernel_reads",
    "main",
    "policy",
    "probe",
    "python_paths",
]
