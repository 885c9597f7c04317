"""Autograd seen below `__torch_function__` (backprop_lab/kernel/gradwatch.py): every route
around the device watch (a TorchFunctionMode) is still seen by another watch, the lesson's
own code by none, and what the kernel reports becomes the Integrity line a person reads.

The routes run in this process, through the harvest's own `_run_call` (no kernel); a few
are graded end to end (slow) to prove the line reaches the results."""

from __future__ import annotations

import linecache
import threading
from pathlib import Path

import nbformat
import pytest
import torch
from grading_tools import full_marks
from notebook_tools import SOLUTION, edited, fn
from test_kernel_parts import DIMS
from test_kernel_parts import LESSON as KERNEL_PARTS_LESSON

from backprop_lab import reference as ref
from backprop_lab.course import Case, exercises_for, get, make_inputs
from backprop_lab.judge.notes import harvest_notes
from backprop_lab.judge.readback import CallResult, Harvest
from backprop_lab.kernel import entry, gradwatch, recipes, state, watch
from backprop_lab.pipeline import Options, grade
from backprop_lab.plan.calls import make_plan

CPU = torch.device("cpu")
LINE = "Integrity: lin_grad calls PyTorch's autograd"
SWITCHED_OFF = "Integrity: lin_grad switched off the grader's watch for autograd"

# lin_grad's gradients from a backward pass on detached copies: the body each route wraps
BACKWARD = """
x, ww, bb = (t.detach().requires_grad_() for t in (inp, w, b))
(x @ ww + bb).backward(out.g)
inp.g, w.g, b.g = x.grad.clone(), ww.grad.clone(), bb.grad.clone()
"""

LIN_GRAD = get("lin_grad").recipe


def lin_grad(body: str, before: str = "") -> str:
    return before + fn("lin_grad", body, "inp, out, w, b")


def indented(body: str) -> str:
    return "\n".join(f"    {line}" for line in body.strip("\n").splitlines())


ROUTES = {
    # the control: what the device watch has always seen
    "backward": lin_grad(BACKWARD),
    "disable-torch-function": lin_grad(
        "with torch._C.DisableTorchFunction():\n" + indented(BACKWARD)
    ),
    "a-thread": lin_grad(
        "t = threading.Thread(target=_work, args=(inp, out, w, b))\nt.start()\nt.join()",
        "import threading\n\n" + fn("_work", BACKWARD, "inp, out, w, b") + "\n",
    ),
    # (guarded: the notebook's own test cells call it with no mode on the stacks)
    "popped-mode-stacks": lin_grad(
        "if torch._C._len_torch_function_stack():\n    torch._C._pop_torch_function_stack()\n"
        "if torch._C._len_torch_dispatch_stack():\n    torch._C._pop_torch_dispatch_stack(None)\n"
        + BACKWARD
    ),
    # popped and put back: the stacks look untouched after the call
    "popped-and-pushed-back": lin_grad(
        "f = torch._C._pop_torch_function_stack()\n"
        "d = torch._C._pop_torch_dispatch_stack(None)\n" + BACKWARD + "\n"
        "torch._C._push_on_torch_dispatch_stack(d)\ntorch._C._push_on_torch_function_stack(f)"
    ),
    "disable-torch-function-and-dispatch": lin_grad(
        "with torch._C.DisableTorchFunction(), torch._C._DisableTorchDispatch():\n"
        + indented(BACKWARD)
    ),
    "torch-func-grad-and-vjp": lin_grad(
        "inp.g = vjp(lambda x: x @ w + b, inp)[1](out.g)[0]\n"
        "w.g = grad(lambda ww: ((inp @ ww + b) * out.g).sum())(w)\n"
        "b.g = out.g.sum(0)",
        "from torch.func import grad, vjp\n\n",
    ),
    # forward mode: no backward engine, no graph
    "torch-func-jacfwd": lin_grad(
        "inp.g = out.g @ w.t()\n"
        "w.g = jacfwd(lambda ww: ((inp @ ww + b) * out.g).sum())(w)\n"
        "b.g = out.g.sum(0)",
        "from torch.func import jacfwd\n\n",
    ),
    "engine-run-backward": lin_grad(
        "x, ww, bb = (t.detach().requires_grad_() for t in (inp, w, b))\n"
        "_engine_run_backward((x @ ww + bb,), (out.g,), False, False, (),\n"
        "                     allow_unreachable=True, accumulate_grad=True)\n"
        "inp.g, w.g, b.g = x.grad, ww.grad, bb.grad",
        "from torch.autograd.graph import _engine_run_backward\n\n",
    ),
    "autograd-functional-vjp": lin_grad(
        "inp.g = vjp(lambda x: x @ w + b, inp, out.g)[1]\n"
        "w.g = vjp(lambda ww: inp @ ww + b, w, out.g)[1]\n"
        "b.g = out.g.sum(0)",
        "from torch.autograd.functional import vjp\n\n",
    ),
}
# The routes the device watch is blind to, and the watches below it that still see each
# (at least these: "dispatch" the dispatch mode, "engine" the profiler's record of the
# backward engine, "left" the tensors the call left behind).
BELOW = {
    "disable-torch-function": {"dispatch", "engine"},
    "a-thread": {"engine"},
    "popped-mode-stacks": {"engine"},
    "popped-and-pushed-back": {"engine"},
    "disable-torch-function-and-dispatch": {"engine"},
}
# Routes that take a watch off its stack: reported as switched off, autograd or not.
UNWATCHED = {"popped-mode-stacks"}


