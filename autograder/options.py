"""What a grading is asked to do: the options every front end shares, and the errors
that stop a command before any grading. No torch here: `autograde grade`'s main
process, which only hands notebooks to workers, imports this and not the pipeline."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_SEED",
    "SHARED_FLAGS",
    "GradingError",
    "Options",
    "check_sandbox",
    "resolve_seed",
    "seed_words",
    "which_engine",
]

# Inputs for self-checks; instructors grade with a seed of their own (--seed or
# AUTOGRADE_SEED), so the inputs that count are not the ones students checked against.
DEFAULT_SEED = 2019


# The options every front end offers (the `autograde` verbs, the pytest plugin), defined
# once as (flag, keyword arguments for argparse's or pytest's `addoption`).
SHARED_FLAGS: tuple[tuple[str, dict], ...] = (
    ("--device", {"default": "cpu", "choices": ["cpu", "cuda"],
                  "help": "where the student's code runs (default: cpu)"}),
    ("--seed", {"default": None, "help": "seed for the grader's inputs "
                                         f"(default: $AUTOGRADE_SEED or {DEFAULT_SEED})"}),
    ("--assignment", {"default": None,
                      "help": "matmul or backprop (default: detected from the notebook)"}),
    ("--require-sandbox", {"action": "store_true", "default": False,
                           "help": "refuse to grade where student code cannot be isolated "
                                   "(namespaces and Landlock; Linux)"}),
    ("--engine", {"default": "auto", "choices": ["auto", "inprocess", "kernel"],
                  "help": "how notebooks run: inprocess (a sandboxed process forked per "
                          "notebook, fast; Linux) or kernel (a Jupyter kernel each, as "
                          "nbgrader runs them); auto: inprocess where it can run"}),
)  # fmt: skip


def resolve_seed(text: str | int | None) -> int:
    """The seed asked for, else $AUTOGRADE_SEED, else the default; ValueError if it is
    not an integer."""
    if text is None or str(text).strip() == "":
        text = os.environ.get("AUTOGRADE_SEED")
    if text is None or str(text).strip() == "":  # unset, or a CI variable left empty
        return DEFAULT_SEED
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"seed must be an integer, got {text!r}") from None


def seed_words(seed: int) -> str:
    """The grading seed as text a student may read names it: the public default by its
    number (students check with it), any other only as the instructor's (with it, a
    student could make the grading inputs at home). grades.csv and results.json's
    `extra_data`, for the instructor, keep the number."""
    return f"seed {seed}" if seed == DEFAULT_SEED else "the instructor's seed"


class GradingError(Exception):
    """The command cannot grade at all (not the student's fault): a bad option, no CUDA."""


@dataclass(frozen=True)
class Options:
    seed: int = DEFAULT_SEED
    device: str = "cpu"
    assignment: str | None = None  # detected from the notebook when None
    data_path: str | None = None
    cell_timeout: float = 120.0  # per notebook cell
    call_timeout: float = 20.0  # per call of student code by the grader
    notebook_timeout: float = 900.0  # the whole notebook, grader's calls included
    memory_mb: int | None = 4096  # data the kernel may allocate on CPU (None: no limit)
    output_kb: int | None = 1024  # printing kept per cell (None: no limit)
    confine_writes: bool = True  # file writes only in the notebook's folder, tmp, caches
    # The kernel always runs in the strongest sandbox the machine offers (the sandbox package);
    # True makes a machine that cannot isolate it an error instead of a warning.
    require_sandbox: bool = False
    # `grade` only: kernels forked from a process that has imported torch and ipykernel
    # (the forkserver package), each still a new process; False starts each kernel from scratch.
    fork_kernels: bool = True
    # How the notebook runs (engine.py): `inprocess` in a sandboxed child of a fork server,
    # `kernel` in a Jupyter kernel; `auto` is `inprocess` wherever it can run (Linux).
    engine: str = "auto"
    keep_executed: Path | None = None  # copy the executed notebook here


def check_sandbox(options: Options) -> str | None:
    """None when student code is isolated on this machine (the sandbox package), else the warning
    to show on every run; GradingError instead when the options require the sandbox, or
    where no notebook can run at all."""
    from . import sandbox

    refusal = sandbox.cannot_run(read=sandbox.kernel_reads(options.data_path))
    if refusal:
        raise GradingError(refusal)
    warning = sandbox.describe()
    if warning and options.require_sandbox:
        raise GradingError(f"--require-sandbox: {warning}")
    return warning


def which_engine(options: Options) -> str:
    """ "inprocess" or "kernel" (engine.py), from `options.engine`; GradingError if the one
    asked for cannot run here."""
    from . import engine

    try:
        return engine.resolve(options.engine)
    except ValueError as exc:
        raise GradingError(str(exc)) from None
