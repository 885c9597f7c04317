"""The grader's code that runs *inside the student's kernel*.

`harvest.py` injects this module's source into the notebook (compiled under the file name
`<autograder>`, so tracebacks can tell grader frames from student frames) as two cells:
one at the top that starts recording every definition of the graded names as cells run,
and one at the end that carries the grader's inputs, calls the student's functions on
them and sends back plain data only (tensors saved for `torch.load(weights_only=True)`,
and JSON) as one display message of its own type, in that cell's output, which the
grader reads from the kernel's message stream. Nothing reaches the disk, and nothing
here trusts or returns a student object to the grader.

Only the standard library and torch: the kernel may be any environment that can run the
notebook.
"""

import contextlib
import difflib
import dis
import hashlib
import inspect
import json
import linecache
import os
import signal
import sys
import time
import traceback

import torch

GRADER_FILE = "<autograder>"
_MISSING = object()


class CallTimeout(BaseException):
    """Raised by the per-call alarm; a BaseException so `except Exception` in student
    code cannot swallow it."""


class CellTimeout(BaseException):
    """Raised by the cell alarm in a notebook cell that runs past the cell limit. Raised
    inside the kernel, where the cell is running, rather than by interrupting the kernel
    from outside: the student's cell stops, the notebook goes on, and the grader's calls
    at the end still run."""


class _State:
    # Class attributes as module-level state: this code runs once per kernel.
    targets: tuple = ()
    # name -> list of (sha1 of the defining cell's source, object, position), in
    # definition order; position counts the cells run so far
    versions: dict = {}  # noqa: RUF012
    last: dict = {}  # noqa: RUF012
    ran: dict = {}  # noqa: RUF012  sha1 of a cell's source -> position it first ran at
    cell_timeout = None  # seconds a student's cell may run
    debugger_calls = 0  # left-over breakpoints the grader skipped
    facts: dict = {}  # noqa: RUF012  what a recipe noticed about the current call
    originals: dict = {}  # noqa: RUF012  torch's functions as the kernel started
    # what the kernel had before the notebook ran: threads (idents), signal handlers
    threads: tuple = ()
    modules: tuple = ()  # names in sys.modules (the kernel's own imports)
    handlers: dict = {}  # noqa: RUF012
    callbacks: dict = {}  # noqa: RUF012  IPython's own event callbacks


def cell_sha(source):
    return hashlib.sha1(source.encode("utf-8", "surrogatepass")).hexdigest()


def start(targets, cell_timeout=None, memory_mb=None, output_kb=None, confine_writes=False):
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


# What grading relies on inside the kernel: torch's comparisons and autograd, and the
# functions the harvest writes its results with.
_WATCHED = ("torch.allclose", "torch.isclose", "torch.equal", "torch.testing.assert_close",
            "torch.Tensor.__eq__", "torch.Tensor.backward", "torch.autograd.backward",
            "torch.autograd.grad", "torch.save", "torch.load", "json.dump",
            "json.dumps")  # fmt: skip


def _resolve(dotted):
    """(owner, attribute name) of a dotted name such as `torch.Tensor.backward`."""
    first, *path, last = dotted.split(".")
    owner = {"torch": torch, "json": json}[first]
    for part in path:
        owner = getattr(owner, part)
    return owner, last


def _torch_functions():
    return {d: getattr(*_resolve(d)) for d in _WATCHED}


def _integrity():
    """What the notebook did to the grading environment: reported, never scored. Torch
    is put back as it was, so the grader's calls run on the real functions."""

    notes = []
    for name, original in _State.originals.items():
        owner, attr = _resolve(name)
        if getattr(owner, attr) is not original:
            notes.append(f"the notebook replaced {name}")
            setattr(owner, attr, original)
    notes += [
        f"the notebook imported the grader's `{m}` package"
        for m in ("reference", "autograder")
        if m in sys.modules
    ]
    return notes


