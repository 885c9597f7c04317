"""Helpers for the tests that look at a report the way a reader does: Debian's chromium,
headless, takes a screenshot of a local HTML file, and Pillow reads its pixels."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")


def chromium_path() -> str | None:
    """Debian's chromium, if it is installed (or, on a hosted CI runner, the Chromium or
    Chrome it ships with: same engine, same command-line flags)."""
    if CHROMIUM.is_file():
        return str(CHROMIUM)
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


def screenshot(
    html: Path, png: Path, *, width: int = 1200, height: int = 1600, timeout: float = 60
) -> Path:
    """Screenshot `html` (a local file) into `png` with headless chromium; return `png`.
    Raises RuntimeError, with chromium's stderr, if no picture came out."""
    exe = chromium_path()
    if exe is None:
        raise RuntimeError("Debian's chromium is not installed (apt-get install chromium)")
    png = Path(png).resolve()
    # A picture left by an earlier run must not pass for this one's.
    png.unlink(missing_ok=True)
    # A fresh profile each time: nothing cached or remembered from another test, and
    # two screenshots at once do not fight over the profile lock.
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        proc = subprocess.run(
            [
                exe,
                "--headless",
                # Root in a container has no user namespaces for the sandbox.
                "--no-sandbox",
                "--disable-gpu",
                # Nothing in a report needs the network: these keep chromium off it.
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={png}",
                Path(html).resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    if not png.is_file() or png.stat().st_size == 0:
        raise RuntimeError(
            f"chromium (exit {proc.returncode}) wrote no screenshot of {html}:\n{proc.stderr}"
        )
    return png


def strong_colours(image: Image.Image) -> dict[str, np.ndarray]:
    """Masks (height x width, bool) of the strongly red and strongly blue pixels: the ends
    of the RdBu_r colormap, which viridis (the value panels) never comes near."""
    hsv = np.asarray(image.convert("RGB").convert("HSV")).astype(int)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    vivid = (sat > 200) & (val > 60)
    # PIL's hue runs 0..255: RdBu_r's red end sits at 236..255, its blue end at 145..155.
    # viridis is never this saturated at those hues (its blues stop at 169, its purples at
    # hue 204), so these pixels come from a difference panel or its colorbar.
    return {
        "red": vivid & ((hue < 8) | (hue > 235)),
        "blue": vivid & (hue > 143) & (hue < 160),
    }
