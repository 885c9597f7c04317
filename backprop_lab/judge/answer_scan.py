"""Review flags from the answer cells' code: a parsed (ast) read of every answer cell for
what no answer to this lesson needs and every known trick on a grader uses (the call
stack, the garbage collector, IPython's display machinery, torch's internals and
dispatch, ctypes, dynamic code, threads and signals, autograd). Each use is a sentence
naming the cell and line; the grading stays as it is, and a person looks.

Only answer cells are read (the clean room runs nothing else), and code that does not
parse is not flagged: the run reports it."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from nbformat import NotebookNode

from ..plan.notebook import PLACE_KEY, cell_place, is_answer_cell

__all__ = ["Finding", "scan_answers", "scan_review", "scan_source"]

_WHY = "no answer to this lesson needs it"

# module (or its prefix) -> what importing or using it reaches
_MODULES = {
    "gc": "the garbage collector reaches every object of the process, the grader's too",
    "ctypes": "ctypes reaches the process's memory and C functions",
    "inspect": "inspect reads the call stack and other code's frames",
    "importlib": "importlib loads code by name",
    "builtins": "builtins replaces Python's own functions",
    "threading": "a thread runs beside the grader's calls",
    "_thread": "a thread runs beside the grader's calls",
    "concurrent": "a thread or process runs beside the grader's calls",
    "multiprocessing": "a process runs beside the grader's calls",
    "signal": "signal handlers change how the grader stops code",
    "atexit": "exit handlers run after the grader's calls",
    "IPython": "IPython's machinery carries the grader's results",
    "torch._C": "torch's C internals sit below the grader's watch",
    "torch.overrides": "torch function overrides change what every torch call does",
    "torch.utils._python_dispatch": "dispatch modes change what every torch call does",
    "torch.autograd": "PyTorch's autograd computes the gradients the exercise asks for",
    "torch.func": "torch.func computes the gradients the exercise asks for",
    "functorch": "functorch computes the gradients the exercise asks for",
}
_CALLS = {
    "exec": "exec runs code made at run time",
    "eval": "eval runs code made at run time",
    "compile": "compile makes code at run time",
    "__import__": "__import__ loads code by name",
    "get_ipython": "IPython's machinery carries the grader's results",
    "setattr": None,  # only on a module: see _module_attribute
}
_ATTRIBUTES = {
    "_getframe": "it reads the call stack",
    "f_back": "it reads the call stack",
    "f_globals": "it reads another frame's variables",
    "f_locals": "it reads another frame's variables",
    "tb_frame": "it reads the call stack",
    "gi_frame": "it reads a generator's frame",
    "__builtins__": "it replaces Python's own functions",
    "__torch_function__": "it changes what every torch call does",
    "__torch_dispatch__": "it changes what every torch call does",
    "display_pub": "IPython's machinery carries the grader's results",
    "displayhook": "IPython's machinery carries the grader's results",
    "requires_grad_": "it asks PyTorch's autograd to track the tensor",
    "retain_grad": "it asks PyTorch's autograd to keep a gradient",
    "register_hook": "it hooks into PyTorch's autograd",
    "modules": None,  # only sys.modules
    "settrace": "a trace function watches the grader's code",
    "setprofile": "a profile function watches the grader's code",
}
_DISPATCH_HOOKS = ("__torch_function__", "__torch_dispatch__")
# names a notebook binds to modules without importing them in the answer cell
_KNOWN_MODULES = {"torch", "np", "numpy", "math", "sys", "os", "builtins", "random", "time"}


@dataclass(frozen=True)
class Finding:
    where: str  # the cell as the student finds it
    line: int  # in the cell, from 1
    code: str  # what was used
    why: str

    def sentence(self) -> str:
        return f"{self.where}, line {self.line}: `{self.code}`: {self.why}; {_WHY}"


def _parseable(source: str) -> str:
    """The cell's code with IPython's line magics and shell escapes made `pass` (same
    lines, same indentation), so that ast can read the rest."""
    out = []
    for line in source.splitlines():
        body = line.lstrip()
        out.append(line[: len(line) - len(body)] + "pass" if body[:1] in ("%", "!") else line)
    return "\n".join(out)


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def _module_reason(name: str) -> str | None:
    for module, why in _MODULES.items():
        if name == module or name.startswith(module + "."):
            return why
    return None


def scan_source(source: str) -> list[tuple[int, str, str]]:
    """(line, code, why) for each use in one cell's source; [] when it does not parse."""
    try:
        tree = ast.parse(_parseable(source))
    except (SyntaxError, ValueError):
        return []
    modules = set(_KNOWN_MODULES)
    found: list[tuple[int, str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                modules.add((alias.asname or alias.name).split(".")[0])
                why = _module_reason(alias.name)
                if why:
                    found.append((node.lineno, f"import {alias.name}", why))
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names]
            reasons = [_module_reason(n) for n in (node.module, *names)]
            why = next((r for r in reasons if r), None)
            if why:
                found.append((node.lineno, f"from {node.module} import ...", why))
        elif isinstance(node, ast.Call):
            found += _call(node, modules)
        elif isinstance(node, ast.Attribute):
            found += _attribute(node)
        elif isinstance(node, ast.Name | ast.FunctionDef) and (
            (node.id if isinstance(node, ast.Name) else node.name) in _DISPATCH_HOOKS
        ):  # a Tensor subclass of the student's own: every torch call goes through it
            name = node.id if isinstance(node, ast.Name) else node.name
            found.append((node.lineno, name, "it changes what every torch call does"))
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                base = _dotted(t.value) if isinstance(t, ast.Attribute) else None
                if base is not None and base.split(".")[0] in modules:
                    found.append((node.lineno, f"{_dotted(t)} = ...",
                                  "it changes a module every caller shares"))  # fmt: skip
        elif (
            isinstance(node, ast.keyword)
            and node.arg == "requires_grad"
            and not (isinstance(node.value, ast.Constant) and node.value.value is False)
        ):
            found.append((node.value.lineno, "requires_grad=True",
                          "it asks PyTorch's autograd to track the tensor"))  # fmt: skip
    return sorted(set(found))


def _call(node: ast.Call, modules: set[str]) -> list[tuple[int, str, str]]:
    name = _dotted(node.func)
    if name is not None and _CALLS.get(name):
        return [(node.lineno, f"{name}(...)", str(_CALLS[name]))]
    first = node.args[0] if node.args else None
    if name == "setattr" and isinstance(first, ast.Name) and first.id in modules:
        return [(node.lineno, f"setattr({first.id}, ...)",
                 "it changes a module every caller shares")]  # fmt: skip
    if name and _module_reason(name) and "." in name:
        return [(node.lineno, f"{name}(...)", str(_module_reason(name)))]
    return []


def _attribute(node: ast.Attribute) -> list[tuple[int, str, str]]:
    # Not `.backward` (the lesson's own classes have one) nor `.grad` (one student in ten
    # writes it for `.g`): autograd itself is caught at run time, by the kernel's watch.
    name = _dotted(node) or f"(...).{node.attr}"
    if node.attr == "modules":
        return (
            [(node.lineno, name, "it reaches every loaded module")] if name == "sys.modules" else []
        )
    why = _ATTRIBUTES.get(node.attr)
    return [(node.lineno, name, why)] if why else []


def scan_answers(nb: NotebookNode) -> tuple[Finding, ...]:
    """Every finding in the answer cells of `nb` (the clean room's notebook: its answer
    cells carry the student's places)."""
    findings = []
    for cell in nb.cells:
        if not is_answer_cell(cell):
            continue
        place = cell.get("metadata", {}).get(PLACE_KEY) or {}
        gid = cell.metadata["nbgrader"].get("grade_id")
        where = cell_place(place.get("position", 0), place.get("heading", ""),
                           place.get("exercise") or gid)  # fmt: skip
        findings += [
            Finding(where, line, code, why) for line, code, why in scan_source(cell.source)
        ]
    return tuple(findings)


def scan_review(findings: tuple[Finding, ...]) -> tuple[str, ...]:
    """The review reason the findings make (see pipeline.GradeResult.review)."""
    if not findings:
        return ()
    places = sorted({f.where for f in findings})
    return (
        f"The answer code uses {len(findings)} thing(s) no answer to this lesson needs, in "
        f"{', '.join(places)} (the Integrity lines say which): the score stands until a "
        "person has read it.",
    )
