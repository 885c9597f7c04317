"""Fixtures shared by the test modules."""

from __future__ import annotations

from pathlib import Path

import pytest
from notebook_tools import OFFLINE_STARTUP


@pytest.fixture
def offline_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Kernels started while this fixture is active cannot reach the network."""
    ipython_dir = tmp_path / "ipython"
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-offline.py").write_text(OFFLINE_STARTUP)
    monkeypatch.setenv("IPYTHONDIR", str(ipython_dir))
    return ipython_dir