def student(source: str, name: str = "lin_grad") -> object:
    """Defined as a notebook cell defines it: its own file name and namespace."""
    filename = f"<cell-{abs(hash(source))}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    ns = {"torch": torch}
    exec(compile(source, filename, "exec"), ns)
    return ns[name]


@pytest.fixture
def facts(monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setattr(state._State, "facts", {})
    return state._State.facts


def lin_inputs() -> dict:
    return make_inputs("lin_grad", Case((6, 4, 3), "float64"), 0, "lin_grad")


def stacks() -> tuple[int, int]:
    return torch._C._len_torch_function_stack(), torch._C._len_torch_dispatch_stack()


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_autograd_is_reported_whichever_route_reaches_it(route: str, facts: dict) -> None:
    inputs = lin_inputs()
    values = entry._run_call(student(ROUTES[route]), LIN_GRAD, inputs, CPU, 10, {})
    # the answer is right: it is the route that is reported, not a wrong value
    torch.testing.assert_close(values["inp.g"], inputs["out.g"] @ inputs["w"].t())
    torch.testing.assert_close(values["w.g"], inputs["inp"].t() @ inputs["out.g"])
    assert facts.get("autograd", 0) > 0, facts
    assert ("unwatched" in facts) == (route in UNWATCHED), facts
    assert stacks() == (0, 0)  # the watches are off again, whatever the call did


@pytest.mark.parametrize("route", sorted(BELOW))
def test_a_route_around_the_device_watch_is_seen_below_it(route: str) -> None:
    inputs = {k: v.clone() for k, v in lin_inputs().items()}
    watches = gradwatch._Watches(watch._device_watch())
    with watches:
        values = recipes.call_recipe(LIN_GRAD, student(ROUTES[route]), inputs, {})
    seen = {
        "function": watches.device.autograd,
        "dispatch": watches.dispatch.autograd,
        "engine": watches.nodes,
        "left": gradwatch._left_in_a_graph(values, inputs),
    }
    assert seen["function"] == 0, seen  # the route escapes the TorchFunctionMode ...
    assert {k for k, n in seen.items() if n} >= BELOW[route], seen  # ... not these


def test_a_thread_started_before_the_call_is_seen_too(facts: dict) -> None:
    # a worker the notebook started in an earlier cell, asked for gradients during the call
    asked, done, box = threading.Event(), threading.Event(), {}

    def worker() -> None:
        asked.wait(10)
        x = box["w"].detach().requires_grad_()
        (box["inp"] @ x).backward(box["out.g"])
        box["w.g"] = x.grad.clone()
        done.set()

    def lin_grad(inp, out, w, b):
        box.update({"inp": inp, "w": w, "out.g": out.g})
        asked.set()
        done.wait(10)
        inp.g, w.g, b.g = out.g @ w.t(), box["w.g"], out.g.sum(0)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    entry._run_call(lin_grad, LIN_GRAD, lin_inputs(), CPU, 10, {})
    thread.join(10)
    assert facts.get("autograd", 0) > 0 and "unwatched" not in facts, facts


def test_a_profiler_of_the_call_s_own_is_reported_as_switching_the_watch_off(facts: dict) -> None:
    honest = "inp.g = out.g @ w.t()\nw.g = inp.t() @ out.g\nb.g = out.g.sum(0)"
    f = student(lin_grad("with torch.profiler.profile():\n" + indented(honest)))
    entry._run_call(f, LIN_GRAD, lin_inputs(), CPU, 10, {})
    assert facts == {"unwatched": ["the profiler's session was stopped or replaced"]}


def test_what_a_call_leaves_in_a_graph_is_counted() -> None:
    # seen after the call, whichever thread made it: a graph's tensor returned or stored,
    # a grader's input made to require grad
    inputs = {"inp": torch.ones(2), "w": torch.ones(2)}
    assert gradwatch._left_in_a_graph({"return": None, "w.g": torch.ones(2)}, inputs) == 0
    assert gradwatch._left_in_a_graph({"w.g": torch.ones(2, requires_grad=True) * 2}, inputs) == 1
    inputs["w"].requires_grad_()
    assert gradwatch._left_in_a_graph({}, inputs) == 1


# -- the lesson's code: nothing to report ------------------------------------------------------

# the lesson's code for every protocol (test_kernel_parts' table, less the one it calls
# through the notebook's globals)
LESSON = {name: entry for name, entry in KERNEL_PARTS_LESSON.items() if entry[0] is not None}


@pytest.mark.parametrize("protocol", sorted(LESSON))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_lesson_s_code_is_reported_by_no_watch(protocol: str, dtype: str, facts: dict) -> None:
    obj, dims = LESSON[protocol]
    inputs = make_inputs(protocol, Case(dims, dtype), 0, protocol)
    entry._run_call(obj, get(protocol).recipe, inputs, CPU, 10, {})
    assert facts == {}
    assert stacks() == (0, 0)


def test_the_lesson_s_forward_and_backward_is_reported_by_no_watch(facts: dict) -> None:
    source = "def forward_and_backward(inp, targ):\n    return _ref(inp, targ, w1, b1, w2, b2)\n"
    f = student(source, "forward_and_backward")
    f.__globals__["_ref"] = ref.forward_and_backward
    case = Case(DIMS["forward_and_backward"], "float32")
    inputs = make_inputs("forward_and_backward", case, 0, "fb")
    entry._run_call(f, get("forward_and_backward").recipe, inputs, CPU, 10, f.__globals__)
    assert facts == {}


# -- what the grader says ----------------------------------------------------------------------


def test_each_fact_is_an_integrity_line() -> None:
    plan = make_plan(exercises_for("backprop"), seed=0, device="cpu")
    key = next(k for k, c in plan.calls.items() if c.target == "lin_grad")
    unwatched = ["the dispatch mode was taken off its stack"]
    calls = {key: CallResult({}, None, "cell", 0.0, {"autograd": 3, "unwatched": unwatched})}
    nb = nbformat.read(SOLUTION["backprop"], as_version=4)
    notes = harvest_notes(nb, "backprop", plan, Harvest(calls, ()), (), None)
    assert [n for n in notes if n.startswith("Integrity:")] == [
        f"{LINE} (backward / torch.autograd): the exercise is to write the gradients by hand.",
        f"{SWITCHED_OFF} while it ran (the dispatch mode was taken off its stack): no answer "
        "to this lesson needs to.",
    ]


# -- end to end: the line reaches the results ------------------------------------------------

GRADED = {
    "disable-torch-function": (LINE,),
    "a-thread": (LINE,),
    "popped-mode-stacks": (LINE, SWITCHED_OFF),
}


@pytest.mark.slow
@pytest.mark.parametrize("route", sorted(GRADED))
def test_a_graded_notebook_that_escapes_the_device_watch_is_reported(
    route: str, tmp_path: Path
) -> None:
    path = tmp_path / "backprop.ipynb"
    nbformat.write(edited(SOLUTION["backprop"], [("lin_grad", ROUTES[route], None)]), path)
    result = grade(path, Options(seed=3))
    assert result.score.total == result.score.max_total == full_marks("backprop")  # unchanged
    for phrase in GRADED[route]:
        assert any(n.startswith(phrase) for n in result.score.notes), result.score.notes


@pytest.mark.slow
def test_the_instructor_s_solution_gets_no_autograd_line(tmp_path: Path) -> None:
    result = grade(SOLUTION["backprop"], Options(seed=3))
    assert result.score.total == full_marks("backprop")
    assert not [n for n in result.score.notes if "autograd" in n], result.score.notes
