"""Where facts about a run become sentences for the student: what happened to the
notebook's cells, what the kernel noticed while calling their code (tensors left on the
CPU, autograd, the Model's argument order, debugger calls) and integrity findings.
Reported beside the score; none of it changes a point."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..plan.edits import tampering

if TYPE_CHECKING:  # for annotations only: this module imports nothing of the grading
    from nbformat import NotebookNode

    from ..plan.calls import Plan
    from ..run.executed import CellError, Execution
    from .readback import Harvest

__all__ = [
    "broken_exercise_cells",
    "device_findings",
    "error_line",
    "full_run_notes",
    "harvest_notes",
    "missing_answers_note",
    "run_notes",
]


def run_notes(execution: Execution, cell_timeout: float) -> tuple[str, ...]:
    notes: list[str] = []
    if execution.stopped:
        notes.append(f"Execution stopped: {execution.stopped}.")
    for err in execution.cell_errors[:10]:
        where = _capitalised(err.where())
        if err.ename in ("CellTimeout", "KeyboardInterrupt"):  # a cell over its limit
            notes.append(
                f"{where} ran longer than the {cell_timeout:g} s limit and was "
                "stopped: look for a loop that never ends, or work on far more data than needed"
            )
            continue
        notes.append(f"{where} failed with {error_line(err)}")
    for where, seconds in execution.capped:
        took = f" it ran for {seconds:.1f} s, much of it printing," if seconds else ""
        notes.append(
            f"{_capitalised(where)} printed more than the output limit keeps:{took} and the "
            "rest was dropped. Print a shape or a few values instead of whole tensors."
        )
    return tuple(notes)


def _capitalised(where: str) -> str:
    """`cell 14 (...)` at the start of a sentence."""
    return where[:1].upper() + where[1:]


_SOURCE_LINE = re.compile(r"\s*\((?:[^()]*), line (\d+)\)$")


def error_line(err: CellError) -> str:
    """`SyntaxError: invalid syntax on line 3`: the error's first line, with the line in
    the cell for a syntax error (IPython names the cell's temporary file instead)."""
    first = err.evalue.splitlines()[0][:200] if err.evalue else ""
    found = _SOURCE_LINE.search(first)
    if found:
        first = f"{first[: found.start()]} on line {found.group(1)}"
    return f"{err.ename}: {first}" if first else err.ename


def broken_exercise_cells(execution: Execution) -> dict[str, str]:
    """exercise -> why its solution cell failed, for the checks that find its function
    missing: the cause, not "the notebook defines no relu_grad"."""
    return {
        err.exercise: f"{_capitalised(err.where())} failed with {error_line(err)}"
        for err in execution.cell_errors
        if err.exercise
    }


def device_findings(plan: Plan, harvest: Harvest | None) -> tuple[tuple[str, str, str], ...]:
    found: list[tuple[str, str, str]] = []
    for key, result in harvest.calls.items() if harvest is not None else ():
        for entry in result.facts.get("device_unaware", ()):
            if not isinstance(entry, dict):
                continue
            item = (plan.calls[key].target, str(entry.get("call")), str(entry.get("line")))
            if item not in found:
                found.append(item)
    return tuple(found)


def _device_notes(findings: tuple[tuple[str, str, str], ...]) -> tuple[str, ...]:
    """The same bug a GPU run reports as a device error, found on the CPU."""
    notes: list[str] = []
    for target, call, line in findings:
        if call.startswith("torch."):
            what = f"`{line}` makes a tensor with {call} and no `device=`"
            fix = "take the device from the inputs: `device=a.device` (or `a.new_zeros(...)`)"
        else:
            what = f"`{line}` moves a tensor to the CPU ({call})"
            fix = "keep every tensor on the inputs' device"
        notes.append(
            f"Device readiness: in {target}, {what}. That works on a CPU, but with inputs on "
            f"a GPU the tensor stays on the CPU and the function fails: {fix}."
        )
    return tuple(notes)


def _integrity_notes(
    nb: NotebookNode, assignment: str, plan: Plan, harvest: Harvest | None
) -> tuple[str, ...]:
    """Reported for a person to judge; none of it changes the score."""
    findings = [*tampering(nb, assignment), *_harvest_findings(plan, harvest)]
    return tuple(f"Integrity: {f}." for f in findings)


def _harvest_findings(plan: Plan, harvest: Harvest | None) -> list[str]:
    if harvest is None:
        return []
    users = sorted(
        {plan.calls[k].target for k, c in harvest.calls.items() if c.facts.get("autograd")}
    )
    return [
        *harvest.integrity,
        *(
            f"{t} calls PyTorch's autograd (backward / torch.autograd): the exercise is to "
            "write the gradients by hand"
            for t in users
        ),
        *_unwatched(plan, harvest),
    ]


def _unwatched(plan: Plan, harvest: Harvest) -> list[str]:
    """What a call switched off of the grader's watch for autograd (gradwatch)."""
    unwatched: dict[str, list[str]] = {}
    for key, call in harvest.calls.items():
        for what in call.facts.get("unwatched", ()):
            seen = unwatched.setdefault(plan.calls[key].target, [])
            if isinstance(what, str) and what not in seen:
                seen.append(what)
    return [
        f"{t} switched off the grader's watch for autograd while it ran ({'; '.join(w)}): "
        "no answer to this lesson needs to"
        for t, w in sorted(unwatched.items())
    ]


def full_run_notes(
    plan: Plan, harvest: Harvest | None, why: str | None, known: tuple[str, ...]
) -> tuple[str, ...]:
    """The integrity findings of the notebook as the student ran it (cells they added
    included), for a person to judge, less those `known` from the clean room's run: what an
    added cell tried (forged results messages, patched machinery) is reported though it
    cannot change a point."""
    found = [f"Integrity: {why}."] if why and "results messages" in why else []
    found += [f"Integrity: {f}." for f in _harvest_findings(plan, harvest)]
    return tuple(dict.fromkeys(n for n in found if n not in known))


def missing_answers_note(missing: tuple[str, ...]) -> tuple[str, ...]:
    """The answer cells a notebook no longer has (found by their nbgrader id)."""
    if not missing:
        return ()
    cells = ", ".join(f"`{m}`" for m in missing)
    return (
        f"Your notebook has no answer cell {cells} (the cells given for the answers, found by "
        "their nbgrader id): the course notebook's stubs were graded in their place. Write "
        "each answer in the cell given for it.",
    )


def harvest_notes(
    nb: NotebookNode,
    assignment: str,
    plan: Plan,
    harvest: Harvest | None,
    findings: tuple[tuple[str, str, str], ...],
    why: str | None,
) -> tuple[str, ...]:
    """What the grader's calls into the student's code noticed (`harvest` is None when
    there were none, and `why` says why)."""
    notes: tuple[str, ...] = ()
    if why and "results messages" in why:
        notes += (f"Integrity: {why}.",)
    orders = {
        tuple(c.facts["arg_order"])
        for c in (harvest.calls.values() if harvest is not None else ())
        if c.facts.get("arg_order")
    }
    for order in sorted(orders):
        notes += (
            f"Model's constructor takes ({', '.join(order)}), not the lesson's "
            "(w1, b1, w2, b2): the grader passed the weights by name, so it cost nothing, "
            "but code that calls Model(w1, b1, w2, b2) would give it the wrong tensors.",
        )
    notes += _device_notes(findings)
    notes += _integrity_notes(nb, assignment, plan, harvest)
    if harvest is not None and harvest.debugger_calls:
        notes += (
            f"The grader skipped {harvest.debugger_calls} debugger call(s) (breakpoint(), "
            "pdb or ipdb set_trace): they cost nothing, but remove them before you submit.",
        )
    return notes
