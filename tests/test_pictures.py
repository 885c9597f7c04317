"""The pictures in feedback reports: valid PNGs, and the colours mean what they should."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from browser_tools import strong_colours
from PIL import Image

from backprop_lab.report.pictures import (
    REFERENCE_COLOUR,
    STUDENT_COLOUR,
    TORCH_LABEL,
    Bar,
    heatmap_png,
    ladder_png,
    ratio_label,
    ratio_map,
    ratio_summary,
    time_label,
)

WANT = np.arange(15, dtype=float).reshape(5, 3) / 7 - 1


def decode(png: bytes) -> Image.Image:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    image.load()  # a truncated or corrupt file fails here, not later
    assert image.format == "PNG"
    width, height = image.size
    assert 250 <= width <= 2000 and 120 <= height <= 1500, image.size
    return image


def colour_mask(image: Image.Image, colour: str, tolerance: int = 6) -> np.ndarray:
    rgb = np.asarray(image.convert("RGB")).astype(int)
    target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return np.all(np.abs(rgb - target) <= tolerance, axis=-1)


def flat(ratio: np.ndarray) -> bool:
    finite = ratio[np.isfinite(ratio)]
    return finite.size > 0 and bool(np.ptp(finite) < 1e-9)


# A heat map whose third panel is strongly coloured has thousands of red or blue pixels;
# its colorbar alone has a few hundred of each.
PANEL = 2000
COLORBAR = 600


@pytest.mark.parametrize(("factor", "colour"), [(1 / 8, "blue"), (2.0, "red"), (-1.0, "blue")])
def test_a_constant_factor_is_one_flat_colour(factor: float, colour: str) -> None:
    """mse_grad without its 1/N or its 2, a flipped sign: one colour over the whole panel,
    and the title says the factor in the words the notebook's check_close uses."""
    assert flat(ratio_map(WANT, WANT * factor))
    colours = strong_colours(decode(heatmap_png("w.g", WANT, WANT * factor)))
    other = "red" if colour == "blue" else "blue"
    assert colours[colour].sum() > PANEL and colours[other].sum() < COLORBAR, factor
    assert ratio_summary(WANT, WANT * factor).startswith(f"yours is {factor:.3g}x the expected")


def test_the_averaged_bias_is_one_flat_colour_however_small_its_elements() -> None:
    """b.g averaged over the batch instead of summed: every element is 1/N of the sum, the
    tiny ones as wrong as the large ones."""
    want = np.array([10.0, 0.05, -2.0, -0.01])
    assert flat(ratio_map(want, want / 8))
    colours = strong_colours(decode(heatmap_png("b.g", want, want / 8)))
    assert colours["blue"].sum() > 1000 and colours["red"].sum() < COLORBAR
    assert "0.125x the expected everywhere" in ratio_summary(want, want / 8)


def test_a_transposed_square_gradient_is_a_patchwork_with_a_white_diagonal() -> None:
    want = np.random.default_rng(0).normal(size=(4, 4))
    ratio = ratio_map(want, want.T)
    assert not flat(ratio)
    assert np.allclose(np.diag(ratio), 1.0)  # the diagonal is right: white
    colours = strong_colours(decode(heatmap_png("w.g", want, want.T)))
    assert colours["red"].sum() > COLORBAR and colours["blue"].sum() > PANEL
    assert ratio_summary(want, want.T).startswith("yours is the transpose")


def test_an_error_that_is_not_a_factor_names_its_largest_element() -> None:
    assert not flat(ratio_map(WANT, WANT + 1))
    assert ratio_summary(WANT, WANT + 1).startswith("largest error 1 at [")


def test_exact_match_is_white() -> None:
    wrong = strong_colours(decode(heatmap_png("w.g", WANT, WANT * 2)))
    right = strong_colours(decode(heatmap_png("w.g", WANT, WANT.copy())))
    assert right["red"].sum() < COLORBAR < wrong["red"].sum()
    assert ratio_summary(WANT, WANT.copy()) == "no difference"
    # All zeros: no colour range and no ratio anywhere (grey), still a picture.
    decode(heatmap_png("w.g", np.zeros((2, 2)), np.zeros((2, 2))))
    assert not np.isfinite(ratio_map(np.zeros((2, 2)), np.ones((2, 2)))).any()


