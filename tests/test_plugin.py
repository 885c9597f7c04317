"""The pytest plugin (plugin.py) stays out of other projects' way. It is a `pytest11` entry
point, so every pytest run in an environment where backprop-lab is installed loads it:
its options must not take names another project's conftest.py may add."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from backprop_lab.options import SHARED_FLAGS

CONFTEST = """
def pytest_addoption(parser):
    # the names a project of its own is likely to choose, with its own choices
    parser.addoption("--device", default="tpu", choices=["tpu", "cpu"])
    parser.addoption("--seed", type=int, default=0)
    parser.addoption("--engine", default="v8")
    parser.addoption("--notebook", default=None)
    parser.addoption("--assignment", default=None)
    parser.addoption("--require-sandbox", action="store_true")
"""

TEST = """
def test_the_project_reads_its_own_options(pytestconfig):
    assert pytestconfig.getoption("device") == "cpu"
    assert pytestconfig.getoption("seed") == 7
    assert pytestconfig.getoption("engine") == "v8"
"""


def pytest_in(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m pytest ARGS` in `folder`, as that project's own run: this environment
    (the plugin installed, and this checkout first on the path) without this run's
    PYTEST_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=folder, capture_output=True, text=True, timeout=120, env=env,
                          stdin=subprocess.DEVNULL)  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Another project: its own conftest.py adds `--device`, `--seed` and the rest."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (tmp_path / "test_own.py").write_text(textwrap.dedent(TEST))
    return tmp_path


def test_a_project_with_its_own_device_option_runs_beside_the_plugin(project: Path) -> None:
    done = pytest_in(project, "--device", "cpu", "--seed", "7")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert "already used" not in done.stdout + done.stderr
    # the plugin was there all along: installed, loaded, and out of the way
    assert "backprop-lab" in done.stdout.split("plugins:", 1)[1].splitlines()[0]


def test_the_plugin_s_options_are_all_namespaced(project: Path) -> None:
    done = pytest_in(project, "--help")
    assert done.returncode == 0, done.stdout + done.stderr
    help_text = done.stdout
    for flag in ("--notebook", *(f.flag for f in SHARED_FLAGS)):
        assert f"--autograde-{flag.removeprefix('--')}" in help_text, flag


def test_the_plugin_does_nothing_without_a_notebook(project: Path) -> None:
    """No grading header, no points summary: another project's run looks as it did."""
    done = pytest_in(project, "--device", "cpu", "--seed", "7")
    assert "autograde:" not in done.stdout + done.stderr


def test_each_flag_is_declared_once_with_the_options_default() -> None:
    """The CLI and the pytest form read one list; a flag's default is its Options field's."""
    from dataclasses import fields

    from backprop_lab.options import Options, options_from, resolve_seed

    defaults = {f.name: f.default for f in fields(Options)}
    for f in SHARED_FLAGS:
        if f.field != "seed":
            want = 0 if defaults[f.field] is None and f.zero_means_none else defaults[f.field]
            assert f.default == want, f
    assert options_from({}) == Options(seed=resolve_seed(None))
    limits = options_from({"memory_limit": 0, "output_limit": 0, "call_timeout": 3.0})
    assert limits.memory_mb is None and limits.output_kb is None and limits.call_timeout == 3.0


def test_the_pytest_form_sets_every_limit_the_cli_sets(tmp_path: Path) -> None:
    from backprop_lab.verbs.grading.test_checks import _options
    from backprop_lab.verbs.plugin import _dest

    given = {"notebook": str(tmp_path / "nb.ipynb"), "cell-timeout": 7.0,
             "memory-limit": 512, "notebook-timeout": 60.0, "call-timeout": 2.0,
             "output-limit": 0, "seed": "11"}  # fmt: skip

    class Config:
        def getoption(self, dest: str, default: object = None) -> object:
            by_dest = {_dest(k): v for k, v in given.items()}
            return by_dest.get(dest, default)

    _, options = _options(Config())  # type: ignore[arg-type]
    assert (options.cell_timeout, options.memory_mb, options.notebook_timeout) == (7.0, 512, 60.0)
    assert (options.call_timeout, options.output_kb, options.seed) == (2.0, None, 11)
