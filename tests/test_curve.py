"""fit's loss curve (backprop_lab/judge/curve.py, report/pictures/curve.py): what the
student's fit returned, read as one (training loss, validation loss, validation accuracy)
per epoch, or why not; and its picture."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from backprop_lab.judge.curve import _history
from backprop_lab.judge.readback import Value
from backprop_lab.report.pictures import curve_png

EXPECTED = ((1.04, 0.51, 0.84), (0.28, 0.38, 0.90), (0.15, 0.34, 0.89))


def number(x: float) -> Value:
    return Value("other", type="float", repr=repr(x))


def rows(history) -> Value:
    return Value("sequence", type="list", items=tuple(
        Value("sequence", type="tuple", items=tuple(number(x) for x in row)) for row in history
    ))  # fmt: skip


def test_a_list_of_triples_is_the_history() -> None:
    assert _history(rows(EXPECTED), 3) == (EXPECTED, "")


def test_a_tensor_of_one_row_per_epoch_is_the_history_too() -> None:
    t = torch.tensor(EXPECTED, dtype=torch.float64)
    got, why = _history(Value("tensor", t, "float64", "cpu"), 3)
    assert why == "" and got is not None
    assert [x for row in got for x in row] == pytest.approx([x for row in EXPECTED for x in row])


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (Value("none"), "fit returned nothing"),
        (rows(EXPECTED[:2]), "fit returned 2 rows for 3 epochs"),
        (Value("other", type="dict", repr=""), "fit returned a dict"),
        (rows([(1.0, float("nan"), 0.5)] * 3), "fit's losses are not finite"),
        (Value("sequence", type="list", items=(Value("other", type="str", repr="'x'"),) * 3),
         "holds something other than numbers"),
    ],
)  # fmt: skip
def test_anything_else_is_no_history_and_says_what_it_was(value: Value, why: str) -> None:
    got, said = _history(value, 3)
    assert got is None and why in said


@pytest.mark.parametrize("yours", [EXPECTED, None])
def test_the_curve_is_a_picture_the_same_each_time(yours) -> None:
    png = curve_png(EXPECTED, yours, title="fit on the digits")
    assert png == curve_png(EXPECTED, yours, title="fit on the digits")
    assert Image.open(io.BytesIO(png)).size[0] > 400
    assert png != curve_png(EXPECTED, [(2.0, 2.0, 0.1)] * 3, title="fit on the digits")