def test_where_expected_is_zero_there_is_no_ratio() -> None:
    want = np.array([[1.0, 0.0], [1e-9, -2.0]])
    ratio = ratio_map(want, want * 3)
    assert np.isnan(ratio[0, 1]) and np.isnan(ratio[1, 0])
    assert ratio[0, 0] == 3.0 and ratio[1, 1] == 3.0


def test_transposed_gradient_of_another_shape_has_two_panels() -> None:
    three = decode(heatmap_png("w.g", WANT, WANT * 2))
    transposed = decode(heatmap_png("w.g", WANT, WANT.T))
    colours = strong_colours(transposed)
    # No ratio panel, so no diverging colormap anywhere.
    assert colours["red"].sum() == 0 and colours["blue"].sum() == 0
    assert transposed.width < three.width * 0.85


def test_unsummed_bias_gradient_is_drawn() -> None:
    image = decode(heatmap_png("b.g", WANT[0], np.ones((8, 3))))
    assert strong_colours(image)["red"].sum() == 0


def test_vector_is_drawn_as_a_row() -> None:
    want = np.array([0.5, -0.25, 1.0, 0.0])
    got = want * np.array([3.0, 3.0, -1.0, -1.0])
    colours = strong_colours(decode(heatmap_png("b.g", want, got, caption="one row per bias")))
    assert colours["red"].sum() > 1000 and colours["blue"].sum() > 1000
    # Left of the row three times too large (red), right of it the wrong sign (blue).
    assert np.nonzero(colours["red"])[1].mean() < np.nonzero(colours["blue"])[1].mean()


def test_not_a_tensor_shows_only_the_expected_values() -> None:
    alone = decode(heatmap_png("w.g", WANT, None, caption="w.g is None"))
    pair = decode(heatmap_png("w.g", WANT, WANT.T))
    assert alone.width < pair.width * 0.8
    assert strong_colours(alone)["red"].sum() == 0


