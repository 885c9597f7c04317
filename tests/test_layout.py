"""The house's layout: the grader's modules live in subpackages by layer, in the order data
flows (course -> plan -> run -> judge -> report -> gradebook -> verbs), and no module
imports from a layer after its own, nor takes part in an import cycle, at import time or
inside a function (imports for type checking only do not count: they never run). The
kernel package runs inside the student's notebook and imports nothing of the rest."""

from __future__ import annotations

import ast
from pathlib import Path

import backprop_lab

PACKAGE = Path(backprop_lab.__file__).parent
# `coursedata` (what notebooks import) and `reference` (the lesson's answers) come first:
# they import nothing of the grader
LAYERS = ("coursedata", "reference", "course", "plan", "run", "judge", "report", "gradebook",
          "verbs")  # fmt: skip
# besides the layers: the package's own __init__, the options every front end shares, the
# one grading pipeline that joins the layers, and the kernel's code
TOP = {"backprop_lab", "backprop_lab.options", "backprop_lab.pipeline"}


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}


def _runtime_nodes(body: list[ast.stmt]):
    """Every node that runs, skipping `if TYPE_CHECKING:` blocks."""
    for node in body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _runtime_nodes(node.orelse)
            continue
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                yield from _runtime_nodes([child])
            else:
                yield from ast.walk(child)


def imports(module: str) -> set[str]:
    """The autograder modules `module` imports, wherever in it the import runs."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text()).body):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in MODULES else target)
    return {m for m in found if m in MODULES} - {module}


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_is_in_a_layer() -> None:
    loose = {m for m in MODULES if layer(m) is None and m not in TOP
             and not m.startswith("backprop_lab.kernel")}  # fmt: skip
    assert not loose, f"modules outside the layers: {sorted(loose)}"


def upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{m} -> {d}"
        for m, deps in graph.items()
        for d in deps
        if (lm := layer(m)) is not None and (ld := layer(d)) is not None and ld > lm
    )


def cycles(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    path: list[str] = []
    found: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                found.append(" -> ".join([*path[path.index(d) :], d]))
            elif d not in state:
                visit(d)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return found


GRAPH = {m: imports(m) for m in MODULES}


def test_no_module_imports_from_a_later_layer() -> None:
    assert not upward(GRAPH), "imports against the flow:\n" + "\n".join(upward(GRAPH))


def test_the_kernel_imports_nothing_of_the_grader() -> None:
    for m, deps in GRAPH.items():
        if m.startswith("backprop_lab.kernel"):
            outside = {d for d in deps if not d.startswith("backprop_lab.kernel")}
            assert not outside, (m, outside)


def test_there_is_no_import_cycle() -> None:
    assert not cycles(GRAPH), "import cycles:\n" + "\n".join(cycles(GRAPH))


def test_the_checks_find_an_upward_import_and_a_cycle() -> None:
    """The checks above can fail: on a graph with a judge module importing a verb, and
    two modules importing each other (lazily, as the CLI and the demo once did)."""
    score, cli, demo = (
        "backprop_lab.judge.score",
        "backprop_lab.verbs.cli",
        "backprop_lab.verbs.demo",
    )
    bad = {**GRAPH, score: GRAPH[score] | {cli}, demo: {cli}, cli: GRAPH[cli] | {demo}}
    assert upward(bad) == ["backprop_lab.judge.score -> backprop_lab.verbs.cli"]
    assert any("backprop_lab.verbs.cli -> backprop_lab.verbs.demo -> backprop_lab.verbs.cli" in c
               for c in cycles(bad))  # fmt: skip
    # and the reader sees imports inside functions, not those for type checking
    assert "backprop_lab.course.table" in imports("backprop_lab.course.oracle")
    assert "backprop_lab.gradebook.submissions" not in imports("backprop_lab.report.records")


def test_every_module_named_for_preloading_exists() -> None:
    """Preloading skips a name that does not import, silently: each must be a module."""
    import importlib

    from backprop_lab.gradebook.workers import WORKER_PRELOAD
    from backprop_lab.run.forkserver.preload import KERNEL_PRELOAD, PRELOAD

    for name in (*WORKER_PRELOAD, *PRELOAD):
        importlib.import_module(name)
    assert all(isinstance(n, str) and n for n in KERNEL_PRELOAD)
