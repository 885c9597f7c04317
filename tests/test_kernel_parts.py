"""The kernel code's parts (backprop_lab/kernel/), each tested as a plain module: no kernel,
no notebook run, milliseconds each. What only a kernel can show (the cell hooks, the
sandbox's audit hooks, a whole grading) is in test_hostile.py and test_grader_mistakes.py.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import json
import linecache
import re
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest
import torch

from backprop_lab import kernel
from backprop_lab import reference as ref
from backprop_lab.course import (
    EXERCISES,
    PROTOCOLS,
    Case,
    exercises_for,
    expected_values,
    get,
    make_inputs,
)
from backprop_lab.judge.readback import HarvestError, read_harvest
from backprop_lab.kernel import (
    answers,
    integrity,
    limits,
    recipes,
    recording,
    state,
    timing,
    watch,
)
from backprop_lab.kernel.wire import (
    AUTOGRADER_TAG,
    RESULTS_MIME,
    SCHEMA,
    CallEntry,
    KernelPlan,
    PlannedCall,
    Results,
    Speed,
    SpeedSpec,
    ValueInfo,
    WireError,
)
from backprop_lab.plan.calls import inject, make_plan

KERNEL_DIR = Path(kernel.__file__).parent

MATMUL_RECIPE = get("matmul").recipe


def student(source: str, name: str, ns: dict | None = None, filename: str = "<cell-7>"):
    """A function defined the way a notebook cell defines it: its own file name, its
    source in linecache (as IPython keeps it), its globals the notebook's namespace."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    ns = {"torch": torch} if ns is None else ns
    exec(compile(source, filename, "exec"), ns)
    return ns[name]


# -- the package: one source, joined ----------------------------------------------------


def test_the_joined_source_compiles_as_the_grader_s_file_and_defines_the_entry_points() -> None:
    ns: dict = {}
    exec(compile(kernel.SOURCE, kernel.GRADER_FILE, "exec"), ns)
    for name in ("start", "adopt", "harvest", "_State", "call_recipe", "cell_sha", "KernelPlan"):
        assert name in ns, name
    assert ns["harvest"].__code__.co_filename == kernel.GRADER_FILE
    # tracebacks tell the grader's frames apart by that file name, and `adopt` reads the
    # start cell's state by that class name: both as before the split
    assert ns["adopt"].__globals__ is ns and isinstance(ns["_State"], type)
    assert not re.search(r"^\s*from \.", kernel.SOURCE, re.M)  # no part imports another
    assert kernel.SOURCE.startswith("from __future__ import annotations\n")


def test_every_part_is_joined_small_and_importable_alone() -> None:
    parts = {p.stem for p in KERNEL_DIR.glob("*.py")} - {"__init__"}
    assert parts == set(kernel.PARTS)
    for part in kernel.PARTS:
        lines = (KERNEL_DIR / f"{part}.py").read_text().count("\n")
        assert lines < 260, f"{part}.py has {lines} lines"
        assert f"# ---- {part}.py " in kernel.SOURCE


def test_the_join_refuses_a_part_that_imports_one_joined_after_it() -> None:
    order = (
        "state",
        "calling",
        "wire",
        "limits",
        "recording",
        "integrity",
    )  # recording needs integrity
    with pytest.raises(ValueError, match=r"recording\.py imports \.integrity"):
        kernel.join(order)


