"""Recording the notebook as it runs: after every cell, each new object bound to a graded
name, with the hash of the cell that bound it; and, for each call of the plan, picking the
definition to grade.
"""

import hashlib
import signal

from .integrity import _snapshot_hooks, _torch_functions
from .limits import (
    _Budget,
    _cap_output,
    _confine_signals,
    _confine_writes,
    _install_cap,
    _limit_memory,
    _on_cell_alarm,
    neutralise_debuggers,
)
from .state import _MISSING, _State
from .wire import PlannedCall


def cell_sha(source: str) -> str:
    """The hash a cell's source is known by, in the kernel and in the grader."""
    return hashlib.sha1(source.encode("utf-8", "surrogatepass")).hexdigest()


def start(
    targets: list[str],
    cell_timeout: float | None = None,
    memory_mb: float | None = None,
    output_kb: float | None = None,
    confine_writes: bool = False,
) -> None:
    """Record, after every cell, any new object bound to a graded name, with the cell's
    source hash: the matmul notebook defines `matmul` three times and each is graded.
    Stop any student cell that runs longer than `cell_timeout` seconds; refuse
    allocations past `memory_mb` of data; keep at most `output_kb` of a cell's printing;
    refuse file writes outside the notebook's folder, temporary files and caches."""
    from IPython import get_ipython

    _State.targets = tuple(targets)
    _State.versions = {}
    _State.last = {}
    _State.ran = {}
    _State.cell_timeout = cell_timeout
    _State.debugger_calls = 0
    _State.originals = _torch_functions()
    _snapshot_hooks()
    neutralise_debuggers()
    if memory_mb:
        _limit_memory(memory_mb)
    if output_kb:
        _cap_output(output_kb * 1024)
    if confine_writes:
        _confine_writes()
        _confine_signals()
    events = get_ipython().events
    events.register("pre_run_cell", _before_cell)
    events.register("post_run_cell", _after_cell)


def _before_cell(info):
    # Every cell, the grader's last one too (its calls then set alarms of their own): no
    # text in a cell's source can exempt it.
    _Budget.written, _Budget.noted = 0, False
    _install_cap()
    if _State.cell_timeout:
        signal.signal(signal.SIGALRM, _on_cell_alarm)
        signal.setitimer(signal.ITIMER_REAL, _State.cell_timeout)


def _after_cell(result):
    from IPython import get_ipython

    signal.setitimer(signal.ITIMER_REAL, 0)

    ns = get_ipython().user_ns
    info = getattr(result, "info", None)
    src = getattr(info, "raw_cell", "") or ""
    sha, position = cell_sha(src), len(_State.ran)
    _State.ran.setdefault(sha, position)
    for name in _State.targets:
        obj = ns.get(name, _MISSING)
        if obj is not _MISSING and obj is not _State.last.get(name, _MISSING):
            _State.last[name] = obj
            _State.versions.setdefault(name, []).append((sha, obj, position))


def _pick(ns: dict, call: PlannedCall) -> tuple[object, str]:
    """The object to grade for a call: the definition from the exercise's own cell if
    it can be told apart, else the k-th definition, else the last one bound."""
    versions = _State.versions.get(call.target, [])
    own = call.cell_sha
    for sha, obj, _ in versions:
        if sha == own:
            return obj, "cell"
    others = set(call.other_shas)
    if others and own in _State.ran:
        # The exercise's cell ran but bound no new `target`. Another rung's definition
        # must not be graded in its place; one in a cell of its own, run after this cell
        # and before the next rung's, is the student's (a split or moved cell).
        for sha, obj, position in versions:
            if position > _State.ran[own]:
                return (_MISSING, "cell") if sha in others else (obj, "after-cell")
        return _MISSING, "cell"
    k = call.index
    if k is not None and len(versions) > k and len(versions) >= call.rungs:
        return versions[k][1], "order"
    if versions:
        return versions[-1][1], "last"
    obj = ns.get(call.target, _MISSING)
    return obj, "global"
