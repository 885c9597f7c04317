"""Autograd seen below `__torch_function__`: the device watch (watch.py) is a
TorchFunctionMode, which `torch._C.DisableTorchFunction()`, a thread or a popped mode
stack switches off. These watches are independent of it, and each sees where another is
blind:

- a TorchDispatchMode, under the autograd key, which every op of the calling thread
  reaches whatever became of `__torch_function__`: it counts ops the backward engine runs
  (`torch._C._current_autograd_node()`), ops on tensors that require grad with grad mode
  on (a graph being built) and forward-mode AD's own ops (torch.func.jvp, jacfwd);
- the profiler's record of the backward engine in every thread of the process: each node
  the engine runs is a BACKWARD_FUNCTION event. Only that scope and our own marker are
  recorded, so a forward op costs nothing more;
- after the call: the tensors it returned or left in `.g`/`.grad`, checked for `grad_fn`
  and `requires_grad`, and the grader's inputs for `requires_grad`; and whether the modes
  are still on their stacks and the profiler's session is still ours (the marker, random
  per call, is in its record). Where not, the watch was switched off during the call.
"""

import os

import torch


def _dispatch_watch():
    """A TorchDispatchMode that counts, in `autograd`, the ops autograd has a hand in."""
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    # ops that only forward-mode AD runs: making and reading dual tensors, zero tangents
    forward_ad = {aten._make_dual, aten._unpack_dual, aten._fw_primal,
                  aten._has_same_storage_numel, aten._efficientzerotensor}  # fmt: skip

    class AutogradWatch(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.autograd = 0

        @classmethod
        def _should_skip_dynamo(cls):
            # True wraps __torch_dispatch__ in torch._dynamo.disable, whose first call
            # imports torch._dynamo: 2 s of every grading, for a compiler nothing here uses
            return False

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if (
                torch._C._current_autograd_node() is not None
                or func.overloadpacket in forward_ad
                or (torch.is_grad_enabled() and _requires_grad(args))
            ):
                self.autograd += 1
            return func(*args, **(kwargs or {}))

    return AutogradWatch()


def _requires_grad(args) -> bool:
    for a in args:
        if isinstance(a, torch.Tensor):
            if a.requires_grad:
                return True
        elif isinstance(a, list | tuple) and _requires_grad(a):
            return True
    return False


class _EngineWatch:
    """A profiler session over one call that records only the backward engine's nodes, in
    every thread, and a marker of its own to know the session it reads back is its own."""

    def __init__(self):
        self.marker = f"autograde-watch-{os.urandom(8).hex()}"
        self.on = False

    def start(self) -> None:
        from torch._C._autograd import _enable_profiler, _prepare_profiler, kineto_available
        from torch._C._profiler import ProfilerActivity as Activity
        from torch._C._profiler import ProfilerConfig, ProfilerState, RecordScope
        from torch._C._profiler import _ExperimentalConfig as Experimental

        if not kineto_available():
            return  # a build without the profiler: the other watches remain
        # Kineto logs each session start and stop to the process's stderr unless told not
        # to; read once, when the profiler is first used.
        os.environ["KINETO_LOG_LEVEL"] = "6"
        config = ProfilerConfig(
            ProfilerState.KINETO, False, False, False, False, False,
            Experimental(profile_all_threads=True),
        )  # fmt: skip
        activities = {Activity.CPU}
        try:
            _prepare_profiler(config, activities)
            # torch's stub (_C/_autograd.pyi) lacks the binding's third parameter, `scopes`
            # (its docstring: `_enable_profiler(config, activities, scopes=set())`)
            _enable_profiler(config, activities,  # type: ignore[call-arg]
                             {RecordScope.BACKWARD_FUNCTION, RecordScope.USER_SCOPE})  # fmt: skip
            with torch.autograd.profiler.record_function(self.marker):
                pass
        except RuntimeError:
            return  # a profiler this build cannot start: the other watches remain
        self.on = True

    def stop(self) -> tuple[int, bool]:
        """(nodes the backward engine ran during the call, whether the session read back
        is still the one `start` began)."""
        from torch._C._autograd import _disable_profiler
        from torch._C._profiler import RecordScope

        if not self.on:
            return 0, True
        self.on = False
        try:
            events = _disable_profiler().events()
        except RuntimeError:
            return 0, False
        backward = int(RecordScope.BACKWARD_FUNCTION.value)
        nodes = sum(1 for e in events if e.scope() == backward)
        return nodes, any(e.name() == self.marker for e in events)


class _Watches:
    """The device watch (a TorchFunctionMode) over one graded call and, where `below`, the
    dispatch and engine watches, put on together and always taken off, whatever the call
    did to the mode stacks. `removed` says which the call took off; `autograd()` counts
    what they all saw."""

    def __init__(self, device_watch, below: bool = True):
        self.device = device_watch
        self.dispatch = _dispatch_watch() if below else None
        self.engine = _EngineWatch() if below else None
        self.removed: list[str] = []
        self.nodes = 0

    def __enter__(self):
        self.depths = (torch._C._len_torch_function_stack(), torch._C._len_torch_dispatch_stack())
        if self.engine is not None:
            self.engine.start()
        self.device.__enter__()
        if self.dispatch is not None:
            self.dispatch.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        function_depth, dispatch_depth = self.depths
        if self.dispatch is not None and not _take_off(
            self.dispatch, dispatch_depth, torch._C._len_torch_dispatch_stack,
            torch._C._get_dispatch_stack_at, lambda: torch._C._pop_torch_dispatch_stack(None),
            torch._C._push_on_torch_dispatch_stack,
        ):  # fmt: skip
            self.removed.append("the dispatch mode was taken off its stack")
        if not _take_off(self.device, function_depth, torch._C._len_torch_function_stack,
                         torch._C._get_function_stack_at, torch._C._pop_torch_function_stack,
                         torch._C._push_on_torch_function_stack):  # fmt: skip
            self.removed.append("the torch function mode was taken off its stack")
        if self.engine is not None:
            self.nodes, ours = self.engine.stop()
            if not ours:
                self.removed.append("the profiler's session was stopped or replaced")

    def autograd(self, values: dict, inputs: dict) -> int:
        """How often autograd was seen: by each watch, and in what the call left behind."""
        seen = self.device.autograd + self.nodes
        if self.dispatch is not None:
            seen += self.dispatch.autograd + _left_in_a_graph(values, inputs)
        return seen


def _left_in_a_graph(values: dict, inputs: dict) -> int:
    """The call's returned and stored tensors that belong to a graph, and the grader's
    inputs it made require grad: seen whichever thread did it."""
    left = [v for v in values.values() if isinstance(v, torch.Tensor)]
    given = [v for v in inputs.values() if isinstance(v, torch.Tensor)]
    return sum(1 for v in left if v.requires_grad or v.grad_fn is not None) + sum(
        1 for v in given if v.requires_grad
    )


def _take_off(mode, depth, length, at, pop, push) -> bool:
    """Take `mode`, and whatever the call pushed above it, off its stack, leaving `depth`
    modes; True if it was still where it was put. (Put back on top for its own `__exit__`,
    which restores what its `__enter__` set.)"""
    intact = length() > depth and at(depth) is mode
    while length() > depth:
        pop()
    push(mode)
    mode.__exit__(None, None, None)
    return intact