def test_the_parts_define_each_name_once() -> None:
    ns_names: dict[str, str] = {}
    for part in kernel.PARTS:
        tree = ast.parse((KERNEL_DIR / f"{part}.py").read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                assert node.name not in ns_names, (node.name, part, ns_names.get(node.name))
                ns_names[node.name] = part


def test_the_grader_side_imports_no_torch_to_read_the_wire(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys, backprop_lab.kernel.wire, backprop_lab.kernel; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- recipes: how each protocol calls student code ------------------------------------------


def test_every_protocol_s_recipe_names_only_inputs_its_maths_makes() -> None:
    """A family's recipe is data: a name in it that its inputs lack would fail every
    student's call with a KeyError in the kernel, so it fails here instead."""
    for name, protocol in PROTOCOLS.items():
        r = protocol.recipe
        case = next(c for e in EXERCISES for c in e.checks if c.protocol is protocol).cases[0]
        made = set(make_inputs(protocol, case, 0, name))
        assert r.inputs() <= made, (name, r.inputs() - made)
        assert r.kind == "layer" or not (r.init or r.out_g or r.call_value), name
        assert r.kind == "function" or not (r.groups or r.scalars or r.updated), name


DIMS = {name: p.maths.example.dims for name, p in PROTOCOLS.items()}
TARGETS = {c.protocol.name: c.target for e in EXERCISES for c in e.checks}
# every protocol, called on the reference's own function or class of the graded name; None
# for a function that reads notebook globals by design (the lesson's forward_and_backward
# (inp, targ)): see below
LESSON = {
    name: (None if p.recipe.globals else getattr(ref, TARGETS[name]), DIMS[name])
    for name, p in PROTOCOLS.items()
}


@pytest.mark.parametrize("protocol", sorted(LESSON))
def test_a_recipe_called_on_the_lesson_s_code_gives_the_reference_s_values(
    protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state._State, "facts", {})
    obj, dims = LESSON[protocol]
    ns: dict = {}
    if obj is None:  # reads w1, b1, w2, b2 from the notebook's globals, as the lesson does
        ns = {"_ref": ref.forward_and_backward, "w1": "the notebook's own"}
        obj = student(
            "def forward_and_backward(inp, targ):\n    return _ref(inp, targ, w1, b1, w2, b2)\n",
            "forward_and_backward",
            ns,
        )
    inputs = make_inputs(protocol, Case(dims, "float64"), 0, protocol)
    fresh = {k: v.clone() for k, v in inputs.items()}
    values = recipes.call_recipe(get(protocol).recipe, obj, fresh, ns)
    want = expected_values(protocol, inputs, ())
    assert want
    for name, exp in want.items():
        # the lesson returns its loss, and fit its history (one row per epoch)
        got = values[name] if name in values else values["return"]
        got = got if torch.is_tensor(got) else torch.tensor(got, dtype=exp.value.dtype)
        torch.testing.assert_close(got, exp.value, rtol=1e-10, atol=1e-12)
    if protocol == "forward_and_backward":  # the globals are the notebook's again
        assert ns["w1"] == "the notebook's own" and "b1" not in ns
    assert state._State.facts == {}  # nothing to notice in the lesson's code


def test_lin_class_notes_a_parameter_replaced_by_its_gradient(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(state._State, "facts", {})

    class Lin(ref.Lin):
        def backward(self):
            super().backward()
            self.b = self.out.g.sum(0)

    inputs = make_inputs("lin_class", Case(DIMS["lin_class"], "float64"), 0, "x")
    recipes.call_recipe(get("lin_class").recipe, Lin, inputs, {})
    assert state._State.facts == {"replaced": ["self.b"]}


def test_model_class_passes_weights_by_name_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state._State, "facts", {})

    class Model(ref.Model):
        def __init__(self, w1, w2, b1, b2):
            super().__init__(w1, b1, w2, b2)

    inputs = make_inputs("model_class", Case(DIMS["model_class"], "float64"), 0, "x")
    values = recipes.call_recipe(get("model_class").recipe, Model, inputs, {})
    assert state._State.facts == {"arg_order": ["w1", "w2", "b1", "b2"]}
    want = expected_values("model_class", inputs, ())
    torch.testing.assert_close(values["w2.g"], want["w2.g"].value)


def test_fit_is_given_a_list_and_numbers_and_its_updates_are_read_from_the_caller_s_tensors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fit recipe passes [w1, b1, w2, b2] as one list and lr, epochs, bs as Python
    numbers by keyword, and compares the caller's tensors after the call: an update that
    rebinds the name (`p = p - lr * p.g`) leaves them as they were."""
    monkeypatch.setattr(state._State, "facts", {})
    seen: dict = {}

    def rebinding_fit(params, x_train, y_train, x_valid, y_valid, *, lr, epochs, bs):
        seen.update(params=params, numbers=(lr, epochs, bs))
        model = ref.Classifier(*params)
        with torch.no_grad():
            model(x_train, y_train)
            model.backward()
            for p in params:
                p = p - lr * p.g  # the mistake under test

    inputs = make_inputs("fit", Case(DIMS["fit"], "float64"), 0, "x")
    fresh = {k: v.clone() for k, v in inputs.items()}
    values = recipes.call_recipe(get("fit").recipe, rebinding_fit, fresh, {})
    assert all(p is fresh[k] for p, k in zip(seen["params"], ("w1", "b1", "w2", "b2"), strict=True))
    assert all(type(n) in (float, int) for n in seen["numbers"]), seen["numbers"]
    for k in ("w1", "b1", "w2", "b2"):  # as given: nothing was updated in place
        assert torch.equal(values[k], inputs[k]), k
    # the reference's fit, called the same way, updates them to the oracle's values
    fresh = {k: v.clone() for k, v in inputs.items()}
    values = recipes.call_recipe(get("fit").recipe, ref.fit, fresh, {})
    want = expected_values("fit", inputs, ())
    for k in ("w1", "b1", "w2", "b2"):
        torch.testing.assert_close(values[k], want[k].value, rtol=1e-10, atol=1e-12)
        assert not torch.equal(values[k], inputs[k]), k


# -- watch: global reads, the device watch ---------------------------------------------------


def test_global_reads_finds_the_notebook_s_tensors_a_function_or_class_reads() -> None:
    ns = {"torch": torch, "x_train": torch.zeros(2), "n": 3, "w1": torch.ones(1)}
    fn = student("def f(a):\n    return (a + x_train * n + w1).sum()\n", "f", ns)
    assert watch._global_reads(fn, ns, ()) == ["w1", "x_train"]
    assert watch._global_reads(fn, ns, ("w1",)) == ["x_train"]
    cls = student(
        "class Lin:\n    def __call__(self, a):\n        return [x_train for _ in a]\n", "Lin", ns
    )
    assert watch._global_reads(cls, ns, ()) == ["x_train"]  # nested code (a comprehension)


def test_the_device_watch_notes_a_tensor_made_without_the_inputs_device() -> None:
    f = student(
        "def f(a):\n"
        "    z = torch.zeros(a.shape[0], 2)\n"
        "    y = torch.ones(2, device=a.device)\n"
        "    return z.sum() + y.sum() + a.cpu().sum()\n",
        "f",
    )
    a, w = torch.ones(3), watch._device_watch()
    with w:
        f(a)
    assert w.found == [
        {"call": "torch.zeros", "line": "z = torch.zeros(a.shape[0], 2)"},
        {"call": ".cpu()", "line": "return z.sum() + y.sum() + a.cpu().sum()"},
    ]
    assert w.autograd == 0


def test_the_device_watch_counts_autograd() -> None:
    f = student("def g(a):\n    a.requires_grad_()\n    (a * a).sum().backward()\n", "g")
    a, w = torch.ones(3), watch._device_watch()
    with w:
        f(a)
    assert w.autograd >= 3  # requires_grad_, the ops of the graph, backward


# -- answers: values and errors as plain data ------------------------------------------------


def test_describe_saves_tensors_apart_and_says_what_the_rest_are() -> None:
    tensors: dict = {}
    t = torch.ones(2, 3, dtype=torch.float64, requires_grad=True) * 2
    info = answers._describe("k|return", (t, None, 7), tensors)
    assert info == ValueInfo(
        "sequence",
        type="tuple",
        items=(
            ValueInfo("tensor", dtype="float64", shape=(2, 3), device="cpu"),
            ValueInfo("none"),
            ValueInfo("other", type="int", repr="7"),
        ),
    )
    saved = tensors["k|return[0]"]
    assert not saved.requires_grad and torch.equal(saved, t.detach())
    assert answers._describe("k|x.g", state._MISSING, tensors) == ValueInfo("missing")
    assert answers._describe("k|r", object(), tensors).repr == ""  # no student repr() runs


def test_an_error_names_the_function_and_line_it_came_from() -> None:
    f = student(
        "def mse_grad(inp, targ):\n    x = 1\n    raise ValueError('shapes differ')\n",
        "mse_grad",
        filename="<cell-4>",
    )
    t = {"inp": torch.ones(2, 1), "targ": torch.ones(2)}
    with pytest.raises(ValueError) as caught:
        recipes.call_recipe(get("mse_grad").recipe, f, t, {})
    error = answers._error(caught.value)
    assert error["type"] == "ValueError" and error["message"] == "shapes differ"
    assert error["function"] == "mse_grad" and error["lineno"] == 3
    assert error["line"] == "raise ValueError('shapes differ')"
    assert error["summary"] == "ValueError: shapes differ"


# -- timing, recording, integrity, limits ----------------------------------------------------


def test_the_speed_ladder_times_each_rung_and_torch() -> None:
    def broken(a, b):
        raise RuntimeError("no")

    rungs = [("matmul_broadcast", ref.matmul_broadcast), ("matmul_bad", broken)]
    speed = timing._speed(SpeedSpec((2, 3, 4), 0.001, 0.05), rungs, torch.device("cpu"), 5.0)
    assert speed.shape == (2, 3, 4)
    labels = [r[0] for r in speed.rows]
    assert labels == ["your matmul_broadcast", "your matmul_bad", "einsum", "torch.matmul (@)"]
    assert [r[2] for r in speed.rows] == [True, True, False, False]
    assert speed.rows[1][1] is None  # failed: no time
    assert all(isinstance(r[1], float) and r[1] > 0 for r in speed.rows if r[0] != labels[1])
    assert Speed.from_dict(json.loads(json.dumps(Results({}, speed=speed).to_dict()["speed"])))


def test_pick_prefers_the_exercise_s_cell_then_order_then_the_last_binding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = object(), object()
    versions = {"matmul": [("sha-a", first, 1), ("sha-b", second, 2)]}
    monkeypatch.setattr(state._State, "versions", versions)
    monkeypatch.setattr(state._State, "ran", {"sha-a": 1, "sha-b": 2})
    call = PlannedCall("k", "matmul", "matmul", MATMUL_RECIPE, 1.0, "c2", "sha-b", 1, 2, ("sha-a",))
    assert recording._pick({}, call) == (second, "cell")
    assert recording._pick({}, replace(call, cell_sha="gone", other_shas=())) == (second, "order")
    assert recording._pick({}, replace(call, cell_sha=None, index=None)) == (second, "last")
    ns = {"mse_grad": len}
    assert recording._pick(ns, replace(call, target="mse_grad", other_shas=())) == (len, "global")
    assert recording.cell_sha("x = 1") == hashlib.sha1(b"x = 1").hexdigest()


def test_adopt_takes_only_data_of_the_right_type(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in state._STATE_DATA:
        monkeypatch.setattr(state._State, name, getattr(state._State, name))

    class Start:
        targets = ("mse_grad",)
        cell_timeout = "forever"  # not a number: kept as it was
        versions = {"mse_grad": []}  # noqa: RUF012
        harvest = staticmethod(lambda *a: None)  # code: never taken

    before = state._State.cell_timeout
    state.adopt(Start)
    assert state._State.targets == ("mse_grad",) and state._State.versions == {"mse_grad": []}
    assert state._State.cell_timeout == before and not hasattr(state._State, "harvest")


def test_integrity_reports_a_replaced_torch_function_and_puts_it_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert integrity._resolve("torch.Tensor.backward") == (torch.Tensor, "backward")
    monkeypatch.setattr(state._State, "originals", integrity._torch_functions())
    original = torch.allclose
    monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
    notes = integrity._integrity()
    assert "the notebook replaced torch.allclose" in notes
    assert torch.allclose is original
    monkeypatch.setattr(state._State, "modules", ())
    loaded = integrity._loaded_from([str(KERNEL_DIR.parent)])
    assert "backprop_lab.kernel" in loaded and "backprop_lab.reference" in loaded
    # what every notebook imports is not the grader's
    assert "backprop_lab.coursedata" not in loaded and "backprop_lab" not in loaded


def test_the_course_data_is_the_only_part_of_the_package_a_notebook_may_import() -> None:
    assert integrity.grader_modules(["backprop_lab", "backprop_lab.coursedata",
                                     "backprop_lab.coursedata.checks", "torch"]) == []  # fmt: skip
    found = ["backprop_lab.reference.backprop", "backprop_lab.judge", "backprop_lab.judge.score"]
    assert integrity.grader_modules(found) == ["backprop_lab.judge", "backprop_lab.reference"]


def test_the_output_cap_keeps_a_cell_s_first_bytes_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limits._Budget, "limit", 2048)
    monkeypatch.setattr(limits._Budget, "written", 0)
    monkeypatch.setattr(limits._Budget, "noted", False)
    shown: list[str] = []
    write = limits._capped(lambda text: shown.append(text) or len(text))
    for _ in range(5):
        write("x" * 1000)
    assert "".join(shown).count("x") == 3000  # the write that crosses the cap goes through
    assert shown[-1] == "\n[autograder: output beyond 2 kB not kept]\n"


# -- wire: the boundary's format -------------------------------------------------------------


def _deep(levels: int) -> dict:
    value: dict = {"kind": "none"}
    for _ in range(levels):
        value = {"kind": "sequence", "type": "list", "items": [value]}
    return value


DEEP = _deep(5000)  # a sequence nested past Python's recursion limit


def results_example() -> Results:
    entry = CallEntry(
        "cell",
        0.25,
        {"return": ValueInfo("none"), "inp.g": ValueInfo("tensor", "float32", (3, 1), "cpu")},
        None,
        {"globals": ["x_train"]},
    )
    failed = CallEntry("last", 1.0, error={"type": "Timeout", "message": "still running"})
    speed = Speed((5, 784, 10), (("your matmul", 0.1, True, True), ("einsum", None, False, False)))
    return Results({"a": entry, "b": failed}, ("mse_grad",), 2, ("a note",), speed)


def test_results_survive_json_both_ways() -> None:
    results = results_example()
    assert Results.from_dict(json.loads(json.dumps(results.to_dict()))) == results


def test_a_plan_survives_json_both_ways() -> None:
    call = PlannedCall("k", "matmul", "matmul", MATMUL_RECIPE, 3.0, "c", "sha", 0, 3, ("s1", "s2"))
    plan = KernelPlan("cpu", (call,), SpeedSpec((5, 784, 10), 0.02, 0.1), ("/grader",))
    assert KernelPlan.from_json(plan.to_json()) == plan


@pytest.mark.parametrize("schema", [None, SCHEMA + 1, "1", True, 1.0])
def test_another_schema_is_refused_on_both_sides(schema: object) -> None:
    data = results_example().to_dict()
    data["schema"] = schema
    with pytest.raises(WireError, match="schema"):
        Results.from_dict(data)
    plan = json.loads(KernelPlan("cpu", ()).to_json())
    plan["schema"] = schema
    with pytest.raises(WireError, match="schema"):
        KernelPlan.from_json(json.dumps(plan))


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"debugger_calls": "two"}, "debugger_calls is not a count"),
        ({"integrity": [1]}, "integrity is not a list of lines"),
        ({"calls": {"a": {"facts": [1]}}}, "facts of a are not a mapping"),
        ({"calls": {"a": {"values": {"r": {"kind": "pickle"}}}}}, "unknown value kind 'pickle'"),
        ({"speed": {"rows": 3}}, "speed results have the wrong structure"),
        # forged by student code: each used to escape as another exception and end the
        # submission's grading as a grader error
        ({"calls": {"a": {"seconds": 10**400}}}, "results have the wrong structure"),
        (
            {"speed": {"shape": [5, 784, 10], "rows": [["x", 10**400, True, False]]}},
            "speed results have the wrong structure",
        ),
        ({"calls": {"a": {"error": "boom"}}}, "error of a is not a mapping of plain values"),
        ({"calls": {"a": {"error": {"line": ["x"]}}}}, "error of a is not a mapping"),
        ({"calls": {"a": {"values": {"r": DEEP}}}}, "results have the wrong structure"),
    ],
)
def test_results_of_the_wrong_shape_are_refused(change: dict, error: str) -> None:
    with pytest.raises(WireError, match=error):
        Results.from_dict({**results_example().to_dict(), **change})


def executed(results: dict, tensors: dict) -> nbformat.NotebookNode:
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    message = {"results": results, "tensors": base64.b64encode(buffer.getvalue()).decode()}
    cell = nbformat.v4.new_code_cell("# the grader's cell")
    cell.metadata["tags"] = [AUTOGRADER_TAG]
    cell.outputs = [nbformat.v4.new_output("display_data", data={RESULTS_MIME: message})]
    nb = nbformat.v4.new_notebook()
    nb.cells = [cell]
    return nb


def test_the_grader_reads_what_the_kernel_writes() -> None:
    tensors: dict = {}
    values = {"inp.g": answers._describe("a|inp.g", torch.ones(3, 1), tensors)}
    results = Results({"a": CallEntry("cell", 0.5, values)}, ("mse_grad",))
    harvest = read_harvest(executed(results.to_dict(), tensors))
    got = harvest.calls["a"].values["inp.g"]
    assert (
        got.kind == "tensor"
        and got.dtype == "float32"
        and torch.equal(got.tensor, tensors["a|inp.g"])
    )
    assert harvest.defined == ("mse_grad",) and harvest.calls["a"].picked == "cell"
    with pytest.raises(HarvestError, match=r"tensor a\|inp\.g is missing"):
        read_harvest(executed(results.to_dict(), {}))
    with pytest.raises(HarvestError, match="schema"):
        read_harvest(executed({**results.to_dict(), "schema": SCHEMA + 1}, tensors))


def test_the_injected_cells_carry_a_plan_the_kernel_reads() -> None:
    exercises = exercises_for("backprop")
    plan = make_plan(exercises, seed=0, device="cpu")
    nb = inject(nbformat.v4.new_notebook(), plan, call_timeout=3.0, cell_shas={})
    start, finish = nb.cells[0].source, nb.cells[-1].source
    assert repr(kernel.SOURCE) in start and repr(kernel.SOURCE) in finish
    assert "__autograde_harvest__['adopt'](__autograde__.get('_State'))" in finish
    call = next(
        n
        for n in ast.walk(ast.parse(finish))
        if isinstance(n, ast.Call) and len(n.args) == 2 and isinstance(n.args[0], ast.Constant)
    )
    sent = KernelPlan.from_json(call.args[0].value)
    assert sent.device == "cpu" and sent.speed is None and sent.protected
    assert {c.key for c in sent.calls} == set(plan.calls)
    assert all(c.timeout == 3.0 and c.recipe == PROTOCOLS[c.protocol].recipe for c in sent.calls)
