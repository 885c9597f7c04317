"""What a graded call is watched for: the notebook's tensors its code reads as globals
(read from its bytecode before the call), and, during the call, tensors made on the CPU
by default, moves to the CPU and autograd (a TorchFunctionMode).
"""

import dis
import linecache
import os
import sys

import torch

from .state import GRADER_FILE


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


def _stored_attributes(obj):
    """The attributes a class's methods store (`self.targ = targ`): a global read of the
    same name is the attribute forgotten, and the hint can say `self.targ`."""
    if not isinstance(obj, type):
        return set()
    names = set()
    for klass in obj.__mro__[:-1]:
        for v in vars(klass).values():
            code = getattr(v, "__code__", None)
            if code is not None:
                names |= {i.argval for i in dis.get_instructions(code) if i.opname == "STORE_ATTR"}
    return names


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
