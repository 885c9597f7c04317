"""A Jupyter kernel for one notebook: the command it runs (the sandbox's launcher, or a
fork server's client), its sockets and arguments, starting and stopping it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# Given to every kernel: history kept in memory (nothing written to the user's IPython
# profile, as nbclient does), and torch imported while the kernel starts, so that the
# import overlaps with the grader's own start-up. The notebook imports it anyway, and
# the name is not left in its namespace.
KERNEL_ARGUMENTS = (
    "--HistoryManager.hist_file=:memory:",
    "--IPKernelApp.exec_lines=import torch; del torch",
)


def specs_running(argv: list[str], display_name: str) -> Any:
    """A kernel spec manager whose `python3` kernel runs `argv` (still named `python3`,
    so that Jupyter treats it as the ipykernel it is)."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

    class Specs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            if kernel_name != "python3":
                return super().get_kernel_spec(kernel_name)
            return KernelSpec(
                argv=argv,
                display_name=display_name,
                language="python",
                interrupt_mode="signal",
                metadata={"debugger": False},
            )

    return Specs()


def sandboxed_specs() -> Any:
    """Plain kernels (no fork server): ipykernel started by the sandbox's launcher, which
    puts it in the sandbox that $AUTOGRADE_SANDBOX describes before exec'ing it."""
    from .sandbox import LAUNCHER

    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    launcher = [sys.executable, "-I", "-S", LAUNCHER, "--", *kernel]
    return specs_running(launcher, "Python 3 (sandboxed by autograde)")


def start_kernel(
    workdir: Path,
    *,
    kernel_name: str = "python3",
    kernel_spec_manager: Any = None,
    sandbox: dict[str, Any] | None = None,
) -> Any:
    """Start a kernel in `workdir` now and return its (async) kernel manager, without
    waiting for it: it boots while the grader prepares the notebook. `run_notebook`
    takes it over. `kernel_spec_manager`: where the kernel's command comes from (a fork
    server's, see forkserver/); the sandbox's launcher by default. `sandbox`: the policy
    (sandbox.policy) the kernel is confined by; its `sockets` folder holds the kernel's
    connection file and sockets."""
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync

    from . import sandbox as sandboxing

    sockets = Path(sandbox["sockets"]) if sandbox else workdir.parent / "kernel"
    sockets.mkdir(mode=0o700, exist_ok=True)
    env = sandboxing.environment(sandbox)
    # IPC sockets, in a folder of their own beside the notebook's: reachable by nothing
    # off this machine (and from a network namespace with no interface), and no "running
    # over TCP without encryption" warning. The async manager, not the blocking one: with
    # a blocking client nbclient's reads block its event loop, so a cell that never ends
    # is never timed out.
    km = AsyncKernelManager(
        kernel_name=kernel_name,
        transport="ipc",
        ip=str(sockets / "k"),
        connection_file=str(sockets / "kernel.json"),
        kernel_spec_manager=kernel_spec_manager or sandboxed_specs(),
    )
    run_sync(km.start_kernel)(cwd=str(workdir), extra_arguments=list(KERNEL_ARGUMENTS), env=env)
    return km


def stop_kernel(km: Any) -> None:
    from jupyter_core.utils import run_sync

    if km.has_kernel:
        run_sync(km.shutdown_kernel)(now=True)


def kill_kernel(km: Any) -> bool:
    """Kill the kernel's process; True if it was running."""
    process = getattr(getattr(km, "provisioner", None), "process", None)
    if process is None or process.poll() is not None:
        return False
    process.kill()
    return True
