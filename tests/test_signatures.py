"""Student functions called the way their signature asks (kernel/recipes.py): the lesson's
weights reach a forward_and_backward that takes them as parameters, whatever their
defaults, keyword-only or through **kwargs, as well as one that reads the globals."""

from __future__ import annotations

import pytest
import torch

from backprop_lab.course import get
from backprop_lab.kernel.recipes import call_recipe

OLD = torch.zeros(1)  # what a default bound at definition would hold
SOURCES = {
    "defaults": "def fab(inp, targ, w1=OLD, b1=OLD, w2=OLD, b2=OLD):\n"
                "    seen.update(w1=w1, b1=b1, w2=w2, b2=b2)\n",
    "keyword-only": "def fab(inp, targ, *, w1=OLD, b1=OLD, w2=OLD, b2=OLD):\n"
                    "    seen.update(w1=w1, b1=b1, w2=w2, b2=b2)\n",
    "no defaults": "def fab(inp, targ, w1, b1, w2, b2):\n"
                   "    seen.update(w1=w1, b1=b1, w2=w2, b2=b2)\n",
    "kwargs": "def fab(inp, targ, **kw):\n    seen.update(kw)\n",
    "the lesson's (globals)": "def fab(inp, targ):\n"
                              "    seen.update(w1=w1, b1=b1, w2=w2, b2=b2)\n",
}  # fmt: skip


@pytest.mark.parametrize("source", SOURCES.values(), ids=SOURCES.keys())
def test_forward_and_backward_gets_the_grader_s_weights(source: str) -> None:
    seen: dict = {}
    scope = {"OLD": OLD, "seen": seen, **{k: OLD for k in ("w1", "b1", "w2", "b2")}}
    exec(source, scope)
    t = {k: torch.randn(2, 2) for k in ("inp", "targ", "w1", "b1", "w2", "b2")}
    call_recipe(get("forward_and_backward").recipe, scope["fab"], t, scope)
    assert all(seen[k] is t[k] for k in ("w1", "b1", "w2", "b2")), seen
    assert scope["w1"] is OLD  # the notebook's globals restored after the call