def _signals():
    return [s for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP)]


def _snapshot_hooks():
    import threading

    _State.threads = tuple(t.ident for t in threading.enumerate())
    _State.modules = tuple(sys.modules)
    _State.handlers = {int(s): signal.getsignal(s) for s in _signals()}
    from IPython import get_ipython

    _State.callbacks = {k: list(v) for k, v in get_ipython().events.callbacks.items()}


_INFRASTRUCTURE = ("ipykernel", "IPython", "zmq", "jupyter_client", "tornado", "matplotlib",
                   "torch")  # fmt: skip


def _infrastructure(thread):
    """A thread the kernel or a library started for itself (an output watcher, zmq's
    garbage collector), not one the notebook's own code started."""
    for owner in (type(thread), getattr(thread, "_target", None)):
        module = getattr(owner, "__module__", None) or ""
        if module.split(".")[0] in _INFRASTRUCTURE:
            return True
    return False


def _disarm_hooks():
    """Before the grader's calls: nothing the notebook registered may run during them or
    after them (an IPython event, a trace function, an atexit callback, a signal
    handler); each is removed, and reported (atexit callbacks only removed: libraries
    register them too). Threads cannot be stopped from here: they are reported, and the
    grader accepts one results message only."""
    import atexit
    import threading

    from IPython import get_ipython

    notes = []
    events = get_ipython().events
    for name, callbacks in events.callbacks.items():
        theirs = [
            c
            for c in callbacks
            if c not in _State.callbacks.get(name, ())
            and getattr(getattr(c, "__code__", None), "co_filename", None) != GRADER_FILE
        ]
        if theirs:
            notes.append(f"the notebook registered {len(theirs)} IPython {name} hook(s)")
        callbacks.clear()  # the grader's own too: no cell runs after this one
    if sys.gettrace() is not None or sys.getprofile() is not None:
        notes.append("the notebook installed a trace or profile function")
    sys.settrace(None)
    sys.setprofile(None)
    threading.settrace(None)
    threading.setprofile(None)
    atexit._clear()  # libraries register some too: cleared, not reported
    changed = []
    for sig in _signals():
        before = _State.handlers.get(int(sig), signal.SIG_DFL)
        if sig == signal.SIGALRM or signal.getsignal(sig) is before:
            continue
        changed.append(sig.name)
        with contextlib.suppress(OSError, TypeError, ValueError):
            signal.signal(sig, before if before is not None else signal.SIG_DFL)
    if changed:
        notes.append(f"the notebook installed signal handlers ({', '.join(changed)})")
    extra = [t for t in threading.enumerate()
             if t.ident not in _State.threads and not _infrastructure(t)]  # fmt: skip
    if extra:
        notes.append(f"the notebook left {len(extra)} thread(s) running while it was graded")
    return notes


_WRITE_EVENTS = {"os.remove", "os.rmdir", "os.rename", "shutil.rmtree", "shutil.move",
                 "os.truncate", "os.chmod", "os.mkdir"}  # fmt: skip


def _confine_writes():
    """Python-level writes, deletions and renames outside the notebook's folder, the
    temporary directory and the usual caches raise PermissionError. An audit hook: it
    cannot be removed once added, and it sees `open` and `os` calls from any library."""
    import tempfile

    home = os.path.expanduser("~")
    roots = tuple(
        os.path.realpath(p) + os.sep
        for p in (
            os.getcwd(),
            tempfile.gettempdir(),
            os.path.join(home, ".cache"),
            os.path.join(home, ".ipython"),
            os.path.join(home, ".config"),
            os.path.join(home, ".local", "share", "jupyter"),
            "/dev",
        )
    )

    def allowed(path):
        if isinstance(path, int):  # an open file descriptor: already allowed once
            return True
        real = os.path.realpath(os.fsdecode(path)) + os.sep
        return real.startswith(roots)

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (mode is not None and any(c in mode for c in "wax+")) or (
                mode is None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            )
            if writing and path is not None and not allowed(path):
                raise PermissionError(
                    f"the autograder confines file writes to the notebook's folder: {path}"
                )
        elif event in _WRITE_EVENTS and args and not allowed(args[0]):
            raise PermissionError(
                f"the autograder confines file changes to the notebook's folder: {args[0]}"
            )

    sys.addaudithook(hook)


