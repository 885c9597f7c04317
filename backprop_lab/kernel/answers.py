"""The answers as plain data: each value described (its tensor saved apart), an error
told by the student's line it passed through, and the results sent back as the one
display message of their type.
"""

import difflib
import traceback

import torch

from .state import _MISSING, GRADER_FILE
from .wire import RESULTS_MIME, Results, ValueInfo, item_key


def _describe(key: str, value: object, tensors: dict) -> ValueInfo:
    """What one value is; a tensor goes to `tensors` (detached, on the CPU) under `key`."""
    if value is _MISSING:
        return ValueInfo("missing")
    if value is None:
        return ValueInfo("none")
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().to("cpu", copy=True).contiguous()
        return ValueInfo(
            "tensor",
            dtype=str(value.dtype).removeprefix("torch."),
            shape=tuple(value.shape),
            device=str(value.device),
        )
    if isinstance(value, tuple | list):
        items = tuple(_describe(item_key(key, i), v, tensors) for i, v in enumerate(value))
        return ValueInfo("sequence", type=type(value).__name__, items=items)
    text = repr(value) if isinstance(value, int | float | bool | str) else ""
    return ValueInfo("other", type=type(value).__name__, repr=text[:200])


def _meant(name: str, tb, user_ns: dict) -> str | None:
    """What an undefined `name` most likely meant, nearest first: an attribute of the
    method's own object (`targ` in a method that stored `self.targ`), then the function's
    own names (its parameters), then the notebook's; never an unrelated global when the
    function has a closer name of its own."""
    local = dict(tb.tb_frame.f_locals) if tb is not None else {}
    owner = local.get("self")
    attrs = set(getattr(owner, "__dict__", {}) or {}) if owner is not None else set()
    if name in attrs:
        return f"self.{name}"
    pools = ((local, "{}"), (attrs, "self.{}"), (user_ns, "{}"))
    for pool, form in pools:
        names = sorted(n for n in pool if not str(n).startswith("_"))
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        if close:
            return form.format(close[0])
    return None


def _error(exc: BaseException) -> dict:
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

        extra = {"name": exc.name, "close": _meant(str(exc.name), tb, get_ipython().user_ns)}
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


def _send(results: Results, tensors: dict) -> None:
    """The results, as the one display message of their type in this cell's output."""
    import base64
    import io

    from IPython import get_ipython

    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    pub = get_ipython().display_pub
    publish = getattr(pub.publish, "_autograde_original", pub.publish)
    payload = {
        "results": results.to_dict(),
        "tensors": base64.b64encode(buffer.getvalue()).decode(),
    }
    publish({RESULTS_MIME: payload}, metadata={})
