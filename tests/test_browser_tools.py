"""A report's pictures survive the trip through a real browser: chromium renders a page
with an inline heat map, and the screenshot has the heat map's colours."""

from __future__ import annotations

import base64
from pathlib import Path

import browser_tools
import numpy as np
import pytest
from browser_tools import screenshot, strong_colours
from PIL import Image

from backprop_lab.report.pictures import heatmap_png


@pytest.mark.slow
def test_screenshot_shows_an_inline_heat_map(chromium: str, tmp_path: Path) -> None:
    want = np.arange(12, dtype=float).reshape(4, 3)
    got = want.copy()
    got[:2] = 2 * got[:2] + 1  # too large: red
    got[2:] *= 0.2  # too small: blue
    picture = base64.b64encode(heatmap_png("w.g", want, got)).decode("ascii")
    html = tmp_path / "report.html"
    html.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>report</title></head>"
        "<body style='margin:0;background:#fff'><h1>w.g is wrong</h1>"
        f"<img alt='heat map of w.g' src='data:image/png;base64,{picture}'></body></html>",
        encoding="utf-8",
    )

    png = screenshot(html, tmp_path / "report.png", width=1100, height=700)

    with Image.open(png) as image:
        assert image.size == (1100, 700)
        colours = strong_colours(image)
    # Thousands: the difference panel's cells, not just its colorbar (a few hundred).
    assert colours["red"].sum() > 2000, colours["red"].sum()
    assert colours["blue"].sum() > 2000, colours["blue"].sum()
    # The panel has red rows above blue rows, as drawn.
    assert np.nonzero(colours["red"])[0].mean() < np.nonzero(colours["blue"])[0].mean()


def test_screenshot_raises_with_chromium_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in chromium that fails the way a broken install does.
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\necho 'cannot open display: no such luck' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(browser_tools, "chromium_path", lambda: str(fake))
    html = tmp_path / "page.html"
    html.write_text("<p>hi</p>")
    # A picture from an earlier run must not pass for this one's.
    stale = tmp_path / "shot.png"
    stale.write_bytes(b"\x89PNG from before")

    with pytest.raises(RuntimeError, match="no such luck"):
        screenshot(html, stale)
    assert not stale.exists()