@pytest.mark.parametrize("shape", [(1, 1), (1,), (), (784, 50)])
def test_tiny_and_large_arrays(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    want = rng.normal(size=shape)
    got = want * 3.0
    red = strong_colours(decode(heatmap_png("w1.g", want, got)))["red"]
    assert red.sum() > 2000


def test_non_finite_values_are_drawn() -> None:
    got = WANT.copy()
    got[1, 1] = np.nan
    got[2, 2] = np.inf
    decode(heatmap_png("w.g", WANT, got))
    decode(heatmap_png("w.g", WANT, np.full_like(WANT, np.nan)))


def bar_widths(image: Image.Image, colour: str) -> list[int]:
    """Width in pixels of each bar of `colour`, top to bottom (legend swatches excluded)."""
    mask = colour_mask(image, colour)
    # A bar's rows have many pixels of its colour; antialiased text only a few.
    rows = np.nonzero(mask.sum(axis=1) >= 8)[0]
    bars, start = [], None
    for y, next_y in zip(rows, [*rows[1:], -1], strict=True):
        start = y if start is None else start
        if next_y != y + 1:
            if y - start >= 12:
                bars.append(int(mask[(start + y) // 2].sum()))
            start = None
    return bars


def test_ladder_highlights_the_student() -> None:
    reference = [Bar("pure Python", 2.0), Bar(TORCH_LABEL, 2e-6)]
    with_student = decode(ladder_png([*reference, Bar("yours", 0.01, True)], title="ladder"))
    without = decode(ladder_png(reference, title="ladder"))
    assert colour_mask(with_student, STUDENT_COLOUR).sum() > 1000
    assert colour_mask(without, STUDENT_COLOUR).sum() == 0
    assert len(bar_widths(with_student, STUDENT_COLOUR)) == 1
    assert len(bar_widths(with_student, REFERENCE_COLOUR)) == 2


def test_ladder_axis_is_logarithmic() -> None:
    rows = [Bar("a", 1e-6), Bar("b", 1e-3), Bar("c", 1.0)]
    widths = bar_widths(decode(ladder_png(rows, title="log")), REFERENCE_COLOUR)
    assert len(widths) == 3
    # On a log axis each factor of 1000 adds the same length; on a linear one the first
    # two bars would be invisible next to the third.
    steps = widths[1] - widths[0], widths[2] - widths[1]
    assert min(steps) > 50
    assert abs(steps[0] - steps[1]) <= 3


def test_ladder_skips_rows_without_a_time() -> None:
    one = decode(ladder_png([Bar("a", 0.5, True)], title="t"))
    junk = [Bar("b", 0.0, True), Bar("c", -1.0, True), Bar("d", math.nan, True),
            Bar("e", math.inf, True)]  # fmt: skip
    with_junk = decode(ladder_png([Bar("a", 0.5, True), *junk], title="t"))
    two = decode(ladder_png([Bar("a", 0.5, True), Bar("b", 0.25, True)], title="t"))
    assert with_junk.size == one.size
    assert two.height > one.height
    assert len(bar_widths(with_junk, STUDENT_COLOUR)) == 1
    # Nothing usable at all: still a picture that says so.
    assert colour_mask(decode(ladder_png(junk, title="t")), STUDENT_COLOUR).sum() == 0


@pytest.mark.parametrize(
    ("seconds", "label"),
    [
        (2.5e-7, "0.25 µs"),
        (1.234e-5, "12.3 µs"),
        (0.00456, "4.56 ms"),
        (0.2345, "234 ms"),
        (7.891, "7.89 s"),
        (1234.0, "1,234 s"),
    ],
)
def test_time_label(seconds: float, label: str) -> None:
    assert time_label(seconds) == label


@pytest.mark.parametrize(
    ("seconds", "reference", "label"),
    [(2.468, 0.002, "1,234x torch"), (7e-6, 2e-6, "3.5x torch"), (1e-6, 2e-6, "0.5x torch")],
)
def test_ratio_label(seconds: float, reference: float, label: str) -> None:
    assert ratio_label(seconds, reference) == label


def test_a_bound_and_a_wrong_rung_are_open_bars_under_the_ranked_ones() -> None:
    """A run stopped at 0.1 s is drawn as "> 100 ms", open, so it is never read as a time
    beside the lesson's 380 ms loops; a wrong answer's rung likewise, hatched."""
    ranked = [Bar("lesson: loops", 0.38), Bar("your matmul_broadcast", 3e-4, True),
              Bar(TORCH_LABEL, 2e-5)]  # fmt: skip
    unranked = [Bar("your matmul_loops", 0.1, True, bound=True,
                    unranked="stopped: a lower bound, not ranked"),
                Bar("your matmul_elementwise", 0.077, True,
                    unranked="returned a wrong answer: not ranked")]  # fmt: skip
    image = decode(ladder_png([*unranked, *ranked], title="ladder"))
    # the bound is an outline: of the student's rungs only the measured one and the
    # hatched wrong one have rows full of colour, and the hatched one far fewer pixels
    widths = bar_widths(image, STUDENT_COLOUR)
    assert len(widths) == 2 and widths[1] < widths[0] / 2, widths
    assert len(bar_widths(image, REFERENCE_COLOUR)) == 2
    # the open bars are drawn below every ranked bar (the legend's swatches excluded)
    above_legend = image.height - 40
    outline_rows = np.nonzero(colour_mask(image, STUDENT_COLOUR).sum(axis=1) >= 40)[0]
    filled_rows = np.nonzero(colour_mask(image, REFERENCE_COLOUR).sum(axis=1) >= 40)[0]
    assert outline_rows.max() > filled_rows[filled_rows < above_legend].max() + 20
    as_times = [Bar(b.label, b.seconds, True) for b in unranked]
    filled = decode(ladder_png([*ranked, *as_times], title="ladder"))
    drawn = colour_mask(image, STUDENT_COLOUR).sum()
    assert colour_mask(filled, STUDENT_COLOUR).sum() > drawn * 1.5
