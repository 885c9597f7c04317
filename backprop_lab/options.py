"""What a grading is asked to do: the options every front end shares, and the errors
that stop a command before any grading. No torch here: `autograde grade`'s main
process, which only hands notebooks to workers, imports this and not the pipeline."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_SEED",
    "SHARED_FLAGS",
    "Flag",
    "GradingError",
    "Options",
    "check_sandbox",
    "options_from",
    "resolve_seed",
    "seed_words",
    "which_engine",
]

# Inputs for self-checks; instructors grade with a seed of their own (--seed or
# AUTOGRADE_SEED), so the inputs that count are not the ones students checked against.
DEFAULT_SEED = 2019


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


@dataclass(frozen=True)
class Flag:
    """One grading option as every front end offers it (the `autograde` verbs, the pytest
    form as `--autograde-NAME`): its flag, the `Options` field it sets, and its default,
    read from that field, so the two cannot drift. `zero_means_none`: 0 turns a limit off
    (the field's None)."""

    flag: str
    field: str
    help: str
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    switch: bool = False
    zero_means_none: bool = False

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def default(self) -> Any:
        if self.field == "seed":
            return None  # resolved by resolve_seed: $AUTOGRADE_SEED, then DEFAULT_SEED
        [f] = [f for f in fields(Options) if f.name == self.field]
        value = f.default if f.default is not MISSING else None
        return 0 if value is None and self.zero_means_none else value

    def addoption_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for argparse's `add_argument` and pytest's `addoption`."""
        shown = self.default
        if self.field == "seed":
            shown = f"$AUTOGRADE_SEED or {DEFAULT_SEED}"
        text = self.help + ("" if self.switch or shown is None else f" (default: {shown})")
        if self.switch:
            return {"action": "store_true", "default": False, "help": text}
        kwargs: dict[str, Any] = {"default": self.default, "help": text}
        if self.type is not None:
            kwargs["type"] = self.type
        if self.choices is not None:
            kwargs["choices"] = list(self.choices)
        if self.metavar is not None:
            kwargs["metavar"] = self.metavar
        return kwargs


SHARED_FLAGS: tuple[Flag, ...] = (
    Flag("--device", "device", "where the student's code runs", choices=("cpu", "cuda")),
    Flag("--seed", "seed", "seed for the grader's inputs"),
    Flag("--assignment", "assignment", "the assignment: matmul, backprop or training "
         "(default: detected from the notebook)"),
    Flag("--require-sandbox", "require_sandbox", "refuse to grade where student code cannot "
         "be isolated (namespaces and Landlock; Linux)", switch=True),
    Flag("--engine", "engine", "how notebooks run: inprocess (a sandboxed process forked per "
         "notebook, fast; Linux) or kernel (a Jupyter kernel each, as nbgrader runs them); "
         "auto: inprocess where it can run", choices=("auto", "inprocess", "kernel")),
    Flag("--data-path", "data_path", "the course's mnist.pkl.gz for the notebook (default: "
         "bundled digits)", type=str),
    Flag("--cell-timeout", "cell_timeout", "seconds a notebook cell may run", type=float),
    Flag("--notebook-timeout", "notebook_timeout", "seconds the whole notebook may run, "
         "grading included", type=float),
    Flag("--memory-limit", "memory_mb", "memory the notebook may allocate on CPU, 0 for no "
         "limit", type=int, metavar="MB", zero_means_none=True),
    Flag("--output-limit", "output_kb", "printed output kept per cell, 0 for no limit",
         type=int, metavar="KB", zero_means_none=True),
    Flag("--call-timeout", "call_timeout", "seconds one call of a graded function may run",
         type=float),
)  # fmt: skip


def options_from(values: Mapping[str, Any], **rest: Any) -> Options:
    """The `Options` for parsed flag values (by each flag's `dest`; a value not given
    takes the flag's default), plus `rest`, fields no flag sets. ValueError for a seed that
    is not an integer."""
    chosen: dict[str, Any] = {}
    for f in SHARED_FLAGS:
        value = values.get(f.dest, f.default)
        if f.field == "seed":
            value = resolve_seed(value)
        elif f.zero_means_none:
            value = value or None
        elif value is None:
            value = f.default
        chosen[f.field] = value
    return Options(**chosen, **rest)


def check_sandbox(options: Options) -> str | None:
    """None when student code is isolated on this machine (the sandbox package), else the warning
    to show on every run; GradingError instead when the options require the sandbox, or
    where no notebook can run at all."""
    from .run import sandbox

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
    from .run import engine

    try:
        return engine.resolve(options.engine)
    except ValueError as exc:
        raise GradingError(str(exc)) from None
