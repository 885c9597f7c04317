"""The README's main job (`python -m backprop_lab.reference`) and the installed `autograde`
script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import backprop_lab.reference.backprop
from backprop_lab.reference.__main__ import main


def test_main_job_checks_the_lesson_against_autograd(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "agrees with autograd" in out
    assert "scikit-learn digits" in out
    for rung in ("loops", "elementwise", "broadcast", "einsum", "torch"):
        assert rung in out


def test_main_job_fails_when_a_gradient_is_wrong(capsys, monkeypatch):
    def lin_grad_without_bias_sum(inp, out, w, b):
        inp.g = out.g @ w.t()
        w.g = inp.t() @ out.g
        b.g = out.g.mean(0)  # averaged instead of summed

    monkeypatch.setattr(backprop_lab.reference.backprop, "lin_grad", lin_grad_without_bias_sum)
    assert main([]) == 1
    assert "DIFFERS from autograd" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_main_job_refuses_cuda_without_cuda(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--device", "cuda"])
    assert exit_info.value.code == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_autograde_console_script_is_installed():
    # Installed next to this interpreter by `pip install -e .`.
    script = Path(sys.executable).parent / "autograde"
    assert script.is_file(), "reinstall with: python -m pip install -e '.[dev]'"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("autograde 0.1.0")