def _confine_signals():
    """`os.kill` and `os.killpg` reach only this kernel and the processes it started:
    a notebook that kills its parent or every process of the user would take the grader
    (and other students' grading) down with it."""

    me = os.getpid()

    def descends_from_me(pid):
        try:
            while pid > 1:
                if pid == me:
                    return True
                with open(f"/proc/{pid}/stat", "rb") as stat:
                    pid = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        return False

    def hook(event, args):
        if event not in ("os.kill", "os.killpg") or len(args) < 2 or args[1] == 0:
            return  # signal 0 only asks whether a process exists
        target = args[0]
        if event == "os.kill" and target < -1:
            target = -target  # a process group
        if (event == "os.kill" and target == 0) or target == os.getpgrp():
            return  # this kernel's own process group
        if target > 1 and (not os.path.isdir("/proc") or descends_from_me(target)):
            return
        raise PermissionError(
            f"the autograder lets a notebook send signals only to itself and the processes "
            f"it started, not to process {args[0]}"
        )

    sys.addaudithook(hook)


def _limit_memory(megabytes):
    """A broadcast that asks for many GB then fails in the student's call, with torch's
    "can't allocate memory", instead of taking the machine down with it."""
    import resource

    limit = int(megabytes) * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


class _Budget:
    written = 0
    limit = 0
    noted = False


def _cap_output(limit):
    """Printing and displays are capped per cell: a loop that prints a gigabyte would
    otherwise fill the grader's memory with the notebook's outputs. IPython puts the
    streams' `write` back after each cell, so the cap is re-installed before every cell."""
    from IPython import get_ipython

    _Budget.limit = limit
    _install_cap()
    pub = get_ipython().display_pub
    pub.publish = _capped_display(pub.publish)


def _install_cap():
    if not _Budget.limit:
        return
    for stream in (sys.stdout, sys.stderr):
        if not getattr(stream.write, "_autograde_cap", False):
            stream.write = _capped(stream.write)


def _capped_display(publish):
    def capped(data, *args, **kwargs):
        if _Budget.limit:
            size = sum(len(v) if isinstance(v, str | bytes) else len(json.dumps(v, default=str))
                       for v in (data or {}).values())  # fmt: skip
            if _Budget.written + size > _Budget.limit:
                _Budget.written = _Budget.limit
                return None
            _Budget.written += size
        return publish(data, *args, **kwargs)

    capped._autograde_cap = True
    capped._autograde_original = publish
    return capped


def _capped(write):
    def capped(text):
        if _Budget.written >= _Budget.limit:
            if not _Budget.noted:
                _Budget.noted = True
                write(f"\n[autograder: output beyond {_Budget.limit // 1024} kB not kept]\n")
            return len(text)
        _Budget.written += len(text)
        return write(text)

    capped._autograde_cap = True
    return capped


def _skip_debugger(*args, **kwargs):
    _State.debugger_calls += 1


def neutralise_debuggers():
    """A left-over `breakpoint()`, `pdb.set_trace()` or `ipdb.set_trace()` would wait for
    a person at a prompt that no one sees: each becomes a no-op that is counted, so the
    report can tell the student to remove them. nbgrader's kernels run this too, from
    nbgrader_config.py, so a left-over debugger costs nothing there either."""
    import pdb
    import types

    os.environ["PYTHONBREAKPOINT"] = "0"
    sys.breakpointhook = _skip_debugger
    for module in (pdb,):
        module.set_trace = _skip_debugger
        module.post_mortem = _skip_debugger
        module.pm = _skip_debugger
    pdb.Pdb.set_trace = _skip_debugger
    fake_ipdb = types.ModuleType("ipdb")
    for name in ("set_trace", "post_mortem", "pm", "sset_trace", "launch_ipdb_on_exception"):
        setattr(fake_ipdb, name, _skip_debugger)
    sys.modules["ipdb"] = fake_ipdb
    try:
        from IPython.core import debugger

        debugger.set_trace = _skip_debugger
        debugger.Pdb.set_trace = _skip_debugger
    except ImportError:
        pass


