"""The harvest cell's entry points: `adopt` the start cell's recorded data, then `harvest`:
every call of the plan run on the grader's inputs, and the results sent back.
"""

import difflib
import signal
import time
from typing import Any

import torch

from .answers import _describe, _error, _send
from .gradwatch import _Watches
from .integrity import _disarm_hooks, _integrity, _loaded_from
from .limits import _on_alarm
from .recipes import call_recipe
from .recording import _pick
from .state import _MISSING, CallTimeout, _State, adopt
from .timing import _speed
from .watch import _device_watch, _global_reads, _stored_attributes
from .wire import CallEntry, KernelPlan, PlannedCall, Results, ValueInfo, value_key

__all__ = ["adopt", "harvest"]


def harvest(plan_json: str, inputs_b64: str) -> None:
    """Run every call of the plan (JSON) on the inputs (`torch.save`d, base64) and send
    the results back as this cell's output."""
    import base64
    import io

    from IPython import get_ipython

    hooks = _disarm_hooks()
    plan = KernelPlan.from_json(plan_json)
    ns = get_ipython().user_ns
    device = torch.device(plan.device)
    # TF32 rounds float32 matmuls on recent GPUs to ~3 digits; grade at full precision even
    # if the notebook's own set-up cell was deleted.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    integrity = _integrity() + hooks
    for m in _loaded_from(plan.protected):
        note = f"the notebook imported the grader's `{m}` package"
        if note not in integrity:
            integrity.append(note)
    inputs = torch.load(io.BytesIO(base64.b64decode(inputs_b64)), weights_only=True)
    defined = sorted(k for k, v in ns.items() if callable(v) and not k.startswith("_"))
    tensors: dict[str, torch.Tensor] = {}
    calls: dict[str, CallEntry] = {}
    # id of an object that ran out of time -> its limit; it is not called again
    hung: dict[int, float] = {}
    rungs: dict[str, object] = {}  # exercise cell -> the matmul that answered without an error
    for call in plan.calls:
        calls[call.key] = _call(call, ns, inputs, device, defined, tensors, hung, rungs)
    speed = None
    if plan.speed and rungs:
        timeout = plan.calls[0].timeout
        speed = _speed(plan.speed, [(c, f) for c, f in rungs.items() if id(f) not in hung],
                       device, timeout)  # fmt: skip
    results = Results(calls, tuple(defined), _State.debugger_calls, tuple(integrity), speed)
    _send(results, tensors)


def _call(call: PlannedCall, ns, inputs, device, defined, tensors, hung, rungs) -> CallEntry:
    """One call of the plan: the definition picked, called by its protocol's recipe, its
    values described into `tensors`. An object that ran out of time goes into `hung` and is
    not called again; a matmul rung that answered goes into `rungs`, to be timed."""
    key = call.key
    obj, how = _pick(ns, call)
    values: dict[str, ValueInfo] = {}
    error: dict[str, Any] | None = None
    started = time.perf_counter()
    if id(obj) in hung:
        error = {
            "type": "Timeout",
            "message": f"still running after {hung[id(obj)]} s on an earlier input",
        }
    elif obj is _MISSING:
        candidates = [d for d in defined if d != call.target]
        close = difflib.get_close_matches(call.target, candidates, n=1, cutoff=0.6)
        error = {
            "type": "Missing",
            "message": f"no {call.target} defined",
            "close": close[0] if close else None,
            "in_cell": how == "cell",
        }
    else:
        _State.facts = {}
        reads = _global_reads(obj, ns, call.recipe.globals)
        if reads:
            _State.facts["globals"] = reads
            own = sorted(set(reads) & _stored_attributes(obj))
            if own:
                _State.facts["globals_stored"] = own
        try:
            answers = _run_call(obj, call.recipe, inputs[key], device, call.timeout, ns)
            values = {k: _describe(value_key(key, k), v, tensors) for k, v in answers.items()}
            if call.recipe.timed and call.cell:
                rungs.setdefault(call.cell, obj)
        except CallTimeout:
            hung[id(obj)] = call.timeout
            error = {"type": "Timeout", "message": f"still running after {call.timeout} s"}
        except BaseException as exc:
            error = _error(exc)
    seconds = time.perf_counter() - started
    # (a hung object is not called again: its entry carries the facts left by the last
    # call that ran, as it always has)
    facts = _State.facts if obj is not _MISSING and _State.facts else {}
    return CallEntry(how, seconds, values, error, facts)


def _run_call(obj, recipe, inputs, device, timeout, ns):
    """The recipe on fresh copies of the inputs on the device, under the call's
    alarm and the watches; what they saw goes into the call's facts."""
    t = {k: v.to(device).clone() for k, v in inputs.items()}
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    # Autograd used by the graded code itself (the lesson's point is to write the
    # gradients by hand) is counted op by op, above and below the dispatcher (gradwatch):
    # torch.func, autograd.functional and the engine's own entry points all go through
    # ops that build or run a graph. (Not with saved-tensor hooks: torch.func refuses to
    # run under them.) Not below the dispatcher for matmul: its rungs are Python loops of
    # thousands of ops, each slower under a dispatch mode, and autograd, which gives
    # gradients, cannot give a product.
    watches = _Watches(_device_watch(), below=not recipe.timed)
    values = {}
    try:
        with watches:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                values = call_recipe(recipe, obj, t, ns)
                if device.type == "cuda":
                    torch.cuda.synchronize()  # surface asynchronous CUDA errors inside the call
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        return values
    finally:
        signal.signal(signal.SIGALRM, previous)
        autograd = watches.autograd(values, t)
        if autograd:
            _State.facts["autograd"] = autograd
        if watches.removed:
            _State.facts["unwatched"] = watches.removed
        if watches.device.found:
            _State.facts["device_unaware"] = watches.device.found[:5]
