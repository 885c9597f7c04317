"""The pictures in feedback reports: valid PNGs, and the colours mean what they should."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from browser_tools import strong_colours
from PIL import Image

from autograder.pictures import (
    REFERENCE_COLOUR,
    STUDENT_COLOUR,
    TORCH_LABEL,
    heatmap_png,
    ladder_png,
    ratio_label,
    relative_difference,
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


def signed(rows_negative: int) -> np.ndarray:
    """WANT plus an error that is negative in the first rows and positive in the rest."""
    delta = np.ones_like(WANT)
    delta[:rows_negative] = -1
    return WANT + delta


def test_same_shape_difference_is_red_above_and_blue_below() -> None:
    image = decode(heatmap_png("w.g", WANT, signed(2)))
    colours = strong_colours(image)
    red, blue = colours["red"], colours["blue"]
    # The colorbar alone has a few hundred of each; the panel's cells have thousands.
    assert red.sum() > 2000 and blue.sum() > 2000, (red.sum(), blue.sum())
    # Too small (first rows) is blue, too large red: in the panel blue is above red,
    # the opposite of the colorbar, which outweighs it only if the panel is drawn wrongly.
    red_y = np.nonzero(red)[0].mean()
    blue_y = np.nonzero(blue)[0].mean()
    assert blue_y < red_y

    flipped = strong_colours(decode(heatmap_png("w.g", WANT, WANT - (signed(2) - WANT))))
    assert np.nonzero(flipped["red"])[0].mean() < np.nonzero(flipped["blue"])[0].mean()


def test_one_sided_error_has_no_blue_cells() -> None:
    both = strong_colours(decode(heatmap_png("w.g", WANT, signed(2))))
    too_big = strong_colours(decode(heatmap_png("w.g", WANT, WANT + 1)))
    # Only the colorbar is blue now.
    assert too_big["blue"].sum() * 3 < both["blue"].sum()
    assert too_big["red"].sum() > both["red"].sum()


def test_exact_match_has_a_white_difference() -> None:
    wrong = strong_colours(decode(heatmap_png("w.g", WANT, WANT + 1)))
    right = strong_colours(decode(heatmap_png("w.g", WANT, WANT.copy())))
    assert right["red"].sum() * 3 < wrong["red"].sum()
    # All zeros: no colour range, no difference range, still a picture.
    decode(heatmap_png("w.g", np.zeros((2, 2)), np.zeros((2, 2))))


def test_transposed_gradient_has_two_panels_and_no_difference() -> None:
    same = decode(heatmap_png("w.g", WANT, signed(2)))
    transposed = decode(heatmap_png("w.g", WANT, WANT.T))
    colours = strong_colours(transposed)
    # No difference panel, so no diverging colormap anywhere.
    assert colours["red"].sum() == 0 and colours["blue"].sum() == 0
    assert transposed.width < same.width * 0.85


def test_unsummed_bias_gradient_is_drawn() -> None:
    image = decode(heatmap_png("b.g", WANT[0], np.ones((8, 3))))
    assert strong_colours(image)["red"].sum() == 0


def test_vector_is_drawn_as_a_row() -> None:
    want = np.array([0.5, -0.25, 1.0, 0.0])
    got = want + np.array([1.0, 1.0, -1.0, -1.0])
    colours = strong_colours(decode(heatmap_png("b.g", want, got, caption="one row per bias")))
    assert colours["red"].sum() > 1000 and colours["blue"].sum() > 1000
    # Left half of the row too large (red), right half too small (blue).
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
    got = want + 1.0
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
    reference = [("pure Python", 2.0, False), (TORCH_LABEL, 2e-6, False)]
    with_student = decode(ladder_png([*reference, ("yours", 0.01, True)], title="ladder"))
    without = decode(ladder_png(reference, title="ladder"))
    assert colour_mask(with_student, STUDENT_COLOUR).sum() > 1000
    assert colour_mask(without, STUDENT_COLOUR).sum() == 0
    assert len(bar_widths(with_student, STUDENT_COLOUR)) == 1
    assert len(bar_widths(with_student, REFERENCE_COLOUR)) == 2


def test_ladder_axis_is_logarithmic() -> None:
    rows = [("a", 1e-6, False), ("b", 1e-3, False), ("c", 1.0, False)]
    widths = bar_widths(decode(ladder_png(rows, title="log")), REFERENCE_COLOUR)
    assert len(widths) == 3
    # On a log axis each factor of 1000 adds the same length; on a linear one the first
    # two bars would be invisible next to the third.
    steps = widths[1] - widths[0], widths[2] - widths[1]
    assert min(steps) > 50
    assert abs(steps[0] - steps[1]) <= 3


def test_ladder_skips_rows_without_a_time() -> None:
    one = decode(ladder_png([("a", 0.5, True)], title="t"))
    junk = [("b", 0.0, True), ("c", -1.0, True), ("d", math.nan, True), ("e", math.inf, True)]
    with_junk = decode(ladder_png([("a", 0.5, True), *junk], title="t"))
    two = decode(ladder_png([("a", 0.5, True), ("b", 0.25, True)], title="t"))
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


def test_an_element_8x_too_small_is_coloured_however_small_it_is() -> None:
    """The averaged bias: every element of b.g is 1/N of the sum. Small elements are as
    wrong as large ones, so none may be drawn white (the caption says white is right)."""
    want = np.array([[10.0, 0.05, -2.0, -0.01]])
    rel = relative_difference(want, want / 8)
    assert np.allclose(rel, [[-0.875, -0.875, 0.875, 0.875]])  # blue too small, red too big
    assert np.allclose(relative_difference(want, want.copy()), 0)  # white where right
    assert relative_difference(np.zeros((1, 2)), np.ones((1, 2))).tolist() == [[1.0, 1.0]]
    colours = strong_colours(decode(heatmap_png("b.g", want[0], want[0] / 8)))
    assert colours["red"].sum() > 500 and colours["blue"].sum() > 500