def _on_cell_alarm(signum, frame):
    raise CellTimeout(
        f"this cell ran longer than {_State.cell_timeout:g} s and was stopped by the autograder"
    )


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


def _pick(ns, call):
    """The object to grade for a call: the definition from the exercise's own cell if
    it can be told apart, else the k-th definition, else the last one bound."""
    versions = _State.versions.get(call["target"], [])
    own = call.get("cell_sha")
    for sha, obj, _ in versions:
        if sha == own:
            return obj, "cell"
    others = set(call.get("other_shas") or ())
    if others and own in _State.ran:
        # The exercise's cell ran but bound no new `target`. Another rung's definition
        # must not be graded in its place; one in a cell of its own, run after this cell
        # and before the next rung's, is the student's (a split or moved cell).
        for sha, obj, position in versions:
            if position > _State.ran[own]:
                return (_MISSING, "cell") if sha in others else (obj, "after-cell")
        return _MISSING, "cell"
    k = call.get("index")
    if k is not None and len(versions) > k and len(versions) >= call.get("rungs", 1):
        return versions[k][1], "order"
    if versions:
        return versions[-1][1], "last"
    obj = ns.get(call["target"], _MISSING)
    return obj, "global"


# -- call recipes: one per protocol name in protocols.py ----------------------------------
# Each gets the object under test and fresh copies of the inputs on the grading device,
# calls it the way the lesson does, and returns the values to compare by name.


def _g(t):
    return getattr(t, "g", _MISSING)


def _with_grads(values, tensors):
    """Add `name.g` for each tensor, and `name.grad` where a student stored one there."""
    for name, t in tensors.items():
        values[f"{name}.g"] = _g(t)
        if t.grad is not None:
            values[f"{name}.grad"] = t.grad
    return values


def _matmul(fn, t, ns):
    return {"return": fn(t["a"], t["b"])}


def _mse_grad(fn, t, ns):
    ret = fn(t["inp"], t["targ"])
    return _with_grads({"return": ret}, {"inp": t["inp"]})


def _relu_grad(fn, t, ns):
    t["out"].g = t["out.g"]
    ret = fn(t["inp"], t["out"])
    return _with_grads({"return": ret}, {"inp": t["inp"]})


def _lin_grad(fn, t, ns):
    t["out"].g = t["out.g"]
    ret = fn(t["inp"], t["out"], t["w"], t["b"])
    return _with_grads({"return": ret}, {k: t[k] for k in ("inp", "w", "b")})


_PARAMS = ("w1", "b1", "w2", "b2")


def _forward_and_backward(fn, t, ns):
    # The lesson's forward_and_backward(inp, targ) reads w1, b1, w2, b2 from the
    # notebook's globals: set them to the grader's tensors for the call, then restore.
    scope = getattr(fn, "__globals__", ns)
    saved = {k: scope.get(k, _MISSING) for k in _PARAMS}
    scope.update({k: t[k] for k in _PARAMS})
    try:
        ret = fn(t["inp"], t["targ"])
    finally:
        for k, v in saved.items():
            if v is _MISSING:
                scope.pop(k, None)
            else:
                scope[k] = v
    return _with_grads({"return": ret}, {k: t[k] for k in ("inp", *_PARAMS)})


def _relu_class(cls, t, ns):
    layer = cls()
    out = layer(t["inp"])
    out.g = t["out.g"]
    ret = layer.backward()
    return _with_grads({"return": ret}, {"inp": t["inp"]})


