"""The sandbox a kernel gets, as plain data: what it may read and write, its limits, and
how the policy reaches a notebook's process (as JSON in its environment)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence

from .probing import probe

ENV = "AUTOGRADE_SANDBOX"  # the policy, as JSON, in the environment of the kernel's launch

Policy = dict  # the JSON object `policy()` makes
# the one package the project installs, whose `coursedata` notebooks import
PACKAGE = __name__.partition(".")[0]


def policy(
    *,
    scratch: str,
    sockets: str,
    read: list[str],
    memory_mb: int | None,
    listable: Sequence[str] = (),
    scratch_mb: int = 512,
    file_mb: int = 256,
    processes: int = 300,
    cpu_seconds: int | None = None,
    require: bool = False,
    devices: list[str] | None = None,
    found: dict | None = None,
) -> dict:
    """The sandbox a kernel gets, as plain data (it crosses into the kernel's launch as
    JSON). `scratch`: the notebook's folder, the one place it may write (a tmpfs of
    `scratch_mb` in the namespace sandbox); `sockets`: the folder holding the kernel's
    connection file and IPC sockets; `read`: what else it may read; `listable`: folders
    whose entries it may list but not read (kernel_lists)."""
    return {
        "scratch": scratch,
        "sockets": sockets,
        "read": sorted(set(read)),
        "listable": sorted(set(listable)),
        "memory_mb": memory_mb,
        "scratch_mb": scratch_mb,
        "file_mb": file_mb,
        "processes": processes,
        "cpu_seconds": cpu_seconds,
        "require": require,
        "devices": devices or [],
        "found": found or probe(),  # so that each kernel's launch need not probe again
    }


# What a notebook's process may see of the grader's environment: where programs and
# libraries are, the language, what the course's code and its libraries need to run the
# same way (thread counts, and OpenBLAS's core type, without which some machines compute
# wrong results), and the GPU the grader chose. Everything else (tokens, keys, the shell's
# own variables, the grading seed) stays out: a notebook can print its environment.
ALLOWED_ENV = frozenset({
    "PATH", "LANG", "LANGUAGE", "TZ", "TERM", "PYTHONPATH", "PYTHONHASHSEED",
    "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED",
    "LD_LIBRARY_PATH", "NO_COLOR",
})  # fmt: skip
ALLOWED_ENV_PREFIXES = ("LC_", "OMP_", "MKL_", "OPENBLAS_", "GOTO_", "KMP_", "NUMEXPR_",
                        "VECLIB_", "CUDA_", "NVIDIA_", "CUBLAS_", "NCCL_")  # fmt: skip


def allowed_environment() -> dict[str, str]:
    """The part of this process's environment a notebook's process (or the fork server it
    is forked from) may have; HOME and TMPDIR are set inside the sandbox."""
    return {
        k: v for k, v in os.environ.items()
        if k in ALLOWED_ENV or k.startswith(ALLOWED_ENV_PREFIXES)
    }  # fmt: skip


def environment(p: Policy | None) -> dict[str, str]:
    """What a notebook's process (a kernel's launcher, a forked child) is started with:
    the allowed part of this process's environment, and the policy `p` of the sandbox to
    enter."""
    env = allowed_environment()
    if p:
        env[ENV] = json.dumps(p)
    return env


def python_paths() -> list[str]:
    """The Python environment the kernel runs in: its prefixes and import folders (not
    the working directory, and not an editable install's source tree)."""
    import sysconfig

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable)}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        with contextlib.suppress(KeyError):
            paths.add(sysconfig.get_paths()[key])
    paths.update(p for p in sys.path if p and os.path.isdir(p) and "site-packages" in p)
    return _as_found(p for p in paths if os.path.exists(p))


def _as_found(paths) -> list[str]:
    """Each path resolved, and as it is written where a link leads to it (a venv under
    pytest's `pytest-current`, a `/usr/lib/python3` link): imports look it up by the
    name on sys.path, which the sandbox's new root must hold too."""
    found = set()
    for path in paths:
        found.add(os.path.realpath(path))
        found.add(os.path.abspath(path))
    return sorted(found)


def kernel_reads(data_path: str | None = None) -> list[str]:
    """Everything a notebook's kernel may read besides the system: the Python environment,
    the course's data package and its parent's `__init__.py` (not the rest of the package
    it sits in: no `backprop_lab/reference/`, none of the grader), and the course's data
    file when one is given."""
    paths = python_paths()
    package, data = _course_data()
    if data is not None:
        paths += _as_found([os.path.join(package, "__init__.py"), data])
    if data_path:
        paths.append(os.path.realpath(data_path))
    return paths


def kernel_lists() -> list[str]:
    """The folders a notebook's kernel may list but not read: the package that holds the
    course's data, because Python's import lists a package's folder to find a submodule
    in it. Its file names are no secret; the files stay unreadable."""
    package, data = _course_data()
    return _as_found([package]) if data is not None else []


def _course_data() -> tuple[str, str | None]:
    """The folder of the package that ships the course's data, and the data's own folder
    (None where it is not installed)."""
    import importlib.util

    spec = importlib.util.find_spec(f"{PACKAGE}.coursedata")
    if spec is None or not spec.submodule_search_locations:
        return "", None
    data = next(iter(spec.submodule_search_locations))
    return os.path.dirname(data), data


def host_folder() -> str | None:
    """Where a grading's folders (the notebook's, the kernel's sockets) should go: not
    under /tmp, which the sandbox covers with a writable tmpfs of its own, so that the
    sockets folder bound beneath it would be writable from inside (Landlock's rights are
    inherited down a path). /var/tmp where it can be used, else the usual temp folder."""
    import tempfile

    tmp = os.path.realpath(tempfile.gettempdir())
    var = "/var/tmp"
    if tmp.startswith("/tmp") and os.path.isdir(var) and os.access(var, os.W_OK | os.X_OK):
        return var
    return None


def gpu_devices() -> list[str]:
    """NVIDIA's device files, for grading on CUDA inside the sandbox."""
    try:
        names = os.listdir("/dev")
    except OSError:
        return []
    return sorted("/dev/" + n for n in names if n.startswith("nvidia")) + (
        ["/dev/dri"] if "dri" in names else []
    )
