"""What a notebook's process imports, imported once in the fork server that forks it."""

from __future__ import annotations

import contextlib

# What every notebook's process imports: IPython's shell, torch and numpy, the modules
# the grader's injected cells use, and the bundled data set the notebooks load; and, for
# Jupyter kernels, ipykernel and what it loads (jedi alone costs a third of a second).
PRELOAD = (
    "IPython.core.interactiveshell",
    "numpy",
    "torch",
    "difflib",
    "dis",
    "inspect",
    "hashlib",
    "resource",
    "pdb",
    "backprop_lab.coursedata",  # its imports (the child imports it anew, from its files)
)
KERNEL_PRELOAD = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "IPython.core.completer",
    "jedi",
)


def preload(kernels: bool) -> None:
    import importlib

    for name in (*PRELOAD, *(KERNEL_PRELOAD if kernels else ())):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