def _lin_class(cls, t, ns):
    layer = cls(t["w"], t["b"])
    out = layer(t["inp"])
    out.g = t["out.g"]
    ret = layer.backward()
    # `self.b = self.out.g.sum(0)` replaces the parameter with its gradient
    replaced = [f"self.{k}" for k in ("w", "b") if getattr(layer, k, t[k]) is not t[k]]
    if replaced:
        _State.facts["replaced"] = replaced
    return _with_grads({"return": ret}, {k: t[k] for k in ("inp", "w", "b")})


def _mse_class(cls, t, ns):
    layer = cls()
    layer(t["inp"], t["targ"])
    ret = layer.backward()
    return _with_grads({"return": ret}, {"inp": t["inp"]})


def _model_class(cls, t, ns):
    try:
        names = list(inspect.signature(cls).parameters)[:4]
    except (TypeError, ValueError):
        names = []
    if sorted(names) == sorted(_PARAMS) and names != list(_PARAMS):
        # The same four weights in another order: pass them by name, and say so, rather
        # than fail with a shape error the student cannot connect to the cause.
        _State.facts["arg_order"] = names
        model = cls(**{k: t[k] for k in _PARAMS})
    else:
        model = cls(*(t[k] for k in _PARAMS))
    loss = model(t["inp"], t["targ"])
    ret = model.backward()
    return _with_grads({"loss": loss, "return": ret}, {k: t[k] for k in ("inp", *_PARAMS)})


RECIPES = {
    "matmul": _matmul,
    "mse_grad": _mse_grad,
    "mse_class": _mse_class,
    "relu_grad": _relu_grad,
    "relu_class": _relu_class,
    "lin_grad": _lin_grad,
    "lin_class": _lin_class,
    "forward_and_backward": _forward_and_backward,
    "model_class": _model_class,
}

# -- recording results as plain data ------------------------------------------------------


def _describe(key, value, tensors):
    """JSON metadata for one value; tensors go to `tensors` (detached, on the CPU)."""
    if value is _MISSING:
        return {"kind": "missing"}
    if value is None:
        return {"kind": "none"}
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().to("cpu", copy=True).contiguous()
        return {
            "kind": "tensor",
            "dtype": str(value.dtype).removeprefix("torch."),
            "shape": list(value.shape),
            "device": str(value.device),
        }
    if isinstance(value, tuple | list):
        return {
            "kind": "sequence",
            "type": type(value).__name__,
            "items": [_describe(f"{key}[{i}]", v, tensors) for i, v in enumerate(value)],
        }
    text = repr(value) if isinstance(value, int | float | bool | str) else ""
    return {"kind": "other", "type": type(value).__name__, "repr": text[:200]}


