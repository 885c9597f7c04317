"""Hints built from the student's own names (issue: fair and clear, round three)."""

from __future__ import annotations

from backprop_lab.kernel.answers import _meant


def _name_error_tb(code: str, call: str, user_ns: dict):
    """The traceback of the NameError that running `call` after `code` raises."""
    scope = dict(user_ns)
    exec(code, scope)
    try:
        exec(call, scope)
    except NameError as exc:
        tb = exc.__traceback__
        while tb.tb_next is not None:
            tb = tb.tb_next
        return exc.name, tb
    raise AssertionError("no NameError")


def test_a_method_s_own_attribute_before_any_global() -> None:
    code = """
class Mse:
    def __call__(self, inp, targ):
        self.inp, self.targ = inp, targ
    def backward(self):
        self.inp.g = 2 * (self.inp - targ)
"""
    name, tb = _name_error_tb(code, "m = Mse(); m(1.0, 2.0); m.backward()", {})
    # a global `start` is close to `targ` by spelling: the method's own `self.targ` is meant
    assert _meant(name, tb, {"start": 0, "Mse": None}) == "self.targ"


def test_the_function_s_own_parameter_before_a_global() -> None:
    name, tb = _name_error_tb("def f(inp, targ):\n    return inpt * 2\n", "f(1, 2)", {})
    assert _meant(name, tb, {"input": 0, "inputs": 1}) == "inp"


def test_a_global_when_nothing_of_its_own_is_close() -> None:
    name, tb = _name_error_tb("def f(a):\n    return x_trian\n", "f(1)", {})
    assert _meant(name, tb, {"x_train": 0}) == "x_train"
    assert _meant(name, tb, {"unrelated": 0}) is None


def test_the_dtype_hint_names_the_function_s_input() -> None:
    """A relu mask made with `.double()`: the hint speaks of `inp`, the function's own
    input, not of matmul's `a`."""
    from types import SimpleNamespace

    from backprop_lab.course import MATMUL
    from backprop_lab.judge.mistakes import mistake

    dtype = mistake("dtype")
    for value, maths, name in (("inp.g", None, "inp"), ("w.g", None, "w"), ("return", MATMUL, "a")):
        text = dtype.text(SimpleNamespace(value=value, maths=maths))
        assert f"`dtype={name}.dtype`" in text and f"zeros_like({name})" in text, text


def test_a_loops_exercise_answered_with_pytorch_s_product_gets_a_note() -> None:
    """The matmul ladder answered with `@` or einsum: a 0-point note naming it and its
    line, nothing for the lesson's own answers."""
    from notebook_tools import SOLUTION, STUB, edited, matmul

    from backprop_lab.course import exercises_for
    from backprop_lab.judge.shortcuts import shortcut_notes
    from backprop_lab.plan.notebook import read_notebook

    exercises = exercises_for("matmul")
    assert shortcut_notes(read_notebook(SOLUTION["matmul"]), exercises) == ()
    assert shortcut_notes(read_notebook(STUB["matmul"]), exercises) == ()
    nb = edited(SOLUTION["matmul"], [matmul("matmul_loops", "return a @ b"),
                                     matmul("matmul_broadcast",
                                            "return torch.einsum('ik,kj->ij', a, b)")])  # fmt: skip
    notes = shortcut_notes(nb, exercises)
    assert len(notes) == 2
    assert "matmul with three loops uses `@`" in notes[0] and "(0 points)" in notes[0]
    assert "matmul with broadcasting uses `einsum(...)`" in notes[1]