def _error(exc):
    """The exception, and the last line of student code it passed through."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != GRADER_FILE]
    student = [
        f for f in frames if "site-packages" not in f.filename and "/torch/" not in f.filename
    ]
    where = student[-1] if student else None
    lines = traceback.format_exception_only(type(exc), exc)
    extra = {}
    if isinstance(exc, NameError) and getattr(exc, "name", None):
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        from IPython import get_ipython

        scope = set(get_ipython().user_ns) | (set(tb.tb_frame.f_locals) if tb else set())
        scope = {n for n in scope if not n.startswith("_")}
        close = difflib.get_close_matches(exc.name, sorted(scope), n=1, cutoff=0.6)
        extra = {"name": exc.name, "close": close[0] if close else None}
    return {
        **extra,
        "type": type(exc).__name__,
        "message": str(exc)[:2000],
        "summary": "".join(lines).strip()[:2000],
        "function": where.name if where else None,
        "line": where.line if where else None,
        "lineno": where.lineno if where else None,
        "traceback": "".join(traceback.format_list(frames))[-4000:],
    }


def _global_reads(obj, ns, exclude):
    """The notebook's tensors that `obj` (a function, or a class's methods) reads as
    globals: code that ignores its arguments reads `m1` or `x_train` instead."""
    codes = []
    if isinstance(obj, type):
        for klass in obj.__mro__[:-1]:
            codes += [getattr(v, "__code__", None) for v in vars(klass).values()]
    else:
        codes.append(getattr(obj, "__code__", None))
    names, seen = set(), set()
    codes = [c for c in codes if c is not None]
    while codes:
        code = codes.pop()
        if id(code) in seen:
            continue
        seen.add(id(code))
        for ins in dis.get_instructions(code):
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(ins.argval, str):
                names.add(ins.argval)
        codes += [k for k in code.co_consts if hasattr(k, "co_code")]
    return sorted(n for n in names if n not in exclude and isinstance(ns.get(n), torch.Tensor))


def _on_alarm(signum, frame):
    raise CallTimeout()


# Torch functions that make a new tensor on the default device (the CPU) unless told
# otherwise: in graded code each needs `device=` taken from the inputs, or the function
# works on a CPU and fails on a GPU.
_FACTORIES = ("zeros", "ones", "empty", "full", "rand", "randn", "randint", "arange", "eye",
              "linspace", "logspace", "tensor", "as_tensor")  # fmt: skip
_TORCH_DIR = os.path.dirname(torch.__file__)


def _device_watch():
    """A TorchFunctionMode over a graded call. It notes each factory call made by the
    student's code without a device taken from the inputs (no `device=`, or the string
    "cpu"), and each explicit move to the CPU, so that "works on CPU, breaks on GPU" shows
    on a machine without one. And it counts autograd at the level of the ops: a tensor
    asked to require grad, a backward pass or autograd.grad asked for, any op whose
    result joins an autograd graph, however the engine is reached."""
    from torch.overrides import TorchFunctionMode

    watched = {getattr(torch, n): f"torch.{n}" for n in _FACTORIES}
    moves = {torch.Tensor.cpu: ".cpu()", torch.Tensor.numpy: ".numpy()"}
    autograd = {torch.Tensor.backward, torch.autograd.backward, torch.autograd.grad,
                torch.Tensor.requires_grad_}  # fmt: skip

    class DeviceWatch(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.found = []
            self.autograd = 0

        def note(self, what):
            frame = sys._getframe(2)  # the student's line that called torch
            while frame is not None and frame.f_code.co_filename.startswith(_TORCH_DIR):
                frame = frame.f_back
            if frame is None or frame.f_code.co_filename == GRADER_FILE:
                return
            line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
            entry = {"call": what, "line": line}
            if entry not in self.found:
                self.found.append(entry)

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in watched:
                device = kwargs.get("device")
                if device is None or (isinstance(device, str) and device.startswith("cpu")):
                    self.note(watched[func])
            elif func in moves or (
                func is torch.Tensor.to
                and any(
                    (isinstance(a, str) and a.startswith("cpu"))
                    or (isinstance(a, torch.device) and a.type == "cpu")
                    for a in (*args[1:], kwargs.get("device"))
                )
            ):
                self.note(moves.get(func, ".to('cpu')"))
            if func in autograd:
                self.autograd += 1
            result = func(*args, **kwargs)
            if isinstance(result, torch.Tensor) and result.grad_fn is not None:
                self.autograd += 1
            return result

    return DeviceWatch()


def _run_call(obj, recipe, inputs, device, timeout, ns):
    t = {k: v.to(device).clone() for k, v in inputs.items()}
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    # Autograd used by the graded code itself (the lesson's point is to write the
    # gradients by hand) is counted by the watch, op by op: torch.func, autograd.functional
    # and the engine's own entry points all go through ops that build a graph. (Not with
    # saved-tensor hooks: torch.func refuses to run under them.)
    watch = _device_watch()
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with watch:
            values = recipe(obj, t, ns)
        if device.type == "cuda":
            torch.cuda.synchronize()  # surface asynchronous CUDA errors inside the call
        return values
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if watch.autograd:
            _State.facts["autograd"] = watch.autograd
        if watch.found:
            _State.facts["device_unaware"] = watch.found[:5]


def _best_time(fn, a, b, device, budget, timeout, cap=None):
    """The best of as many runs of fn(a, b) as fit in `budget` seconds (at least three,
    unless one run alone takes longer), a fast first run discarded as warm-up (caches,
    allocator), and whether it is a lower bound: a run still going after `cap` seconds is
    stopped there, and `cap` is the time (the triple loop takes a second a call; that it is
    that slow is all the ladder needs). None if it fails or passes the call's time limit."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, min(timeout, cap) if cap else timeout)
    best, spent, runs, warm = float("inf"), 0.0, 0, False
    try:
        while runs < 3 or (spent < budget and runs < 200):
            started = time.perf_counter()
            fn(a, b)
            if device.type == "cuda":
                torch.cuda.synchronize()
            took = time.perf_counter() - started
            if not warm and took < budget / 10:
                warm = True  # the warm-up run: not timed
                continue
            best, spent, runs = min(best, took), spent + took, runs + 1
            if took > budget:
                break
        return best, False
    except CallTimeout:
        return (cap, True) if cap and cap < timeout else (None, False)
    except BaseException:
        return None, False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _speed(spec, rungs, device, timeout):
    """Time the student's matmul rungs, einsum and torch.matmul on the lesson's shapes,
    in this kernel, one after the other, on one thread (a ranking, not peak speed, and no
    fight with the grader for cores). torch.matmul is timed before and after the rest: if
    the two differ by more than 3x the machine was too busy for the ratios to mean
    anything, and the result says so."""
    ar, ac, bc = spec["shape"]
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(ar, ac, generator=gen).to(device)
    b = torch.randn(ac, bc, generator=gen).to(device)
    budget = spec["budget"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cap = spec.get("cap")
    rows = []  # [label, seconds, the student's, at least that many seconds]
    try:
        before, _ = _best_time(torch.matmul, a, b, device, budget, timeout)
        for cell, fn in rungs:
            seconds, at_least = _best_time(fn, a, b, device, budget, timeout, cap)
            rows.append([f"your {cell}", seconds, True, at_least])
        einsum, _ = _best_time(lambda x, y: torch.einsum("ik,kj->ij", x, y), a, b, device,
                               budget, timeout)  # fmt: skip
        rows.append(["einsum", einsum, False, False])
        after, _ = _best_time(torch.matmul, a, b, device, budget, timeout)
    finally:
        torch.set_num_threads(threads)
    both = [t for t in (before, after) if t]
    rows.append(["torch.matmul (@)", min(both) if both else None, False, False])
    noisy = len(both) == 2 and max(both) > 3 * min(both)
    return {"shape": [ar, ac, bc], "rows": rows, "noisy": noisy}


_STATE_DATA = (
    "targets",
    "versions",
    "ran",
    "cell_timeout",
    "debugger_calls",
    "originals",
    "threads",
    "modules",
    "handlers",
    "callbacks",
)


def adopt(state):
    """Take the recorded data (never code) from the start cell's state. The harvest runs
    from a fresh copy of this module, so a notebook that replaced the grader's functions
    in its namespace (`__autograde__['harvest'] = ...`) does not get to run them."""
    for name in _STATE_DATA:
        value = getattr(state, name, None)
        expected = (
            (int, float, type(None)) if name == "cell_timeout" else type(getattr(_State, name))
        )
        if isinstance(value, expected):
            setattr(_State, name, value)


RESULTS_MIME = "application/vnd.autograde.results+json"


def _loaded_from(folders):
    """The notebook's modules whose files lie in `folders` (the grader's, the reference's),
    whatever name they were imported under or removed as."""
    found, before = set(), set(_State.modules)
    for name, module in list(sys.modules.items()):
        if name in before:
            continue
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and any(
            os.path.realpath(path).startswith(f.rstrip(os.sep) + os.sep) for f in folders
        ):
            found.add(name.split(".")[0])
    return sorted(found)


def _send(results, tensors):
    """The results, as the one display message of their type in this cell's output."""
    import base64
    import io

    from IPython import get_ipython

    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    pub = get_ipython().display_pub
    publish = getattr(pub.publish, "_autograde_original", pub.publish)
    payload = {"results": results, "tensors": base64.b64encode(buffer.getvalue()).decode()}
    publish({RESULTS_MIME: payload}, metadata={})


def harvest(plan_json, inputs_b64):
    """Run every call of the plan (JSON) on the inputs (`torch.save`d, base64) and send
    the results back as this cell's output."""
    import base64
    import io

    from IPython import get_ipython

    hooks = _disarm_hooks()
    plan = json.loads(plan_json)
    ns = get_ipython().user_ns
    device = torch.device(plan["device"])
    # TF32 rounds float32 matmuls on recent GPUs to ~3 digits; grade at full precision even
    # if the notebook's own set-up cell was deleted.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    integrity = _integrity() + hooks
    for m in _loaded_from(plan.get("protected", ())):
        note = f"the notebook imported the grader's `{m}` package"
        if note not in integrity:
            integrity.append(note)
    inputs = torch.load(io.BytesIO(base64.b64decode(inputs_b64)), weights_only=True)
    defined = sorted(k for k, v in ns.items() if callable(v) and not k.startswith("_"))
    tensors, calls = {}, {}
    hung = {}  # id of an object that ran out of time -> its limit; it is not called again
    rungs = {}  # exercise cell -> the matmul that answered its calls without an error
    for call in plan["calls"]:
        key = call["key"]
        obj, how = _pick(ns, call)
        entry = {"picked": how}
        started = time.perf_counter()
        if id(obj) in hung:
            entry["error"] = {
                "type": "Timeout",
                "message": f"still running after {hung[id(obj)]} s on an earlier input",
            }
        elif obj is _MISSING:
            candidates = [d for d in defined if d != call["target"]]
            close = difflib.get_close_matches(call["target"], candidates, n=1, cutoff=0.6)
            entry["error"] = {
                "type": "Missing",
                "message": f"no {call['target']} defined",
                "close": close[0] if close else None,
                "in_cell": how == "cell",
            }
        else:
            _State.facts = {}
            reads = _global_reads(
                obj, ns, _PARAMS if call["protocol"] == "forward_and_backward" else ()
            )
            if reads:
                _State.facts["globals"] = reads
            try:
                values = _run_call(
                    obj, RECIPES[call["protocol"]], inputs[key], device, call["timeout"], ns
                )
                entry["values"] = {
                    k: _describe(f"{key}|{k}", v, tensors) for k, v in values.items()
                }
                if call["protocol"] == "matmul" and call.get("cell"):
                    rungs.setdefault(call["cell"], obj)
            except CallTimeout:
                hung[id(obj)] = call["timeout"]
                entry["error"] = {
                    "type": "Timeout",
                    "message": f"still running after {call['timeout']} s",
                }
            except BaseException as exc:
                entry["error"] = _error(exc)
        entry["seconds"] = time.perf_counter() - started
        if obj is not _MISSING and _State.facts:
            entry["facts"] = _State.facts
        calls[key] = entry
    speed = None
    if plan.get("speed") and rungs:
        timeout = plan["calls"][0]["timeout"]
        speed = _speed(plan["speed"], [(c, f) for c, f in rungs.items() if id(f) not in hung],
                       device, timeout)  # fmt: skip
    _send(
        {
            "calls": calls,
            "defined": defined,
            "debugger_calls": _State.debugger_calls,
            "integrity": integrity,
            "speed": speed,
        },
        tensors,
    )
